"""The ``pricing`` command: one entry point for every role of the service."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import redis
import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError

from crawlers import cli as crawlers_cli
from pricing_service.api import cli as api_cli
from pricing_service.demo import cli as demo_cli
from pricing_service.elasticity import cli as elasticity_cli
from pricing_service.engine import cli as engine_cli
from pricing_service.repricer import cli as repricer_cli
from pricing_service.rules import cli as rules_cli
from pricing_service.settings import get_settings
from pricing_service.simulate import cli as simulate_cli

app = typer.Typer(
    help="Dynamic pricing service: rules engine, price API, repricer and crawlers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(rules_cli.app, name="rules")
app.add_typer(elasticity_cli.app, name="elasticity")
app.command("demo")(demo_cli.demo)
app.command("serve")(api_cli.serve)
app.command("import")(api_cli.import_items)
app.command("repricer")(repricer_cli.repricer)
app.command("reprice")(repricer_cli.reprice)
app.command("extract")(crawlers_cli.extract)
app.add_typer(crawlers_cli.listings_app, name="listings")
app.command("scheduler")(crawlers_cli.scheduler)
app.command("crawl")(crawlers_cli.crawl)
app.command("demo-site")(crawlers_cli.demo_site)
app.command("simulate")(simulate_cli.simulate_command)


@app.command("explain")
def explain(
    sku: Annotated[
        str | None, typer.Argument(help="A SKU in the store (needs Redis; see REDIS_URL).")
    ] = None,
    item: Annotated[
        Path | None,
        typer.Option(
            help="ITEM.json: an item with its offers, demand and elasticity; no store needed.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    rules: Annotated[
        Path | None, typer.Option(help="Rule files folder; default PRICING_RULES_DIR.")
    ] = None,
    at: engine_cli.AtOption = None,
    segment: engine_cli.SegmentOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Explain a price: rule, steps, inputs with their age, guardrails, coming windows."""
    if (sku is None) == (item is None):
        raise typer.BadParameter("give either a SKU or --item ITEM.json")
    if item is not None:
        engine_cli.explain_item(item, rules or get_settings().rules_dir, at, segment, as_json)
    else:
        repricer_cli.explain_sku(sku or "", segment, at, as_json, rules)


#: The settings classes, by the name a validation error gives, with their variables' prefix.
_SETTINGS_PREFIXES = {"Settings": "PRICING_", "CrawlerSettings": "PRICING_CRAWL_"}


def _redis_source() -> str:
    """Which setting chose the Redis that could not be reached."""
    settings = get_settings()
    if settings.redis_cluster_url:
        return "REDIS_CLUSTER_URL"
    if settings.redis_url:
        return "REDIS_URL"
    return "the embedded Redis in PRICING_DATA_DIR: neither REDIS_URL nor REDIS_CLUSTER_URL is set"


def main() -> None:
    try:
        app()
    except ValidationError as exc:
        # A bad environment variable (or .env line): say which, not a traceback.
        prefix = _SETTINGS_PREFIXES.get(exc.title)
        if prefix is None:
            raise
        for error in exc.errors(include_url=False):
            name = "_".join(str(part) for part in error["loc"])
            # A field read through an alias (REDIS_URL) is named by it: already a variable.
            variable = name if name.isupper() else prefix + name.upper()
            typer.echo(f"invalid setting {variable}={error['input']!r}: {error['msg']}", err=True)
        raise SystemExit(2) from None
    except SettingsError as exc:  # a value that is not the JSON a list or table needs
        typer.echo(f"invalid setting: {exc} (expected JSON)", err=True)
        raise SystemExit(2) from None
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        # Long-running roles ride out outages; a command that cannot start says why.
        typer.echo(f"cannot reach Redis: {exc} ({_redis_source()})", err=True)
        raise SystemExit(1) from None
