"""The crawler commands: `pricing extract`, `pricing listings import`, `pricing scheduler`,
`pricing crawl` and `pricing demo-site`.

Registered by `pricing_service.cli`: `app.command("extract")(crawlers.cli.extract)`,
`app.add_typer(crawlers.cli.listings_app, name="listings")`,
`app.command("scheduler")(crawlers.cli.scheduler)`, `app.command("crawl")(crawlers.cli.crawl)`
and `app.command("demo-site")(crawlers.cli.demo_site)`.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import multiprocessing
import os
import signal
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import httpx
import typer
import uvicorn

from crawlers.demo_site import SiteState, create_app
from crawlers.extraction import PageLoadError, ProductResult, extract_product
from crawlers.fetch import Fetcher
from crawlers.listings import Listing, RowError, put_listings, read_listings_csv
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
        await Scheduler(store.redis, crawler_settings).run(stop, tick_seconds=tick)

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
    try:
        await run_until_stopped(worker.run(stop), stop, settings.shutdown_grace_seconds)
    finally:
        watcher.cancel()
        await fetcher.close()
        await store.close()


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
