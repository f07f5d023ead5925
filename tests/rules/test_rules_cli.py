from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pricing_service.rules.cli import app, rule_file_schema_text

REPO_SCHEMA = Path(__file__).parents[2] / "rules" / "schema.json"
BROKEN = Path(__file__).parent / "broken"

runner = CliRunner()


def test_validate_a_good_ruleset_exits_0(good_folder: Path) -> None:
    result = runner.invoke(app, ["validate", str(good_folder)])
    assert result.exit_code == 0, result.output
    assert "is valid (1 rule, 1 event, 1 competitor; 0 errors, 0 warnings)" in result.output


def test_validate_prints_every_error_and_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(BROKEN)
    result = runner.invoke(app, ["validate", "misspelled_fields.yaml"])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[:4] == [
        "misspelled_fields.yaml:5:5: error: missing required field 'priority'",
        "misspelled_fields.yaml:5:5: error: missing required field 'strategy'",
        "misspelled_fields.yaml:8:5: error: unknown field 'priorty' (did you mean 'priority'?)",
        "misspelled_fields.yaml:9:5: error: unknown field 'stratgy' (did you mean 'strategy'?)",
    ]
    assert "4 errors, 0 warnings" in lines[4]


def test_validate_with_only_warnings_exits_0(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(BROKEN)
    result = runner.invoke(app, ["validate", "shadowed_rule.yaml"])
    assert result.exit_code == 0
    assert result.output.startswith("shadowed_rule.yaml:11:9: warning: rule 'cheap-shoes'")


def test_validate_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(BROKEN)
    result = runner.invoke(app, ["validate", "--json", "bad_timezone.yaml"])
    assert result.exit_code == 1
    assert json.loads(result.output) == {
        "valid": False,
        "version": None,
        "errors": 1,
        "warnings": 0,
        "diagnostics": [
            {
                "file": "bad_timezone.yaml",
                "line": 1,
                "column": 11,
                "severity": "error",
                "message": "unknown IANA timezone 'Europe/Berlinn'",
            }
        ],
    }


def test_validate_defaults_to_the_rules_folder(
    good_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(good_folder.parent)
    assert runner.invoke(app, ["validate"]).exit_code == 0


def test_schema_is_draft_2020_12_with_a_title(tmp_path: Path) -> None:
    output = tmp_path / "schema.json"
    result = runner.invoke(app, ["schema", "--output", str(output)])
    assert result.exit_code == 0
    text = output.read_text()
    assert text.endswith("}\n")
    schema = json.loads(text)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "Pricing rule file"
    assert schema["additionalProperties"] is False
    assert "rules" in schema["properties"]
    assert runner.invoke(app, ["schema"]).output == text


def test_committed_schema_matches_the_model() -> None:
    # Regenerate with: pricing rules schema --output rules/schema.json
    assert REPO_SCHEMA.read_text(encoding="utf-8") == rule_file_schema_text()


@pytest.mark.parametrize("command", [[], ["validate"], ["schema"]])
def test_every_command_has_help(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.output


@pytest.mark.parametrize("threshold", ["ten", "-1", "NaN"])
def test_preview_refuses_a_threshold_that_is_not_a_percentage(
    good_folder: Path, threshold: str
) -> None:
    result = runner.invoke(app, ["preview", str(good_folder), "--fail-above", threshold])
    assert result.exit_code == 2
    assert "--fail-above" in result.output


def test_validate_strict_fails_on_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(BROKEN)
    result = runner.invoke(app, ["validate", "--strict", "shadowed_rule.yaml"])
    assert result.exit_code == 1
    assert result.output.startswith("shadowed_rule.yaml:11:9: warning: rule 'cheap-shoes'")
    assert "✗ shadowed_rule.yaml: 0 errors, 1 warning" in result.output
    as_json = runner.invoke(app, ["validate", "--strict", "--json", "shadowed_rule.yaml"])
    assert as_json.exit_code == 1
    assert json.loads(as_json.output)["valid"] is False


def test_validate_strict_passes_a_clean_ruleset(good_folder: Path) -> None:
    assert runner.invoke(app, ["validate", "--strict", str(good_folder)]).exit_code == 0
