"""`pricing explain` and `pricing demo` end to end, through the real command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pricing_service.cli import app
from pricing_service.engine import cli as engine_cli
from pricing_service.engine.decision import demand_value

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_explain_prints_the_decision_and_its_schedule_as_json() -> None:
    result = runner.invoke(
        app,
        [
            "explain",
            "--rules",
            str(ROOT / "rules"),
            "--item",
            str(ROOT / "examples/item.json"),
            "--at",
            "2026-11-26T15:00:00Z",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    decision = json.loads(result.output)
    assert decision["sku"] == "TV-55-OLED"
    assert decision["rule_id"] == "electronics-beat-lowest"
    assert decision["price"] == "1136.99"
    assert [step["stage"] for step in decision["steps"]] == ["strategy", "adjustment", "rounding"]
    # Black Friday starts at 00:00 in New York, 05:00 UTC.
    black_friday = decision["schedule"][1]
    assert black_friday["valid_from"] == "2026-11-27T05:00:00+00:00"
    assert black_friday["rule_id"] == "black-friday-electronics"
    # Every competitor's offer, not only the one the price came from, says what it counted for.
    assert decision["offers_judged_by"] == "beat by 1.00% the lowest competitor price"
    assert {offer["competitor"]: offer["verdict"] for offer in decision["offers"]} == {
        "bargainhub": "out of stock (the strategy reads in-stock offers only)",
        "megamart": "eligible; not the lowest",  # 1099.00 + 0 against 1079.00 + 15.00
        "our_outlet": "our own store (ours: true in competitors.yaml)",
        "shopright": "used",
    }


def test_explain_reports_a_bad_item_file_without_a_traceback(tmp_path: Path) -> None:
    item = tmp_path / "item.json"
    item.write_text('{"item": {"sku": "X", "currency": "USD", "cost": "1.001"}}')
    result = runner.invoke(app, ["explain", "--rules", str(ROOT / "rules"), "--item", str(item)])
    assert result.exit_code == 1
    assert "more decimals than USD allows" in result.output


def _text(output: str) -> str:
    """An error panel's words on one line, without its box."""
    return " ".join(output.replace("│", " ").split())


def test_explain_refuses_a_segment_the_rules_do_not_declare() -> None:
    # A typo would otherwise be explained as the default price, under the typo's name.
    base = ["explain", "--rules", str(ROOT / "rules"), "--item", str(ROOT / "examples/item.json")]
    typo = runner.invoke(app, [*base, "--segment", "chanel:app"])
    assert typo.exit_code == 2
    assert "unknown segment dimension 'chanel' (did you mean 'channel'?)" in _text(typo.output)
    value = runner.invoke(app, [*base, "--segment", "channel:ap"])
    assert value.exit_code == 2
    assert "unknown segment channel value 'ap' (did you mean 'app'?)" in _text(value.output)
    declared = runner.invoke(app, [*base, "--segment", "channel:app,tier:member", "--json"])
    assert declared.exit_code == 0, declared.output
    assert json.loads(declared.output)["segment"] == "channel:app,tier:member"


def test_explain_reports_rule_errors_with_positions(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("timezone: Mars/Olympus\n")
    result = runner.invoke(
        app, ["explain", "--rules", str(tmp_path), "--item", str(ROOT / "examples/item.json")]
    )
    assert result.exit_code == 1
    assert "bad.yaml:1:11: error:" in result.output


def test_demo_prices_the_whole_catalogue() -> None:
    result = runner.invoke(
        app,
        ["demo", "--offline", "--rules", str(ROOT / "rules"), "--at", "2026-11-27T05:00:00Z"],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "TV-55-OLED" in result.output
    assert "black-friday" in result.output


def test_an_instant_without_an_offset_is_in_the_rulesets_timezone() -> None:
    base = ["explain", "--rules", str(ROOT / "rules"), "--item", str(ROOT / "examples/item.json")]
    result = runner.invoke(app, [*base, "--at", "2026-11-27", "--json"])
    assert result.exit_code == 0, result.output
    decision = json.loads(result.output)
    # Midnight in New York, where the rules' windows are: Black Friday has just begun.
    assert decision["valid_from"] == "2026-11-27T05:00:00+00:00"
    assert decision["rule_id"] == "black-friday-electronics"


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0s"),
        (59, "59s"),
        (60, "1m 0s"),
        (3599, "59m 59s"),
        (18085, "5h 1m"),
        (30544935, "353d 12h"),
    ],
)
def test_input_ages_read_as_durations(seconds: int, shown: str) -> None:
    assert engine_cli._age(seconds) == shown


def test_demand_signals_are_listed_to_four_decimals() -> None:
    # Everywhere: the table, the JSON and the audit trail say the same.
    assert demand_value(12 / 7, 150 / 17) == "velocity_ratio=1.7143 days_of_supply=8.8235"
    assert demand_value(None, 9.0) == "velocity_ratio=None days_of_supply=9.0"


def test_a_local_time_the_clocks_skip_or_pass_twice_says_how_it_is_read() -> None:
    # The shipped rules are in America/New_York: clocks spring forward at 02:00 on
    # 2027-03-14 and fall back at 02:00 on 2027-11-07. (The note is on stderr, which
    # every click version's runner puts in the output.)
    outputs = []
    for at in ("2027-03-14T02:30:00", "2027-11-07T01:30:00", "2027-11-07T12:00:00"):
        item = str(ROOT / "examples/item.json")
        result = runner.invoke(
            app, ["explain", "--rules", str(ROOT / "rules"), "--item", item, "--at", at]
        )
        assert result.exit_code == 0, result.output
        outputs.append(" ".join(result.output.split()))
    assert (
        "note: 2027-03-14T02:30:00 does not exist in America/New_York (the clocks skip it): "
        "read as 2027-03-14T03:30:00-04:00" in outputs[0]
    )
    assert (
        "note: 2027-11-07T01:30:00 happens twice in America/New_York (the clocks go back): "
        "read as the first, 2027-11-07T01:30:00-04:00; give an offset for the second, "
        "2027-11-07T01:30:00-05:00" in outputs[1]
    )
    assert "note:" not in outputs[2]
