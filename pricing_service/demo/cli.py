"""`pricing demo`: the demo catalogue priced by the rules in ``rules/``."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.table import Table

from pricing_service.demo.catalogue import demo_catalogue
from pricing_service.engine.cli import (
    AtOption,
    RulesOption,
    SegmentOption,
    parse_instant,
    print_diagnostics,
)
from pricing_service.engine.compiled import CompiledRuleset
from pricing_service.engine.inputs import Segment
from pricing_service.engine.schedule import schedule
from pricing_service.rules.loader import RulesetError, load_ruleset


def demo(
    rules: RulesOption = Path("rules"),
    at: AtOption = None,
    segment: SegmentOption = None,
) -> None:
    """Price the demo catalogue with the rules and show each decision and its next change."""
    try:
        ruleset = load_ruleset(rules)
    except RulesetError as exc:
        print_diagnostics(exc)
        raise typer.Exit(code=1) from None
    compiled = CompiledRuleset(ruleset)
    moment = parse_instant(at)
    wanted = Segment.parse(segment)
    zone = ZoneInfo(ruleset.timezone)
    table = Table(title=f"Demo catalogue at {moment.astimezone(zone):%Y-%m-%d %H:%M %Z}")
    for column in ("sku", "current", "price", "rule", "strategy", "guardrails", "next change"):
        table.add_column(column)
    for inputs in demo_catalogue(moment):
        decisions = schedule(compiled, inputs, moment, segment=wanted)
        first = decisions[0]
        following = decisions[1] if len(decisions) > 1 else None
        upcoming = (
            f"{following.valid_from.astimezone(zone):%a %d %b %H:%M} → {following.price}"
            if following is not None
            else "none within the horizon"
        )
        table.add_row(
            inputs.item.sku,
            str(inputs.item.current_price),
            str(first.price),
            first.rule_id,
            first.strategy,
            ", ".join(first.guardrails_fired) or "-",
            upcoming,
        )
    console = Console()
    console.print(table)
    console.print(
        f"ruleset {ruleset.version}. Explain one item with: "
        "pricing explain --item examples/item.json --rules rules"
    )
