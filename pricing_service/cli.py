"""The ``pricing`` command: one entry point for every role of the service."""

from __future__ import annotations

import typer

from crawlers import cli as crawlers_cli
from pricing_service.demo import cli as demo_cli
from pricing_service.engine import cli as engine_cli
from pricing_service.rules import cli as rules_cli

app = typer.Typer(
    help="Dynamic pricing service: rules engine, price API, repricer and crawlers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(rules_cli.app, name="rules")
app.command("explain")(engine_cli.explain)
app.command("demo")(demo_cli.demo)
app.command("extract")(crawlers_cli.extract)


def main() -> None:
    app()
