from __future__ import annotations

import random
import shutil
import subprocess
import sys
import types
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pricing_service.rules import loader
from pricing_service.rules.diagnostics import Diagnostic, RulesetError
from pricing_service.rules.loader import check_ruleset, check_texts, load_ruleset
from pricing_service.rules.model import Event, Rule, RuleFile
from pricing_service.rules.yaml_source import Position, YamlSyntaxError, parse_yaml

REPO_RULES = Path(__file__).parents[2] / "rules"


def messages(diagnostics: list[Diagnostic]) -> list[str]:
    return [str(d) for d in diagnostics]


# -- YAML reading ---------------------------------------------------------------------


def test_yaml_values_are_typed_for_people_not_yaml_1_1() -> None:
    parsed = parse_yaml(
        "price: 19.99\nbig: 1e3\ncount: 08\ncountry: NO\nenabled: yes\nflag: true\n"
        "at: 10:30\nday: 2026-11-27\nnothing: ~\n"
    )
    assert parsed.value == {
        "price": Decimal("19.99"),
        "big": Decimal("1E+3"),
        "count": 8,
        "country": "NO",
        "enabled": "yes",
        "flag": True,
        "at": "10:30",
        "day": date(2026, 11, 27),
        "nothing": None,
    }
    assert type(parsed.value["price"]) is Decimal


def test_every_value_and_key_has_a_position() -> None:
    parsed = parse_yaml("rules:\n  - id: a\n    match: {skus: [x, y]}\n")
    assert parsed.source.values[("rules", 0, "id")] == Position(2, 9)
    assert parsed.source.keys[("rules", 0, "match")] == Position(3, 5)
    assert parsed.source.values[("rules", 0, "match", "skus", 1)] == Position(3, 23)
    assert parsed.source.nearest(("rules", 0, "match", "price_band", "min")) == (
        ("rules", 0, "match"),
        Position(3, 12),
    )


def test_duplicate_keys_and_unknown_tags_are_reported_and_reading_goes_on() -> None:
    parsed = parse_yaml("a: 1\nb: !money 2\na: 3\n")
    assert parsed.value == {"a": 1, "b": "2"}
    assert [(p.position, p.message) for p in parsed.problems] == [
        (Position(2, 4), "unsupported YAML tag !money"),
        (Position(3, 1), "duplicate key 'a' (first given at line 1)"),
    ]


def test_several_documents_in_one_file_are_refused() -> None:
    with pytest.raises(YamlSyntaxError, match="remove the extra '---'") as raised:
        parse_yaml("a: 1\n---\nb: 2\n")
    assert raised.value.position == Position(2, 1)


# -- loading a folder -----------------------------------------------------------------


def test_good_folder_loads_with_exact_money(good_folder: Path) -> None:
    ruleset = load_ruleset(good_folder)
    assert ruleset.timezone == "Europe/Berlin"
    assert ruleset.guardrails.cooldown == timedelta(hours=6)
    assert [rule.id for rule in ruleset.rules] == ["follow-megamart"]
    fixed = ruleset.rules[0].fallback[0].fixed
    assert fixed == Decimal("19.99")
    assert isinstance(fixed, Decimal)
    assert set(ruleset.events) == {"summer_sale"}
    assert set(ruleset.competitors) == {"megamart"}


def test_files_merge_in_name_order_and_other_files_are_ignored(good_folder: Path) -> None:
    (good_folder / "a_first.yml").write_text(
        "rules:\n"
        "  - {id: first, description: d, owner: o, priority: 5, strategy: {list_price: true}}\n"
    )
    (good_folder / "z_last.yaml").write_text(
        "rules:\n"
        "  - {id: last, description: d, owner: o, priority: 1, strategy: {keep_current: true}}\n"
    )
    (good_folder / "schema.json").write_text("{not yaml at all")
    (good_folder / "README.md").write_text("# notes: [")
    ruleset = load_ruleset(good_folder)
    assert [rule.id for rule in ruleset.rules] == ["first", "follow-megamart", "last"]
    # schema.json and README.md do not look like rule files: no word of them.
    assert not any("skipped" in d.message for d in check_ruleset(good_folder)[1])


def test_what_looks_like_rules_but_is_not_read_gets_a_warning(good_folder: Path) -> None:
    (good_folder / "promos").mkdir()
    (good_folder / "promos" / "xmas.yaml").write_text("rules: []\n")
    (good_folder / "events.YAML").write_text("events: {}\n")
    (good_folder / "xmas.yml.txt").write_text("rules: []\n")
    (good_folder / "empty_folder").mkdir()
    ruleset, diagnostics = check_ruleset(good_folder)
    assert ruleset is not None
    assert [(Path(d.file).name, d.severity, d.message) for d in diagnostics] == [
        (
            "events.YAML",
            "warning",
            "skipped: only names ending in lower-case .yaml or .yml are read",
        ),
        (
            "promos",
            "warning",
            "skipped: rule files in a subfolder are not read; move them up a level",
        ),
        ("xmas.yml.txt", "warning", "skipped: not a rule file name (*.yaml, *.yml)"),
    ]


@pytest.mark.parametrize(
    ("zone", "warned"),
    [("EST", True), ("Etc/GMT+5", True), ("UTC", False), ("Europe/Berlin", False)],
)
def test_a_timezone_without_a_region_gets_a_warning(
    good_files: dict[str, str], zone: str, warned: bool
) -> None:
    good_files["pricing.yaml"] = good_files["pricing.yaml"].replace("Europe/Berlin", zone)
    ruleset, diagnostics = check_texts(good_files)
    assert ruleset is not None
    found = [str(d) for d in diagnostics if "timezone" in d.message]
    if warned:
        assert found == [
            f"pricing.yaml:1:11: warning: timezone {zone!r} is a fixed or legacy zone, not a "
            "place: local windows follow no daylight-saving rules of a region; name one such "
            "as America/New_York or Europe/Berlin"
        ]
    else:
        assert found == []


def test_maps_and_single_settings_may_not_repeat_across_files(good_folder: Path) -> None:
    (good_folder / "zz_more.yaml").write_text(
        "timezone: Europe/Paris\ncompetitors:\n  megamart: {name: Again}\n"
        "segments:\n  channel: [web]\n"
    )
    ruleset, diagnostics = check_ruleset(good_folder)
    assert ruleset is None
    folder = str(good_folder)
    assert messages(diagnostics) == [
        f"{folder}/zz_more.yaml:1:1: error: `timezone` is already set at "
        f"{folder}/pricing.yaml:1:1; set it in one file only",
        f"{folder}/zz_more.yaml:3:3: error: 'megamart' is already declared under `competitors` "
        f"at {folder}/market.yaml:2:3",
        f"{folder}/zz_more.yaml:5:3: error: 'channel' is already declared under `segments` "
        f"at {folder}/pricing.yaml:3:3",
    ]


def test_every_section_of_a_rule_file_is_merged(tmp_path: Path) -> None:
    # One file per section name; repeating it in a second file must be reported, so a
    # section added to RuleFile without merge support fails here.
    section_texts = {
        "timezone": "timezone: UTC",
        "segments": "segments: {tier: [gold]}",
        "guardrails": "guardrails: {min_price: 1}",
        "loop_protection": "loop_protection: {max_flips: 3}",
        "horizon": "horizon: 3d",
        "default": "default: {strategy: {keep_current: true}}",
        "events": "events: {sale: {name: Sale, month_day: '01-02'}}",
        "competitors": "competitors: {acme: {name: ACME}}",
    }
    lists = {"rules"}
    assert set(RuleFile.model_fields) - {"schema_"} == set(section_texts) | lists
    texts = "\n".join(section_texts.values()) + "\n"
    _, diagnostics = check_texts({"a.yaml": texts, "b.yaml": texts})
    assert len(diagnostics) == len(section_texts)
    assert all(d.file == "b.yaml" and "already" in d.message for d in diagnostics)


def test_every_error_of_every_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("timezone: Mars/Olympus\n")
    (tmp_path / "b.yaml").write_text("default: {strategy: {fixd: 1}}\nrules: {}\n")
    (tmp_path / "c.yaml").write_text("events: [\n")
    _, diagnostics = check_ruleset(tmp_path)
    assert [(Path(d.file).name, d.line, d.column) for d in diagnostics] == [
        ("a.yaml", 1, 11),
        ("b.yaml", 1, 22),
        ("b.yaml", 2, 8),
        ("c.yaml", 2, 1),
    ]


def test_load_raises_with_all_diagnostics(tmp_path: Path) -> None:
    (tmp_path / "only.yaml").write_text("rules: []\n")
    with pytest.raises(RulesetError) as raised:
        load_ruleset(tmp_path)
    assert [d.message.split(" (")[0] for d in raised.value.diagnostics] == [
        "no rule file sets `default`",
        "no rule file sets `timezone`",
    ]


def test_missing_path_and_empty_folder(tmp_path: Path) -> None:
    assert messages(check_ruleset(tmp_path / "nope")[1]) == [
        f"{tmp_path / 'nope'}:1:1: error: no such file or folder"
    ]
    assert messages(check_ruleset(tmp_path)[1]) == [
        f"{tmp_path}:1:1: error: no rule files (*.yaml) in this folder"
    ]


def test_a_single_file_is_a_ruleset(tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    path.write_text("timezone: UTC\ndefault: {strategy: {list_price: true}}\n")
    assert load_ruleset(path).default.strategy.kind == "list_price"


# -- version --------------------------------------------------------------------------


def test_version_is_a_content_hash_that_follows_every_change(good_folder: Path) -> None:
    first = load_ruleset(good_folder).version
    assert first == load_ruleset(good_folder).version
    assert len(first) == 16
    int(first, 16)

    rules_file = good_folder / "rules.yaml"
    rules_file.write_text(rules_file.read_text() + "# only a comment changed\n")
    second = load_ruleset(good_folder).version
    assert second != first

    rules_file.rename(good_folder / "rules2.yaml")
    assert load_ruleset(good_folder).version != second


def test_version_is_the_same_from_disk_and_from_texts(
    good_folder: Path, good_files: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shutil.which", lambda _: None)  # no git: the hash alone
    from_texts, _ = check_texts(good_files)
    assert from_texts is not None
    assert load_ruleset(good_folder).version == from_texts.version


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_version_names_the_commit_and_whether_the_files_differ_from_it(
    good_folder: Path,
) -> None:
    def git(*args: str) -> str:
        command = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args]
        done = subprocess.run(command, cwd=good_folder, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    git("init", "-q")
    assert "+g" not in load_ruleset(good_folder).version  # no commit yet
    git("add", ".")
    git("commit", "-q", "-m", "rules")
    head = git("rev-parse", "--short", "HEAD")
    assert load_ruleset(good_folder).version.endswith(f"+g{head}")
    # Edited and not committed: the commit did not price with these rules.
    rules_file = good_folder / "rules.yaml"
    rules_file.write_text(rules_file.read_text() + "# edited\n")
    assert load_ruleset(good_folder).version.endswith(f"+g{head}.dirty")
    git("checkout", "-q", "--", "rules.yaml")
    (good_folder / "extra.yaml").write_text("rules: []\n")  # a new file, not committed
    assert load_ruleset(good_folder).version.endswith(f"+g{head}.dirty")
    # A single file is judged alone.
    assert load_ruleset(good_folder / "pricing.yaml").version.endswith(f"+g{head}")


# -- in-memory texts (the REST API's validate endpoint) --------------------------------


def test_check_texts(good_files: dict[str, str]) -> None:
    ruleset, diagnostics = check_texts(good_files)
    assert diagnostics == []
    assert ruleset is not None
    assert ruleset.rules[0].id == "follow-megamart"

    broken = dict(good_files, **{"rules.yaml": "rules:\n  - id: x\n    prority: 1\n"})
    ruleset, diagnostics = check_texts(broken)
    assert ruleset is None
    assert "rules.yaml:3:5: error: unknown field 'prority' (did you mean 'priority'?)" in (
        messages(diagnostics)
    )
    assert messages(check_texts({"notes.txt": "hello"})[1]) == [
        "<input>:1:1: error: no rule files (*.yaml) were given"
    ]


def test_a_price_delta_written_as_a_mapping_reads_percentages_as_percentages() -> None:
    # Before the fix, `percent: 5` meant 500% and `percent: "5%"` was rejected.
    from pricing_service.rules.model import PriceDelta

    assert PriceDelta.model_validate({"percent": "5%"}).percent == Decimal("0.05")
    with pytest.raises(ValueError, match="write a percentage as a string"):
        PriceDelta.model_validate({"percent": 5})


def test_a_number_where_a_percentage_belongs_is_quoted_as_written(
    good_files: dict[str, str],
) -> None:
    good_files["pricing.yaml"] = good_files["pricing.yaml"].replace(
        "  cooldown: 6h\n", "  cooldown: 6h\n  min_margin: 0.08\n"
    )
    ruleset, diagnostics = check_texts(good_files)
    assert ruleset is None
    assert [d.message for d in diagnostics] == [
        'write a percentage as a string such as "5%", got 0.08'
    ]


def test_diagnostic_renders_for_editors() -> None:
    diagnostic = Diagnostic("rules/a.yaml", 3, 7, "warning", "look here")
    assert str(diagnostic) == "rules/a.yaml:3:7: warning: look here"


# -- semantic checks not in the broken corpus -------------------------------------------


def test_events_the_calendar_cannot_place_point_at_their_anchor(
    good_files: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def unresolvable_events(events: dict[str, Event], timezone: str) -> dict[str, str]:
        assert timezone == "Europe/Berlin"
        return {key: "no holiday named 'Thanksgivin' in US" for key in events if key == "bf"}

    calendar = types.ModuleType("pricing_service.rules.calendar")
    calendar.unresolvable_events = unresolvable_events  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pricing_service.rules.calendar", calendar)
    files = dict(
        good_files,
        **{"events.yaml": "events:\n  bf:\n    name: BF\n    holiday: {country: US, name: x}\n"},
    )
    _, diagnostics = check_texts(files)
    assert messages(diagnostics) == [
        "events.yaml:4:14: error: event 'bf': no holiday named 'Thanksgivin' in US"
    ]


def _two_rules(earlier: str, later: str) -> str:
    """Rules ``earlier`` (priority 2) and ``later`` (priority 1), given their extra fields."""
    template = (
        "  - {{id: {id}, description: d, owner: o, priority: {priority}, {fields}, "
        "strategy: {{keep_current: true}}}}\n"
    )
    return (
        "rules:\n"
        + template.format(id="earlier", priority=2, fields=earlier)
        + template.format(id="later", priority=1, fields=later)
    )


@pytest.mark.parametrize(
    ("earlier", "later", "shadowed"),
    [
        ("match: {tags: [a, b]}", "match: {tags: [a]}", True),
        ("match: {tags: [a]}", "match: {tags: [a, b]}", False),
        ("match: {tags: [a]}", "match: {brands: [x]}", False),
        ("match: {price_band: {min: 10}}", "match: {price_band: {min: 20, max: 50}}", True),
        ("match: {price_band: {min: 10}}", "match: {price_band: {max: 50}}", False),
        ("match: {segment: {channel: app}}", "match: {tags: [a]}", False),
        ("match: {tags: [a]}", "match: {tags: [a], segment: {channel: app}}", True),
        ("when: {days: [sat]}", "when: {days: [sun]}", False),
        ("when: {days: [sat]}", "when: {days: [sat]}", True),
        ("when: {days: [sat]}", "match: {tags: [a]}", False),
    ],
)
def test_shadowing_needs_an_earlier_rule_at_least_as_broad(
    good_files: dict[str, str], earlier: str, later: str, shadowed: bool
) -> None:
    files = dict(good_files, **{"rules.yaml": _two_rules(earlier, later)})
    _, diagnostics = check_texts(files)
    rendered = [str(d) for d in diagnostics]
    if shadowed:
        assert len(rendered) == 1
        assert rendered[0].startswith(
            "rules.yaml:3:10: warning: rule 'later' can never match: rule 'earlier' (rules.yaml:2)"
        )
    else:
        assert rendered == []


# -- the committed ruleset ------------------------------------------------------------


@pytest.mark.skipif(not REPO_RULES.is_dir(), reason="the demo ruleset is not there")
def test_the_committed_ruleset_is_valid() -> None:
    _, diagnostics = check_ruleset(REPO_RULES)
    assert messages(diagnostics) == []


def test_a_rule_guardrail_no_stricter_than_the_rulesets_is_flagged(
    good_files: dict[str, str],
) -> None:
    # The ruleset's: min_price 1.00, max_price 5000, cooldown 6h (pricing.yaml).
    good_files["rules.yaml"] += (
        "    guardrails:\n"
        "      min_price: 0.50\n"  # looser: the ruleset's 1.00 floor holds anyway
        "      max_price: 4000\n"  # stricter: fine
        "      cooldown: 1h\n"  # looser than 6h
        '      max_change: "10%"\n'  # the ruleset sets none: fine
    )
    ruleset, diagnostics = check_texts(good_files)
    assert ruleset is not None
    assert [(d.severity, d.message) for d in diagnostics] == [
        (
            "warning",
            "has no effect: min_price 0.50 is no stricter than the ruleset's 1.00 "
            "(pricing.yaml:5:14), which applies to every rule",
        ),
        (
            "warning",
            "has no effect: cooldown 1h is no stricter than the ruleset's 6h "
            "(pricing.yaml:7:13), which applies to every rule",
        ),
    ]


def test_days_with_hours_past_midnight_get_a_warning_saying_what_they_cover(
    good_files: dict[str, str],
) -> None:
    good_files["rules.yaml"] = good_files["rules.yaml"].replace(
        'hours: "09:00-17:30"', 'hours: "22:00-02:00", days: [fri]'
    )
    ruleset, diagnostics = check_texts(good_files)
    assert ruleset is not None
    assert [(d.severity, d.message) for d in diagnostics] == [
        (
            "warning",
            "hours 22:00-02:00 run past midnight, and days test the date of each instant: "
            "'fri' covers fri 00:00-02:00 and 22:00-24:00, not the night into the next day",
        )
    ]


def test_a_merge_key_is_named_for_what_it_is(good_files: dict[str, str]) -> None:
    good_files["rules.yaml"] = good_files["rules.yaml"].replace(
        "    priority: 100\n", "    <<: {priority: 100}\n"
    )
    ruleset, diagnostics = check_texts(good_files)
    assert ruleset is None
    assert (
        "rules.yaml:5:5: error: merge keys (<<) are not supported in rule files: write the "
        "fields out" in messages(diagnostics)
    )
    assert not any("unknown field" in message for message in messages(diagnostics))


def test_a_month_day_that_never_exists_is_reported_at_its_value(
    good_files: dict[str, str],
) -> None:
    good_files["market.yaml"] = good_files["market.yaml"].replace('"07-01"', '"02-30"')
    ruleset, diagnostics = check_texts(good_files)
    assert ruleset is None
    assert messages(diagnostics) == [
        "market.yaml:6:16: error: event 'summer_sale': month_day '02-30' is not a day of any year"
    ]


def test_a_windows_dates_written_as_a_list_say_what_is_expected(
    good_files: dict[str, str],
) -> None:
    good_files["rules.yaml"] = good_files["rules.yaml"].replace(
        'hours: "09:00-17:30"', "dates: [{from: 2026-12-01, to: 2026-12-24}]"
    )
    ruleset, diagnostics = check_texts(good_files)
    assert ruleset is None
    assert messages(diagnostics) == [
        "rules.yaml:15:46: error: expected one date range such as {from: 2026-11-27, to: "
        "2026-11-30} (a window takes one range; an event's dates take a list)"
    ]


def test_hours_up_to_midnight_do_not_run_past_it(good_files: dict[str, str]) -> None:
    good_files["rules.yaml"] = good_files["rules.yaml"].replace(
        'hours: "09:00-17:30"', 'hours: "18:00-24:00", days: [mon]'
    )
    ruleset, diagnostics = check_texts(good_files)
    assert ruleset is not None
    assert messages(diagnostics) == []


@pytest.mark.parametrize("text", ["", "# the rules moved to electronics.yaml\n", "\n\n"])
def test_an_emptied_rule_file_is_refused_not_put_live(
    good_files: dict[str, str], text: str
) -> None:
    good_files["rules.yaml"] = text
    ruleset, diagnostics = check_texts(good_files)
    assert ruleset is None
    assert [(d.file, d.line, d.severity) for d in diagnostics] == [("rules.yaml", 1, "error")]
    assert diagnostics[0].message.startswith("the file is empty (or holds only comments)")
    good_files["rules.yaml"] = "{}\n"  # empty on purpose
    assert check_texts(good_files)[0] is not None


def test_a_strategy_following_our_own_store_is_flagged(good_files: dict[str, str]) -> None:
    good_files["market.yaml"] = good_files["market.yaml"].replace(
        "  megamart: {name: MegaMart, domains: [megamart.example]}\n",
        "  megamart: {name: MegaMart, domains: [megamart.example], ours: true}\n",
    )
    ruleset, diagnostics = check_texts(good_files)
    assert ruleset is not None
    assert [(d.file, d.line, d.severity, d.message) for d in diagnostics] == [
        (
            "rules.yaml",
            10,
            "warning",
            "'megamart' is one of our own stores (ours: true in competitors): its offers are "
            "never counted, so this strategy never follows it",
        )
    ]


def test_a_rule_cannot_turn_map_off(good_files: dict[str, str]) -> None:
    good_files["rules.yaml"] += "    guardrails: {enforce_map: false}\n"
    ruleset, diagnostics = check_texts(good_files)
    assert ruleset is not None
    assert [(d.severity, d.message.split(":")[0]) for d in diagnostics] == [
        ("warning", "has no effect")
    ]
    assert "enforce_map false" in diagnostics[0].message
    # Where the ruleset turns MAP off, a rule's false agrees with it.
    good_files["pricing.yaml"] = good_files["pricing.yaml"].replace(
        "  cooldown: 6h\n", "  cooldown: 6h\n  enforce_map: false\n"
    )
    assert messages(check_texts(good_files)[1]) == []


def test_a_date_that_does_not_exist_is_reported_once(good_files: dict[str, str]) -> None:
    good_files["market.yaml"] = good_files["market.yaml"].replace(
        'month_day: "07-01"', "dates: [{from: 2026-02-30, to: 2026-03-02}]"
    )
    ruleset, diagnostics = check_texts(good_files)
    assert ruleset is None
    assert [str(d) for d in diagnostics if d.severity == "error"] == [
        "market.yaml:6:20: error: '2026-02-30' is not a valid date"
    ]


@pytest.mark.parametrize("dimension", ["customer_id", "user", "email_hash", "loyalty_account"])
def test_a_segment_that_tells_people_apart_is_refused(
    good_files: dict[str, str], dimension: str
) -> None:
    # Prices may differ by segment, never by individual person.
    good_files["pricing.yaml"] = good_files["pricing.yaml"].replace(
        "  channel: [web, app]\n", f"  channel: [web, app]\n  {dimension}: [u1234567, u7654321]\n"
    )
    ruleset, diagnostics = check_texts(good_files)
    assert ruleset is None
    [error] = [str(d) for d in diagnostics if d.severity == "error"]
    assert error.startswith("pricing.yaml:4:3: error: ")  # at the dimension, not at segments
    assert f"segment dimension '{dimension}' tells individual people apart" in error


def test_a_segment_listing_hundreds_of_values_is_refused(good_files: dict[str, str]) -> None:
    many = ", ".join(f"r{index}" for index in range(257))
    good_files["pricing.yaml"] = good_files["pricing.yaml"].replace(
        "  channel: [web, app]\n", f"  channel: [web, app]\n  region: [{many}]\n"
    )
    ruleset, diagnostics = check_texts(good_files)
    assert ruleset is None
    [error] = [str(d) for d in diagnostics if d.severity == "error"]
    assert error.startswith("pricing.yaml:4:11: error: ")  # at region's list
    assert "has 257 values, more than 256" in error
    good_files["pricing.yaml"] = good_files["pricing.yaml"].replace(", r256]", "]")
    assert check_texts(good_files)[0] is not None  # 256 regions are groups enough


class _EveryEarlierRule(loader._ScopeIndex):
    """The pairwise scan the index replaces: every rule added so far is a candidate."""

    def __init__(self) -> None:
        self._added: list[Any] = []

    def add(self, located: Any) -> None:
        self._added.append(located)

    def could_cover(self, rule: Rule) -> list[Any]:
        return list(self._added)


def _random_rules(rng: random.Random, count: int) -> str:
    """Rules over small vocabularies, so that many of them overlap and shadow others."""
    lines = ["rules:"]
    for number in range(count):
        match = []
        for scope_field, values in (
            ("skus", ["s1", "s2", "s3", "s4"]),
            ("categories", ["c1", "c2"]),
            ("brands", ["b1", "b2"]),
            ("tags", ["t1", "t2", "t3"]),
        ):
            if rng.random() < 0.35:
                chosen = rng.sample(values, rng.randint(1, min(3, len(values))))
                match.append(f"{scope_field}: [{', '.join(chosen)}]")
        if rng.random() < 0.25:
            match.append(f"segment: {{channel: {rng.choice(['web', 'app'])}}}")
        if rng.random() < 0.25:
            low = rng.choice(["", "min: 10", "min: 20"])
            high = rng.choice(["", "max: 50", "max: 100"])
            match.append(f"price_band: {{{', '.join(b for b in (low, high) if b)}}}")
        when = rng.choice(["", "", "", "when: {days: [sat]}, ", "when: {days: [sun]}, "])
        # Repeated priorities (an error) exercise the file-order tie-break too.
        lines.append(
            f"  - {{id: r{number}, description: d, owner: o, priority: {rng.randint(1, count)}, "
            f"match: {{{', '.join(match)}}}, {when}strategy: {{keep_current: true}}}}"
        )
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("seed", range(20))
def test_shadowing_diagnostics_match_the_pairwise_scan(
    good_files: dict[str, str], seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = dict(good_files, **{"rules.yaml": _random_rules(random.Random(seed), 80)})
    _, indexed = check_texts(files)
    monkeypatch.setattr(loader, "_ScopeIndex", _EveryEarlierRule)
    _, pairwise = check_texts(files)
    assert messages(indexed) == messages(pairwise)
    # Not vacuous: the random rules do shadow one another.
    assert sum("can never match" in m for m in messages(pairwise)) >= 5


def _rule_with_change(change: str, strategy: str, extra: str = "") -> str:
    return (
        "  - id: gifts\n"
        "    description: Gifts\n"
        "    owner: sam@example.com\n"
        "    priority: 50\n"
        f"    match: {{categories: [gifts]{extra}}}\n"
        f"    strategy: {strategy}\n"
        "    adjustments:\n"
        "      - id: promo\n"
        f"        change: {change}\n"
    )


@pytest.mark.parametrize(
    ("change", "strategy", "extra", "said"),
    [
        (
            "-20",
            "{fixed: 30}",
            "",
            "change -20 is an amount in the item's currency, over 66% of its fixed price 30: "
            'if a percentage was meant, write "-20%"',
        ),
        (
            "-20",
            "{list_price: true}\n    guardrails: {max_price: 40}",
            "",
            "change -20 is an amount in the item's currency, 50% of its max_price 40, the "
            'highest price it can set: if a percentage was meant, write "-20%"',
        ),
        (
            "+15",
            '{discount: "10%"}',
            ", price_band: {max: 12}",
            "change +15 is an amount in the item's currency, more than its price band's max "
            "12, the highest list price it applies to: if a percentage was meant, write "
            '"+15%"',
        ),
    ],
)
def test_an_amount_change_that_dwarfs_the_rules_prices_reads_like_a_forgotten_percent(
    good_files: dict[str, str], change: str, strategy: str, extra: str, said: str
) -> None:
    good_files["rules.yaml"] += _rule_with_change(change, strategy, extra)
    ruleset, diagnostics = check_texts(good_files)
    assert ruleset is not None
    line = good_files["rules.yaml"].count("\n")  # the change is the file's last line
    assert messages(diagnostics) == [f"rules.yaml:{line}:17: warning: {said}"]


def test_the_rulesets_max_price_bounds_every_rule(good_files: dict[str, str]) -> None:
    good_files["pricing.yaml"] = good_files["pricing.yaml"].replace("5000", "30")
    good_files["rules.yaml"] += _rule_with_change("-25", '{cost_plus: "40%"}')
    _, diagnostics = check_texts(good_files)
    assert messages(diagnostics) == [
        "rules.yaml:25:17: warning: change -25 is an amount in the item's currency, over 83% "
        "of the ruleset's max_price 30 (pricing.yaml:6:14), the highest price any rule can "
        'set: if a percentage was meant, write "-25%"'
    ]


@pytest.mark.parametrize(
    ("change", "strategy", "extra"),
    [
        ("-5.00", "{fixed: 30}", ""),  # a sixth of the price: an ordinary amount off
        ('"-20%"', "{fixed: 30}", ""),  # a percentage already
        ("-20", '{cost_plus: "40%"}', ""),  # nothing bounds the price but the 5000 ceiling
        ("-20", '{cost_plus: "40%"}', ", price_band: {max: 30}"),  # cost-plus may exceed list
        ("-150", "{fixed: 200}", ""),  # -150% is no change at all: not a percentage
        ("+20", "{fixed: 100}", ""),  # a fifth of the price
    ],
)
def test_an_ordinary_amount_change_gets_no_warning(
    good_files: dict[str, str], change: str, strategy: str, extra: str
) -> None:
    good_files["rules.yaml"] += _rule_with_change(change, strategy, extra)
    ruleset, diagnostics = check_texts(good_files)
    assert ruleset is not None
    assert messages(diagnostics) == []


def _last_sunday_of_march(year: int) -> date:
    day = date(year, 3, 31)
    return day - timedelta(days=(day.weekday() + 1) % 7)


def _with_window(good_files: dict[str, str], when: str) -> dict[str, str]:
    """The summer adjustment's window replaced; a "clocks" event on the last Sunday of
    March, when Berlin's clocks go from 02:00 to 03:00."""
    good_files["rules.yaml"] = good_files["rules.yaml"].replace(
        'events: [summer_sale], hours: "09:00-17:30"', when
    )
    good_files["market.yaml"] += (
        "  clocks:\n    name: Clocks go forward\n    nth_weekday: {month: 3, weekday: sun, n: -1}\n"
    )
    return good_files


SKIPPED = (
    "lie in the local time the clocks skip in Europe/Berlin when they go forward (02:00-03:00)"
)


def test_hours_the_clocks_skip_on_a_dated_day_never_apply(good_files: dict[str, str]) -> None:
    files = _with_window(
        good_files, 'hours: "02:00-03:00", dates: {from: 2027-03-28, to: 2027-03-28}'
    )
    ruleset, diagnostics = check_texts(files)
    assert ruleset is not None
    assert messages(diagnostics) == [
        f"rules.yaml:15:23: warning: the window never applies: its hours 02:00-03:00 {SKIPPED} "
        "on every day its dates allow (2027-03-28)"
    ]


def test_hours_the_clocks_skip_on_an_events_only_day_never_apply(
    good_files: dict[str, str],
) -> None:
    files = _with_window(good_files, 'hours: "02:15-02:45", events: [clocks]')
    _, diagnostics = check_texts(files)
    year = datetime.now(ZoneInfo("Europe/Berlin")).year
    days = ", ".join(str(_last_sunday_of_march(y)) for y in range(year, year + 3))
    assert messages(diagnostics) == [
        f"rules.yaml:15:23: warning: the window never applies: its hours 02:15-02:45 {SKIPPED} "
        f"on every day its events allow ({days}), in the years looked at ({year}-{year + 2})"
    ]


def test_daily_hours_the_clocks_skip_miss_one_day_a_year(good_files: dict[str, str]) -> None:
    files = _with_window(good_files, 'hours: "02:00-03:00", days: [sun]')
    _, diagnostics = check_texts(files)
    today = datetime.now(ZoneInfo("Europe/Berlin")).date()
    # The coming ones: this year's may be past.
    coming = [_last_sunday_of_march(y) for y in (today.year, today.year + 1)]
    days = ", ".join(str(day) for day in coming if day >= today)
    assert messages(diagnostics) == [
        "rules.yaml:15:23: warning: the window does not apply on the day the clocks go "
        f"forward ({days}): its hours 02:00-03:00 {SKIPPED}"
    ]


def test_dates_spanning_the_change_miss_that_day_only(good_files: dict[str, str]) -> None:
    files = _with_window(
        good_files, 'hours: "02:00-03:00", dates: {from: 2027-03-01, to: 2027-04-30}'
    )
    _, diagnostics = check_texts(files)
    assert messages(diagnostics) == [
        f"rules.yaml:15:23: warning: the window does not apply on 2027-03-28: its hours "
        f"02:00-03:00 {SKIPPED}"
    ]


@pytest.mark.parametrize(
    "when",
    [
        'hours: "02:00-03:00", days: [sat]',  # Berlin's clocks change on a Sunday
        'hours: "02:00-04:00", dates: {from: 2027-03-28, to: 2027-03-28}',  # 03:00-04:00 is on
        'hours: "01:00-02:00", dates: {from: 2027-03-28, to: 2027-03-28}',  # before the jump
        'hours: "02:30-01:00"',  # past midnight: it holds the early hours too
        'hours: "02:00-03:00", events: [summer_sale]',  # in July
        'hours: "02:00-03:00", dates: {from: 2027-10-31, to: 2027-10-31}',  # autumn: repeated
    ],
)
def test_hours_the_clocks_do_not_skip_get_no_warning(good_files: dict[str, str], when: str) -> None:
    ruleset, diagnostics = check_texts(_with_window(good_files, when))
    assert ruleset is not None
    assert messages(diagnostics) == []
