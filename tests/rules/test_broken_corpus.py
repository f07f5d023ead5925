"""Every file in ``broken/`` is a one-file ruleset with known problems. Each case lists
the exact ``file:line:column: severity:`` of every diagnostic and a stable message start."""

from __future__ import annotations

from pathlib import Path

import pytest

from pricing_service.rules.loader import check_ruleset

BROKEN = Path(__file__).parent / "broken"

EXPECTED: dict[str, list[str]] = {
    "yaml_syntax.yaml": [
        "yaml_syntax.yaml:5:23: error: invalid YAML: mapping values are not allowed here",
    ],
    "tab_indent.yaml": [
        "tab_indent.yaml:3:1: error: invalid YAML: found character '\\t' that cannot start any "
        "token; indent with spaces, not tabs",
    ],
    "alias.yaml": [
        "alias.yaml:5:7: error: invalid YAML: aliases such as *base are not supported",
    ],
    "duplicate_key.yaml": [
        "duplicate_key.yaml:4:3: error: duplicate key 'strategy' (first given at line 3)",
    ],
    "not_a_mapping.yaml": [
        "not_a_mapping.yaml:1:1: error: expected a mapping of fields (name: value lines), "
        "got a list",
    ],
    "misspelled_fields.yaml": [
        "misspelled_fields.yaml:5:5: error: missing required field 'priority'",
        "misspelled_fields.yaml:5:5: error: missing required field 'strategy'",
        "misspelled_fields.yaml:8:5: error: unknown field 'priorty' (did you mean 'priority'?)",
        "misspelled_fields.yaml:9:5: error: unknown field 'stratgy' (did you mean 'strategy'?)",
    ],
    "unknown_section.yaml": [
        "unknown_section.yaml:4:1: error: unknown field 'rule' (did you mean 'rules'?)",
        "unknown_section.yaml:6:1: error: unknown field 'colour' (allowed here: $schema, timezone,",
    ],
    "wrong_types.yaml": [
        "wrong_types.yaml:8:15: error: expected a whole number, got 'high'",
        "wrong_types.yaml:10:14: error: expected text, got 12345; put it in quotes",
        "wrong_types.yaml:12:14: error: expected one of 'mon', 'tue', 'wed', 'thu', 'fri', 'sat' "
        "or 'sun', got 'monday' (did you mean 'mon'?)",
        "wrong_types.yaml:15:24: error: expected true or false, got 'maybe'",
    ],
    "bad_ids.yaml": [
        "bad_ids.yaml:3:3: error: expected an id of lowercase letters, digits, '_' and '-' "
        "(such as black-friday), got 'Black Friday'",
        "bad_ids.yaml:5:24: error: expected a two-letter country code such as US, got 'us'",
        "bad_ids.yaml:7:7: error: expected an id of lowercase letters",
        "bad_ids.yaml:9:5: error: a strategy needs exactly one of: fixed, cost_plus, discount, "
        "list_price, competitor, elasticity, keep_current (found fixed, discount)",
    ],
    # 19.990000000000001 and 19.99 are the same binary float: only exact decimals see it.
    "exact_money.yaml": [
        "exact_money.yaml:5:14: error: impossible guardrails: min_price 19.990000000000001 > "
        "max_price 19.99",
        "exact_money.yaml:7:21: error: expected a finite amount, got 'Infinity'",
    ],
    "bad_timezone.yaml": [
        "bad_timezone.yaml:1:11: error: unknown IANA timezone 'Europe/Berlinn'",
    ],
    "bad_percent.yaml": [
        'bad_percent.yaml:3:15: error: expected a percentage such as "5%" or "-2.5%", '
        "got '15 percent'",
        'bad_percent.yaml:5:25: error: write a percentage as a string such as "5%", got 35',
        "bad_percent.yaml:8:15: error: '5.123456789%' is more precise than 0.0001%",
    ],
    "bad_duration.yaml": [
        'bad_duration.yaml:2:10: error: expected a duration such as "6h"',
        'bad_duration.yaml:4:13: error: write a duration as a string such as "6h"',
        'bad_duration.yaml:7:27: error: expected a duration such as "6h", "30m", "1d12h", '
        "got '1w'",
    ],
    "missing_default.yaml": [
        "missing_default.yaml:1:1: error: no rule file sets `default` (required)",
    ],
    "unknown_competitor.yaml": [
        "unknown_competitor.yaml:13:55: error: unknown competitor 'megamrt' "
        "(did you mean 'megamart'?)",
        "unknown_competitor.yaml:15:47: error: unknown competitor 'bargainhub' "
        "(declare it under `competitors:`)",
    ],
    "unknown_event.yaml": [
        "unknown_event.yaml:10:23: error: unknown event 'christmas' (declare it under `events:`)",
        "unknown_event.yaml:17:21: error: unknown event 'black-friday' "
        "(did you mean 'black_friday'?)",
    ],
    "unknown_segment.yaml": [
        "unknown_segment.yaml:12:26: error: 'fax' is not a value of segment 'channel' "
        "(expected one of: web, app)",
        "unknown_segment.yaml:19:17: error: unknown segment 'chanel' (did you mean 'channel'?)",
    ],
    "impossible_guardrails.yaml": [
        "impossible_guardrails.yaml:7:27: error: impossible guardrails: max_price 0.50 is below "
        "the ruleset's min_price 1.00 (impossible_guardrails.yaml:3:14)",
        "impossible_guardrails.yaml:15:18: error: impossible guardrails: min_price 600 is above "
        "the ruleset's max_price 500 (impossible_guardrails.yaml:4:14)",
    ],
    "duplicates.yaml": [
        "duplicates.yaml:11:9: error: duplicate rule id 'sale' (first used at duplicates.yaml:5:9)",
        "duplicates.yaml:14:15: error: priority 10 is also used by rule 'sale' "
        "(duplicates.yaml:8:15)",
        "duplicates.yaml:19:14: error: duplicate adjustment id 'weekend' in this rule",
    ],
    "shadowed_rule.yaml": [
        "shadowed_rule.yaml:11:9: warning: rule 'cheap-shoes' can never match: rule 'all-shoes' "
        "(shadowed_rule.yaml:5) is tried first",
    ],
}


def test_every_corpus_file_has_expectations() -> None:
    assert sorted(p.name for p in BROKEN.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_file(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Diagnostics name files as given; a relative path keeps the expectations short.
    monkeypatch.chdir(BROKEN)
    ruleset, diagnostics = check_ruleset(Path(name))
    rendered = [str(diagnostic) for diagnostic in diagnostics]
    expected = EXPECTED[name]
    assert len(rendered) == len(expected), "\n".join(rendered)
    for line, prefix in zip(rendered, expected, strict=True):
        assert line.startswith(prefix), f"{line!r} does not start with {prefix!r}"
    only_warnings = all(d.severity == "warning" for d in diagnostics)
    assert (ruleset is not None) == only_warnings
