"""`pricing simulate`: run a scenario's market against the rules and the baselines."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pricing_service.rules.diagnostics import RulesetError
from pricing_service.rules.loader import load_ruleset
from pricing_service.simulate.market import build_market
from pricing_service.simulate.report import write_report
from pricing_service.simulate.runner import simulate
from pricing_service.simulate.scenario import ScenarioError, load_scenario, rules_path


def simulate_command(
    scenario: Annotated[
        Path, typer.Option(help="Scenario YAML (see examples/scenarios/).", dir_okay=False)
    ],
    days: Annotated[int, typer.Option(min=1, max=3650, help="Simulated days.")] = 56,
    seed: Annotated[int, typer.Option(help="Seeds the generated items and every draw.")] = 1,
    out: Annotated[Path, typer.Option(help="Folder for summary.json and the PNG charts.")] = Path(
        "var/simulate"
    ),
    rules: Annotated[
        Path | None,
        typer.Option(
            help="Rule files to simulate instead of the scenario's own `rules:` (an edited "
            "copy, say), against the same market and seed."
        ),
    ] = None,
) -> None:
    """Price a synthetic market with the real engine for DAYS simulated days; compare the
    rules with the oracle, a static list price and "beat the lowest by 1%"."""
    try:
        spec = load_scenario(scenario)
        ruleset = load_ruleset(rules or rules_path(scenario, spec))
    except (ScenarioError, RulesetError) as error:
        for diagnostic in error.diagnostics:
            typer.echo(str(diagnostic), err=True)
        raise typer.Exit(1) from None
    started = time.perf_counter()
    market = build_market(spec, seed)
    simulation = simulate(spec, ruleset, market, days, seed)
    elapsed = time.perf_counter() - started
    summary = write_report(simulation, out)
    console = Console(highlight=False)
    table = Table(title=f"{spec.name}: {len(market)} items, {days} days, seed {seed}")
    for column in ("policy", "profit", "revenue", "units", "stock-out item-days", "% of oracle"):
        table.add_column(column, justify="left" if column == "policy" else "right")
    for policy in summary["policies"].values():
        share = policy["profit_share_of_oracle"]
        table.add_row(
            policy["label"],
            policy["profit"],
            policy["revenue"],
            str(policy["units"]),
            str(policy["stockout_item_days"]),
            "" if share is None else f"{100 * share:.1f}",
        )
    console.print(table)
    goals = summary["goals"]
    accuracy = goals["elasticity"]
    console.print(
        f"rules vs beat-lowest: {100 * (goals['profit_gain_over_beat_lowest'] or 0):+.1f}% profit; "
        f"vs list price: {100 * (goals['profit_gain_over_list_price'] or 0):+.1f}%"
    )
    weekly = ", ".join(
        "-" if s is None else f"{100 * s:.1f}" for s in goals["weekly_profit_share_of_oracle"]
    )
    console.print(f"rules profit, % of the oracle, week by week: {weekly}")
    if accuracy:
        for key, label in (("identified", "identified by their own prices"), ("spread", "")):
            subset = accuracy[key]
            share = subset["share_within_tolerance"]
            if not subset["items"]:
                continue  # e.g. rules whose prices never move: nothing was identified
            console.print(
                f"elasticity within ±10% of the truth: "
                f"{'-' if share is None else f'{100 * share:.0f}%'} of the "
                f"{subset['items']} items {label or subset['definition']}"
            )
    console.print(f"simulated in {elapsed:.1f} s; wrote {out}/summary.json and charts")
