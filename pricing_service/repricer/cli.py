"""``pricing repricer``, ``pricing reprice`` and ``pricing explain-sku``: the repricer's
commands, against the configured Redis (an embedded one when ``REDIS_URL`` is unset)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from pricing_service.engine.cli import (
    AtOption,
    SegmentOption,
    check_segment,
    parse_instant,
    print_decisions,
    print_diagnostics,
)
from pricing_service.engine.compiled import CompiledRuleset
from pricing_service.engine.inputs import PricingInputs, Segment
from pricing_service.engine.schedule import schedule
from pricing_service.engine.segments import canonical_segment
from pricing_service.logs import configure_logging
from pricing_service.repricer.full import current_instant, reprice_all, reprice_skus
from pricing_service.repricer.inputs import load_inputs
from pricing_service.repricer.parallel import RulesChangedError, reprice_all_in_processes
from pricing_service.repricer.pricer import Pricer, RepriceCounts
from pricing_service.repricer.worker import run_repricer
from pricing_service.rules.loader import RulesetError, load_ruleset
from pricing_service.settings import Settings, get_settings
from pricing_service.store.embedded import resolve_redis_url
from pricing_service.store.store import Store

RulesDirOption = Annotated[
    Path | None, typer.Option("--rules", help="Rule files folder; default PRICING_RULES_DIR.")
]
_T = TypeVar("_T")


def _ruleset(settings: Settings, rules: Path | None) -> CompiledRuleset:
    try:
        return CompiledRuleset(load_ruleset(rules or settings.rules_dir))
    except RulesetError as exc:
        print_diagnostics(exc)
        raise typer.Exit(code=1) from None


def run_with_store(
    settings: Settings, work: Callable[[Store], Awaitable[_T]], url: str | None = None
) -> _T:
    """Run ``work`` with a store on ``url``, by default the configured (or embedded) Redis."""
    if url is None:
        url, _embedded = resolve_redis_url(settings.configured_redis_url, settings.data_dir)

    async def run() -> _T:
        assert url is not None
        store = Store.from_settings(url, settings)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def repricer(
    rules: RulesDirOption = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0, max=65535, help="/metrics port; default PRICING_REPRICER_METRICS_PORT; 0: off."
        ),
    ] = None,
) -> None:
    """Run the repricer: reprice SKUs on input changes, window boundaries and rule edits."""
    settings = get_settings()
    if metrics_port is not None:
        settings = settings.model_copy(update={"repricer_metrics_port": metrics_port})
    configure_logging(settings.log_level, settings.log_format)
    url, _embedded = resolve_redis_url(settings.configured_redis_url, settings.data_dir)
    try:
        asyncio.run(run_repricer(settings, url, rules or settings.rules_dir))
    except RulesetError as exc:
        print_diagnostics(exc)
        raise typer.Exit(code=1) from None


def reprice(
    skus: Annotated[list[str] | None, typer.Argument(help="SKUs to reprice.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Reprice the whole catalogue.")] = False,
    processes: Annotated[
        int,
        typer.Option(
            min=1, max=64, help="With --all: processes sharing the catalogue (about one per core)."
        ),
    ] = 1,
    rules: RulesDirOption = None,
) -> None:
    """Reprice SKUs now and publish their prices; rerunning after a crash finishes the job."""
    if all_ == bool(skus):
        raise typer.BadParameter("give SKUs or --all (not both)")
    if processes > 1 and not all_:
        raise typer.BadParameter("--processes goes with --all")
    settings = get_settings()
    rules_dir = rules or settings.rules_dir
    compiled = _ruleset(settings, rules_dir)

    # Resolved here: with --processes, every process must use the same Redis.
    url, _embedded = resolve_redis_url(settings.configured_redis_url, settings.data_dir)

    async def work(store: Store) -> RepriceCounts:
        pricer = Pricer(store, boundary_lead_seconds=settings.boundary_lead_seconds)
        if not all_:
            return await reprice_skus(pricer, compiled, skus or [])
        if processes > 1:
            with Console(stderr=True).status(f"repricing in {processes} processes"):
                return await reprice_all_in_processes(
                    url, settings, rules_dir, compiled, current_instant(), processes
                )
        columns = (BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(*Progress.get_default_columns()[:1], *columns) as progress:
            task = progress.add_task("repricing", total=await store.count_items())
            return await reprice_all(
                pricer, compiled, on_progress=lambda done: progress.advance(task, done)
            )

    try:
        counts = run_with_store(settings, work, url)
    except RulesChangedError as exc:
        Console(stderr=True).print(f"{exc}; run the reprice again", markup=False)
        raise typer.Exit(code=1) from None
    table = Table(title=f"Reprice with ruleset {compiled.version} (per SKU and segment)")
    table.add_column("outcome")
    table.add_column("count", justify="right")
    for name, value in counts.as_dict().items():
        table.add_row(name, str(value))
    Console().print(table)
    if counts.frozen:
        Console(stderr=True).print("[yellow]prices are frozen: nothing was published[/yellow]")
    if counts.errors:
        # A script or a deploy step must see it: those SKUs keep their old price.
        Console(stderr=True).print(
            f"[red]{counts.errors} pricing(s) failed: their SKUs keep the price published "
            "before (the log names each one)[/red]"
        )
        raise typer.Exit(code=1)


def explain_sku(
    sku: Annotated[str, typer.Argument(help="The SKU, as stored in the catalogue.")],
    segment: SegmentOption = None,
    at: AtOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    rules: RulesDirOption = None,
) -> None:
    """Explain the price the rules give a stored SKU, from its inputs in the store."""
    settings = get_settings()
    compiled = _ruleset(settings, rules)
    try:
        asked = Segment.parse(segment)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    check_segment(compiled.ruleset.segments, asked)
    wanted = canonical_segment(compiled, asked)
    moment = parse_instant(at, ZoneInfo(compiled.ruleset.timezone))

    async def work(store: Store) -> PricingInputs | None:
        loaded = await load_inputs(store, compiled, [sku], moment, str(wanted))
        return loaded.get(sku)

    inputs = run_with_store(settings, work)
    if inputs is None:
        Console(stderr=True).print(f"{sku}: no such SKU in the catalogue", markup=False)
        raise typer.Exit(code=1)
    decisions = schedule(compiled, inputs, moment, segment=wanted)
    print_decisions(compiled, inputs, decisions, as_json=as_json)
