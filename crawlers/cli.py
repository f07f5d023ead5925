"""The crawler commands: `pricing extract`, `pricing listings import|list|delete`,
`pricing scheduler`, `pricing crawl` and `pricing demo-site`.

Registered by `pricing_service.cli`: `app.command("extract")(crawlers.cli.extract)`,
`app.add_typer(crawlers.cli.listings_app, name="listings")`,
`app.command("scheduler")(crawlers.cli.scheduler)`, `app.command("crawl")(crawlers.cli.crawl)`
and `app.command("demo-site")(crawlers.cli.demo_site)`.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import json
import logging
import multiprocessing
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import typer
import uvicorn
from pydantic import TypeAdapter, ValidationError
from rich.console import Console
from rich.table import Table

from crawlers.demo_site import SiteState, create_app
from crawlers.extraction import PageLoadError, ProductResult, extract_product
from crawlers.fetch import Fetcher
from crawlers.listings import (
    CSV_COLUMNS,
    CompetitorField,
    Listing,
    ListingDeleter,
    ListingRef,
    RowError,
    Scheduled,
    SkuField,
    format_frequency,
    listed,
    put_listings,
    read_listing_refs_csv,
    read_listings_csv,
    scan_listings,
    skus_listings,
)
from crawlers.scheduler import Scheduler
from crawlers.settings import CrawlerSettings
from crawlers.worker import CrawlWorker, run_event_loop
from pricing_service.logs import configure_logging
from pricing_service.metrics import serve_metrics
from pricing_service.rules.diagnostics import RulesetError
from pricing_service.rules.loader import load_ruleset
from pricing_service.rules.model import Competitor
from pricing_service.rules.watch import LoadedRules, RulesState
from pricing_service.settings import get_settings
from pricing_service.shutdown import run_until_stopped, stop_on_signals
from pricing_service.store.embedded import resolve_redis_url
from pricing_service.store.store import Store

_FETCH_TIMEOUT_SECONDS = 20.0
_USER_AGENT = "pricing-service-extractor/0.1 (+https://github.com/)"


def load_page(source: str) -> tuple[bytes, str | None, str | None]:
    """Page bytes, its URL (if fetched) and Content-Type header, from a path or URL."""
    if source.startswith(("http://", "https://")):
        try:
            response = httpx.get(
                source,
                follow_redirects=True,
                timeout=_FETCH_TIMEOUT_SECONDS,
                headers={"User-Agent": _USER_AGENT},
            )
            response.raise_for_status()
        except httpx.HTTPError as error:
            raise PageLoadError(f"cannot fetch {source}: {error}") from error
        return response.content, str(response.url), response.headers.get("content-type")
    path = Path(source)
    try:
        raw = path.read_bytes()
        return (gzip.decompress(raw) if path.suffix == ".gz" else raw), None, None
    except (OSError, gzip.BadGzipFile) as error:
        raise PageLoadError(f"cannot read {source}: {error}") from error


def _readable(source: str, result: ProductResult) -> str:
    if result.blocked:
        return f"{source}\n  blocked: CAPTCHA, bot wall or error page; no price"
    price = "none" if result.price is None else f"{result.price} {result.currency or ''}".strip()
    if result.price_is_lowest:
        price += " (lowest of several variant prices)"
    lines = [
        source,
        f"  price:        {price}",
        f"  availability: {result.availability or 'unknown'}",
        f"  sku:          {result.sku or 'none'}",
        f"  gtin:         {result.gtin or 'none'}",
    ]
    if result.shipping is not None:
        lines.append(f"  shipping:     {result.shipping}")
    lines.append(f"  method:       {result.method} (confidence {result.confidence:.2f})")
    return "\n".join(lines)


def extract(
    paths: Annotated[
        list[str],
        typer.Argument(help="Product pages: .html or .html.gz files, or http(s) URLs."),
    ],
    jsonl: Annotated[
        bool,
        typer.Option(
            "--jsonl",
            help='One JSON object per input: {"file", "price", "currency", "availability", '
            '"sku", "gtin", "shipping", "method", "confidence", "blocked", '
            '"price_is_lowest"}; money is a decimal string.',
        ),
    ] = False,
    url: Annotated[
        str | None,
        typer.Option(help="The page's original URL, for files saved from the web."),
    ] = None,
) -> None:
    """Extract the main product's price, availability and codes from product pages."""
    failed = False
    for source in paths:
        try:
            raw, fetched_url, content_type = load_page(source)
        except PageLoadError as error:
            typer.echo(str(error), err=True)
            failed = True
            continue
        result = extract_product(raw, fetched_url or url, content_type=content_type)
        if jsonl:
            record = {"file": source, **result.to_json_dict()}
            typer.echo(json.dumps(record, ensure_ascii=False))
        else:
            typer.echo(_readable(source, result))
    if failed:
        raise typer.Exit(code=1)


# -- listings, scheduler, workers, demo site ----------------------------------------------------

RulesDirOption = Annotated[
    Path | None, typer.Option("--rules", help="Rule files folder; default PRICING_RULES_DIR.")
]
listings_app = typer.Typer(help="Competitor listings: which page to crawl for which SKU.")
_T = TypeVar("_T")
logger = logging.getLogger(__name__)
#: Listings written per Redis pipeline.
LISTINGS_CHUNK = 1000


def _competitors(rules: Path | None) -> dict[str, Competitor]:
    try:
        return dict(load_ruleset(rules or get_settings().rules_dir).competitors)
    except RulesetError as exc:
        for diagnostic in exc.diagnostics:
            typer.echo(str(diagnostic), err=True)
        raise typer.Exit(code=1) from None


def _run_with_store(work: Callable[[Store], Awaitable[_T]]) -> _T:
    settings = get_settings()
    url, embedded = resolve_redis_url(settings.configured_redis_url, settings.data_dir)

    async def run() -> _T:
        store = Store.from_settings(url, settings)
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    finally:
        if embedded is not None:
            embedded.stop()


@listings_app.command("import")
def import_listings(
    path: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, help="CSV with columns sku, competitor, url, frequency."
        ),
    ],
    rules: RulesDirOption = None,
) -> None:
    """Store listings from a CSV file ("6h", "1d" frequencies), with per-line errors.

    Exits with 1 when any line is invalid (the valid ones are still stored).
    """
    competitors = _competitors(rules)
    rows = list(read_listings_csv(path, competitors))
    listings = [row for row in rows if isinstance(row, Listing)]
    errors = [row for row in rows if isinstance(row, RowError)]

    partitions = CrawlerSettings().queue_partitions

    async def store_all(store: Store) -> int:
        stored = 0
        for start in range(0, len(listings), LISTINGS_CHUNK):
            chunk = listings[start : start + LISTINGS_CHUNK]
            stored += await put_listings(store.redis, chunk, partitions=partitions)
        return stored

    stored = _run_with_store(store_all)
    for error in errors:
        typer.echo(f"{path}:{error.line}: {error.message}", err=True)
    typer.echo(f"{stored} listing(s) stored, {len(errors)} error(s)")
    if errors:
        raise typer.Exit(code=1)


class ListFormat(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


#: What ``pricing listings list`` prints: the import's columns, then the next crawl.
LIST_COLUMNS = (*CSV_COLUMNS, "next_crawl_at")
CompetitorsOption = Annotated[
    list[str] | None,
    typer.Option("--competitor", help="Only this competitor's listings (repeatable)."),
]
SkusOption = Annotated[
    list[str] | None, typer.Option("--sku", help="Only this SKU's (repeatable).")
]


def _checked(values: list[str] | None, field: Any, option: str) -> list[str]:
    """``values`` when each is a valid ``field`` (a SKU, a competitor id)."""
    adapter: TypeAdapter[str] = TypeAdapter(field)
    for value in values or []:
        try:
            adapter.validate_python(value)
        except ValidationError:
            raise typer.BadParameter(f"not a valid id: {value!r}", param_hint=option) from None
    return values or []


def _list_row(scheduled: Scheduled) -> dict[str, str | None]:
    listing, at = scheduled.listing, scheduled.next_due
    return {
        "sku": listing.sku,
        "competitor": listing.competitor,
        "url": listing.url,
        "frequency": format_frequency(listing.frequency),
        "next_crawl_at": None
        if at is None
        else datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds"),
    }


class _ListPrinter:
    """Prints listings a batch at a time, so a million of them need no more memory than
    a batch: a table per batch (the header on the first), CSV rows or a JSON array."""

    def __init__(self, output: ListFormat) -> None:
        self.output = output
        self.printed = 0
        self._csv = csv.DictWriter(sys.stdout, LIST_COLUMNS, lineterminator="\n")

    def start(self) -> None:
        if self.output is ListFormat.CSV:
            self._csv.writeheader()
        elif self.output is ListFormat.JSON:
            sys.stdout.write("[")

    def batch(self, batch: list[Scheduled]) -> None:
        rows = [_list_row(scheduled) for scheduled in batch]
        if self.output is ListFormat.CSV:
            self._csv.writerows(rows)
        elif self.output is ListFormat.JSON:
            separators = ["," if self.printed or index else "" for index in range(len(rows))]
            for separator, row in zip(separators, rows, strict=True):
                sys.stdout.write(f"{separator}\n  {json.dumps(row)}")
        else:
            table = Table(show_header=not self.printed, box=None)
            for column in ("sku", "competitor", "url", "frequency", "next crawl (UTC)"):
                table.add_column(column, overflow="fold")
            for row in rows:
                table.add_row(*(row[column] or "not scheduled" for column in LIST_COLUMNS))
            Console().print(table)
        self.printed += len(rows)

    def end(self) -> None:
        if self.output is ListFormat.JSON:
            sys.stdout.write("\n]\n" if self.printed else "]\n")
        elif self.output is ListFormat.TABLE:
            typer.echo(f"{self.printed} listing(s)" if self.printed else "no listings")


@listings_app.command("list")
def list_listings(
    competitor: CompetitorsOption = None,
    sku: SkusOption = None,
    output: Annotated[
        ListFormat,
        typer.Option("--format", help="csv is what `pricing listings import` reads."),
    ] = ListFormat.TABLE,
) -> None:
    """Print the stored listings with their next crawl, in no particular order.

    Reads the crawl queue's due sets a thousand at a time (with --sku, only those SKUs)."""
    competitors = _checked(competitor, CompetitorField, "--competitor")
    skus = _checked(sku, SkuField, "--sku")
    partitions = CrawlerSettings().queue_partitions
    printer = _ListPrinter(output)

    async def print_all(store: Store) -> None:
        printer.start()
        if skus:
            found = await skus_listings(
                store.redis, skus, partitions=partitions, competitors=competitors
            )
            if found:
                printer.batch(found)
        else:
            batches = scan_listings(store.redis, partitions=partitions, competitors=competitors)
            async for batch in batches:
                printer.batch(batch)
        printer.end()

    _run_with_store(print_all)


@listings_app.command("delete")
def delete_listings(
    competitor: Annotated[
        str | None,
        typer.Option(
            "--competitor",
            help="Delete this competitor's listings: all of them, or those of --sku. It "
            "need not be in the rules any more.",
        ),
    ] = None,
    sku: SkusOption = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            exists=True,
            dir_okay=False,
            help="Delete the listings of a CSV with columns sku and competitor (others are "
            "ignored, as in the output of `pricing listings list --format csv`).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count the listings that would go; delete none.")
    ] = False,
) -> None:
    """Stop crawling listings: each goes with its due time, failures in a row and in-flight
    mark; a job already queued for it ends `unknown_listing`. Observations stay.

    A file with any invalid line deletes nothing (exit 1)."""
    if (competitor is None) == (file is None):
        raise typer.BadParameter("give either --competitor or --file")
    if file is not None and sku:
        raise typer.BadParameter("--sku goes with --competitor, not --file")
    partitions = CrawlerSettings().queue_partitions
    refs: list[ListingRef] | None = None  # None: every listing of the competitor
    if file is not None:
        rows = list(read_listing_refs_csv(file))
        errors = [row for row in rows if isinstance(row, RowError)]
        for error in errors:
            typer.echo(f"{file}:{error.line}: {error.message}", err=True)
        if errors:
            typer.echo(f"{len(errors)} error(s); nothing deleted", err=True)
            raise typer.Exit(code=1)
        refs = list(dict.fromkeys(row for row in rows if isinstance(row, ListingRef)))
    elif competitor is not None:
        [competitor] = _checked([competitor], CompetitorField, "--competitor")
        if sku:
            skus = _checked(sku, SkuField, "--sku")
            refs = [ListingRef(sku=one, competitor=competitor) for one in dict.fromkeys(skus)]

    async def targets(store: Store) -> AsyncIterator[list[tuple[str, str]]]:
        if refs is not None:
            pairs = [(ref.sku, ref.competitor) for ref in refs]
            for start in range(0, len(pairs), LISTINGS_CHUNK):
                yield pairs[start : start + LISTINGS_CHUNK]
            return
        async for batch in scan_listings(
            store.redis, partitions=partitions, competitors=[str(competitor)]
        ):
            yield [(scheduled.listing.sku, scheduled.listing.competitor) for scheduled in batch]

    async def delete_all(store: Store) -> tuple[int, int]:
        """How many listings went (with --dry-run, are there) and how many asked for
        were not there."""
        deleter = ListingDeleter(store.redis, partitions)
        found = asked = 0
        async for batch in targets(store):
            if dry_run:
                present = await listed(store.redis, batch)
            else:
                present = [await deleter.delete(*pair) for pair in batch]
            found += sum(present)
            asked += len(batch)
        return found, asked - found

    found, missing = _run_with_store(delete_all)
    not_found = f", {missing} not found" if missing else ""
    if not found:
        typer.echo(f"no listing matched; nothing {'would be ' if dry_run else ''}deleted")
    elif dry_run:
        typer.echo(f"{found} listing(s) would be deleted{not_found} (dry run)")
    else:
        typer.echo(f"{found} listing(s) deleted{not_found}")


def _logging() -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request drowns the rest


def scheduler(
    tick: Annotated[float, typer.Option(min=0.1, help="Seconds between two looks.")] = 1.0,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0, max=65535, help="/metrics port; default PRICING_SCHEDULER_METRICS_PORT; 0: off."
        ),
    ] = None,
) -> None:
    """Queue crawl jobs for due listings (with jitter and backpressure) until stopped."""
    _logging()
    crawler_settings = CrawlerSettings()
    serve_metrics(get_settings().scheduler_metrics_port if metrics_port is None else metrics_port)

    async def work(store: Store) -> None:
        stop = stop_on_signals()
        logger.info("scheduler running, a tick every %s s", tick)
        await Scheduler(store.redis, crawler_settings).run(stop, tick_seconds=tick)
        logger.info("scheduler stopped")

    _run_with_store(work)


def crawl(
    processes: Annotated[int, typer.Option(min=1, max=256, help="Worker processes.")] = 1,
    concurrency: Annotated[
        int, typer.Option(min=1, max=1024, help="Jobs in progress per process.")
    ] = 8,
    rules: RulesDirOption = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="First process's /metrics port (the next ones count up); "
            "default PRICING_CRAWLER_METRICS_PORT; 0: off.",
        ),
    ] = None,
) -> None:
    """Run crawler workers: fetch, extract, gate and store competitor prices until stopped.

    On SIGTERM each worker takes no new jobs and finishes those in hand; after
    PRICING_SHUTDOWN_GRACE_SECONDS the unfinished ones are released to other workers."""
    _logging()
    settings = get_settings()
    if metrics_port is None:
        metrics_port = settings.crawler_metrics_port
    rules_dir = rules or settings.rules_dir
    _competitors(rules_dir)  # refuse to start on invalid rules, with their diagnostics
    url, embedded = resolve_redis_url(settings.configured_redis_url, settings.data_dir)
    try:
        if processes == 1:
            _worker_process(url, rules_dir, concurrency, metrics_port)
            return
        context = multiprocessing.get_context("spawn")
        children = [
            context.Process(
                target=_worker_process,
                args=(url, rules_dir, concurrency, metrics_port + index if metrics_port else 0),
                name=f"crawler-{index}",
            )
            for index in range(processes)
        ]
        for child in children:
            child.start()

        def stop_children(number: int, _: object) -> None:
            for child in children:
                if child.pid is not None and child.is_alive():
                    os.kill(child.pid, signal.SIGTERM)  # each finishes the jobs in hand

        signal.signal(signal.SIGINT, stop_children)
        signal.signal(signal.SIGTERM, stop_children)
        for child in children:
            child.join()
    finally:
        if embedded is not None:
            embedded.stop()


def _worker_process(url: str, rules_dir: Path, concurrency: int, metrics_port: int) -> None:
    _logging()  # again: a spawned worker starts with nothing configured
    serve_metrics(metrics_port)
    run_event_loop(_work(url, rules_dir, concurrency))


async def _work(url: str, rules_dir: Path, concurrency: int) -> None:
    settings = get_settings()
    crawler_settings = CrawlerSettings()
    rules = RulesState(rules_dir)
    await asyncio.to_thread(rules.reload)
    if rules.current is None:  # edited into errors since the command checked them
        raise RuntimeError(f"the rules in {rules_dir} have errors:\n{rules.last_error}")
    competitors = dict(rules.current.compiled.ruleset.competitors)
    store = Store.from_settings(url, settings)
    fetcher = Fetcher(crawler_settings, store.redis, competitors)
    worker = CrawlWorker(
        store,
        fetcher,
        competitors,
        crawler_settings,
        consumer=f"{socket.gethostname()}-{os.getpid()}",
        concurrency=concurrency,
        block_seconds=min(0.5, settings.redis_socket_timeout / 2),
    )

    def use_rules(loaded: LoadedRules) -> None:
        worker.use_competitors(dict(loaded.compiled.ruleset.competitors))
        logger.info("competitors of ruleset %s in use", loaded.compiled.version)

    watcher = asyncio.create_task(rules.watch(settings.rules_poll_seconds, use_rules))
    stop = stop_on_signals()
    logger.info("crawler %s running, %d jobs at a time", worker.consumer, concurrency)
    try:
        await run_until_stopped(worker.run(stop), stop, settings.shutdown_grace_seconds)
    finally:
        watcher.cancel()
        await fetcher.close()
        await store.close()
    logger.info("crawler %s stopped", worker.consumer)


def demo_site(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8300,
    rate_limit: Annotated[
        float, typer.Option(min=0, help="Requests per second per client, then 429; 0: off.")
    ] = 0.0,
    error_rate: Annotated[float, typer.Option(min=0, max=1, help="Share of 503s.")] = 0.0,
    slow_rate: Annotated[float, typer.Option(min=0, max=1, help="Share of 2 s answers.")] = 0.0,
    captcha_rate: Annotated[float, typer.Option(min=0, max=1, help="Share of CAPTCHAs.")] = 0.0,
    period: Annotated[
        float, typer.Option(min=1, help="Seconds for prices to swing once around their base.")
    ] = 3600.0,
) -> None:
    """Serve the demo competitor shop: /jsonld/SKU, /microdata/SKU, /opengraph/SKU, /plain/SKU."""
    state = SiteState(
        period_seconds=period,
        rate_limit_per_second=rate_limit,
        error_rate=error_rate,
        slow_rate=slow_rate,
        captcha_rate=captcha_rate,
    )
    typer.echo(f"demo competitor site on http://{host}:{port}/jsonld/DEMO-1")
    uvicorn.run(create_app(state), host=host, port=port, log_level="warning")
