"""A process's copy of the rule files: an invalid edit keeps the last good ruleset, and a
revert ends the error; only processes that load rules export the reload gauge."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from prometheus_client import REGISTRY

from pricing_service.rules.watch import RulesState
from tests.repricer.helpers import PLAIN_RULES, write_rules


def _in_force() -> float | None:
    return REGISTRY.get_sample_value("pricing_rule_last_reload_successful")


def test_a_revert_to_the_ruleset_in_force_ends_the_error(tmp_path: Path) -> None:
    folder = write_rules(tmp_path / "rules")
    state = RulesState(folder)
    assert state.reload() is True
    assert state.current is not None
    version = state.current.compiled.version
    assert _in_force() == 1

    (folder / "rules.yaml").write_text(PLAIN_RULES + "\n  oops: [\n")
    assert state.reload() is False
    assert state.last_error is not None
    assert "rules.yaml:" in state.last_error
    assert state.last_error_at is not None
    assert _in_force() == 0

    (folder / "rules.yaml").write_text(PLAIN_RULES)  # git revert
    assert state.reload() is False  # nothing to swap: the same version is in force
    assert state.current.compiled.version == version
    assert (state.last_error, state.last_error_at) == (None, None)
    assert _in_force() == 1


def test_a_process_that_loads_no_rules_exports_no_reload_gauge() -> None:
    # A scheduler's default 0 would fire PricingRuleReloadFailed for ever.
    script = (
        "from prometheus_client import generate_latest\n"
        "import crawlers.cli, pricing_service.metrics\n"
        "print('pricing_rule_last_reload_successful' in generate_latest().decode())\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert shown.stdout.strip() == "False"
