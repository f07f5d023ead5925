"""``pricing elasticity fit``: fit every SKU's elasticity now, against the configured Redis."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from pricing_service.elasticity.refit import FitSummary, refit
from pricing_service.repricer.cli import run_with_store
from pricing_service.settings import get_settings

app = typer.Typer(help="Price elasticity estimates.", no_args_is_help=True)


@app.command("fit")
def fit() -> None:
    """Fit every SKU's elasticity from its sales buckets, store the estimates and queue the
    SKUs whose estimate changed for repricing."""
    summary: FitSummary = run_with_store(get_settings(), refit)
    table = Table(title="Elasticity fit", show_header=False)
    table.add_row("fitted at", summary.fitted_at.isoformat())
    table.add_row("items", f"{summary.items:,}")
    table.add_row("with an estimate", f"{summary.estimated:,}")
    table.add_row("changed (queued)", f"{summary.changed:,}")
    table.add_row("item-days used", f"{summary.observations:,}")
    table.add_row("seconds", f"{summary.seconds:.2f}")
    Console().print(table)
