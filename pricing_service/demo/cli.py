"""`pricing demo`: the whole service in one command, on an embedded Redis.

It loads the demo catalogue (items, competitor offers, four weeks of sales) into the
store, runs the repricer and the API in one process, and prints URLs to try. With
``--offline`` it only prices the catalogue with the engine and prints a table.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
import uvicorn
from rich.console import Console
from rich.table import Table

from pricing_service.api.app import create_app
from pricing_service.api.auth import hash_key
from pricing_service.demo.catalogue import demo_catalogue
from pricing_service.engine.cli import (
    AtOption,
    SegmentOption,
    parse_instant,
    print_diagnostics,
)
from pricing_service.engine.compiled import CompiledRuleset
from pricing_service.engine.inputs import PricingInputs, Segment
from pricing_service.engine.schedule import schedule
from pricing_service.repricer.worker import Repricer
from pricing_service.rules.loader import RulesetError, load_ruleset
from pricing_service.settings import Settings
from pricing_service.store.embedded import resolve_redis_url
from pricing_service.store.store import OfferStatus, Store

logger = logging.getLogger(__name__)


def _daily_units(inputs: PricingInputs) -> list[int]:
    """Units sold on each of the last 28 days (today first) matching the demo demand."""
    demand = inputs.demand
    if demand is None or demand.velocity_7d is None or demand.velocity_28d is None:
        return []
    recent = round(demand.velocity_7d)
    earlier_total = max(0, round(demand.velocity_28d * 28) - recent * 7)
    earlier = [earlier_total // 21 + (1 if day < earlier_total % 21 else 0) for day in range(21)]
    return [recent] * 7 + earlier


async def seed_demo(store: Store, now: datetime) -> int:
    """Write the demo catalogue to the store; every item is then queued for repricing."""
    catalogue = demo_catalogue(now)
    for inputs in catalogue:
        sku = inputs.item.sku
        offers = [
            OfferStatus(observation=offer, received_at=offer.observed_at)
            for offer in inputs.observations
        ]
        if offers:
            await store.put_offers(sku, offers)
        paid = inputs.item.current_price or inputs.item.list_price
        if paid is not None:
            sales = [
                (now - timedelta(days=day), units, paid)
                for day, units in enumerate(_daily_units(inputs))
                if units
            ]
            await store.add_sales(sku, inputs.item.currency, sales)
    await store.put_items([inputs.item for inputs in catalogue], reason="demo")
    return len(catalogue)


async def _run(settings: Settings, url: str, rules: Path, console: Console, key: str) -> None:
    store = Store.from_settings(url, settings)
    try:
        count = await seed_demo(store, datetime.now(UTC))
        repricer = Repricer.from_settings(store, settings, rules)
        await repricer.load_rules()
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings),
                host=settings.host,
                port=settings.port,
                loop="asyncio",
                http="httptools",
                log_level="warning",
            )
        )
        stop = asyncio.Event()
        worker = asyncio.create_task(repricer.run(stop))
        base = f"http://{settings.host}:{settings.port}"
        console.print(
            f"[bold]Demo running[/bold]: {count} items, rules from {rules}/, Redis at {url}"
        )
        console.print(f"  API docs        {base}/docs")
        console.print(f"  a price         {base}/v1/prices/TV-55-OLED")
        console.print(
            f"  member app      {base}/v1/prices/TV-55-OLED?segment=channel:app,tier:member"
        )
        console.print(
            f"  explained       curl -H 'Authorization: Bearer {key}' "
            f"'{base}/v1/prices/TV-55-OLED?explain=true'"
        )
        console.print(
            f"  audit trail     curl -H 'Authorization: Bearer {key}' "
            f"'{base}/v1/prices/BOOK-PY-101/history'"
        )
        console.print(f"  metrics         {base}/metrics")
        console.print(f"  demo admin key  {key}   (Ctrl-C stops the demo)")
        try:
            await server.serve()
        finally:
            stop.set()
            await worker
    finally:
        await store.close()


def _offline_table(rules: Path, at: str | None, segment: str | None) -> None:
    try:
        ruleset = load_ruleset(rules)
    except RulesetError as exc:
        print_diagnostics(exc)
        raise typer.Exit(code=1) from None
    compiled = CompiledRuleset(ruleset)
    zone = ZoneInfo(ruleset.timezone)
    moment = parse_instant(at, zone)
    wanted = Segment.parse(segment)
    table = Table(title=f"Demo catalogue at {moment.astimezone(zone):%Y-%m-%d %H:%M %Z}")
    table.add_column("sku", no_wrap=True)
    for column in ("current", "price", "rule", "strategy", "guardrails", "next change"):
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
        f"ruleset {ruleset.version}. Explain one: pricing explain --item examples/item.json"
    )


def demo(
    rules: Annotated[Path | None, typer.Option(help="Rule files folder.")] = None,
    offline: Annotated[
        bool, typer.Option(help="Only price the catalogue with the engine; no Redis, no API.")
    ] = False,
    at: AtOption = None,
    segment: SegmentOption = None,
) -> None:
    """Run the whole service on the demo catalogue: embedded Redis, repricer and API."""
    settings = Settings()
    rules_dir = rules or settings.rules_dir
    if offline:
        _offline_table(rules_dir, at, segment)
        return
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    url, embedded = resolve_redis_url(settings.configured_redis_url, settings.data_dir)
    key = secrets.token_urlsafe(18)
    demo_settings = settings.model_copy(
        update={
            "redis_url": url,
            "public_reads": True,
            "api_keys": f"demo:admin:{hash_key(key)}",
            "rules_dir": rules_dir,
            "repricer_metrics_port": 0,
        }
    )
    console = Console(soft_wrap=True)  # the curl lines must stay whole to be copied
    if embedded is not None:
        console.print(f"embedded Redis, data in {embedded.data_dir} (kept across restarts)")
    try:
        asyncio.run(_run(demo_settings, url, rules_dir, console, key))
    except KeyboardInterrupt:
        pass
    finally:
        if embedded is not None:
            embedded.stop()
