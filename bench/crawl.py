"""Crawler benchmarks (issue 6): throughput against Scrapy, and rate accuracy.

    python bench/crawl.py [--pages 2000] [--concurrency 16] [--window 10]
                          [--scrapy-python /tmp/scrapy-venv/bin/python]

Everything runs locally: a dedicated embedded Redis (a ``redis-server`` child on a Unix
socket, never the machine's 127.0.0.1:6379) and the demo competitor site
(``crawlers.demo_site``) on 127.0.0.1.

1. Throughput, politeness off. The demo site runs in its own process. The project's
   pipeline crawls ``--pages`` JSON-LD product pages: listings and items are stored, one
   scheduler tick queues the jobs, then one ``CrawlWorker`` process at ``--concurrency``
   fetches (``Fetcher``: domain checks, robots.txt, the fleet-wide pacer and leases, capped
   streaming reads), extracts, gates and stores every page. Politeness off means the
   competitor allows 1,000 requests/s (the configuration's maximum) and 256 requests in
   flight, and the site sets no Crawl-delay. Then Scrapy crawls the same URLs at the same
   concurrency (``CONCURRENT_REQUESTS`` and ``..._PER_DOMAIN``, no delay, no autothrottle,
   robots.txt not obeyed) with a spider that parses the same fields (price, currency,
   availability, SKU) from the JSON-LD and writes JSON Lines. Both figures are pages per
   second from the first request to the last stored page, start-up excluded.

   Scrapy is not a project dependency. Install it for the benchmark only:

       python3 -m venv /tmp/scrapy-venv && /tmp/scrapy-venv/bin/pip install scrapy

   and pass ``--scrapy-python /tmp/scrapy-venv/bin/python`` (the default; ``$SCRAPY_PYTHON``
   also works). Without it the Scrapy part is skipped and its GOAL line says so.

2. Rate accuracy, politeness on. Two competitors on two hosts of the demo site
   (``127.0.0.1`` at 20 requests/s, ``localhost`` at 8 requests/s) have far more jobs
   queued than they can serve in the window; a fleet of 2 worker processes crawls them.
   The demo site (in this process) logs every request; after a warm-up, the achieved rate
   per domain is the number of requests it received in a ``--window`` of seconds. Goal:
   within 5% of the configured rate, per domain.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from ipaddress import ip_network
from multiprocessing.synchronize import Event as EventType
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
#: The throughput run gives up this long (plus 50 ms a page) without its last outcome.
STUCK_AFTER_SECONDS = 60
sys.path.insert(0, str(REPO_ROOT))

import redis  # noqa: E402  (after the path setup that makes `crawlers` importable)
from redis.cluster import RedisCluster  # noqa: E402

from crawlers import keys  # noqa: E402
from crawlers.demo_site import DemoSiteServer, SiteState  # noqa: E402
from crawlers.fetch import Fetcher  # noqa: E402
from crawlers.listings import Listing, put_listings  # noqa: E402
from crawlers.scheduler import Scheduler  # noqa: E402
from crawlers.settings import CrawlerSettings  # noqa: E402
from crawlers.worker import CrawlWorker, run_event_loop  # noqa: E402
from pricing_service.engine.inputs import ItemFacts  # noqa: E402
from pricing_service.rules.model import Competitor  # noqa: E402
from pricing_service.store.embedded import EmbeddedCluster, EmbeddedRedis  # noqa: E402
from pricing_service.store.store import Store  # noqa: E402

GOAL_SCRAPY_RATIO = 1.5
GOAL_RATE_TOLERANCE = 0.05
DEFAULT_SCRAPY_PYTHON = "/tmp/scrapy-venv/bin/python"
#: Rate accuracy: competitor id -> (host, path prefix, requests/s).
RATE_DOMAINS = {
    "alpha": ("127.0.0.1", "/jsonld/", Decimal(20)),
    "beta": ("localhost", "/microdata/", Decimal(8)),
}
CLUSTER_PARTITIONS = 3
RATE_WORKERS = 2
RATE_WORKER_CONCURRENCY = 8
RATE_WARMUP_SECONDS = 3.0

SPIDER = textwrap.dedent(
    '''\
    """Scrapy's side of bench/crawl.py: the same URLs, the same fields from the JSON-LD."""
    import json
    import sys

    import scrapy
    from scrapy.crawler import CrawlerProcess

    URLS, OUTPUT, CONCURRENCY = sys.argv[1], sys.argv[2], int(sys.argv[3])


    class ProductSpider(scrapy.Spider):
        name = "products"

        async def start(self):
            with open(URLS) as handle:
                for line in handle:
                    yield scrapy.Request(line.strip(), callback=self.parse, dont_filter=True)

        def start_requests(self):  # Scrapy before 2.13
            with open(URLS) as handle:
                for line in handle:
                    yield scrapy.Request(line.strip(), callback=self.parse, dont_filter=True)

        def parse(self, response):
            for text in response.css('script[type="application/ld+json"]::text').getall():
                data = json.loads(text)
                if data.get("@type") != "Product":
                    continue
                offer = data.get("offers") or {}
                yield {
                    "url": response.url,
                    "sku": data.get("sku"),
                    "price": offer.get("price"),
                    "currency": offer.get("priceCurrency"),
                    "availability": offer.get("availability"),
                }


    process = CrawlerProcess(
        settings={
            "CONCURRENT_REQUESTS": CONCURRENCY,
            "CONCURRENT_REQUESTS_PER_DOMAIN": CONCURRENCY,
            "DOWNLOAD_DELAY": 0,
            "AUTOTHROTTLE_ENABLED": False,
            "ROBOTSTXT_OBEY": False,
            "COOKIES_ENABLED": False,
            "TELNETCONSOLE_ENABLED": False,
            "LOG_LEVEL": "WARNING",
            "FEEDS": {OUTPUT: {"format": "jsonlines", "overwrite": True}},
        }
    )
    crawler = process.create_crawler(ProductSpider)
    process.crawl(crawler)
    process.start()
    stats = crawler.stats.get_stats()
    seconds = (stats["finish_time"] - stats["start_time"]).total_seconds()
    print(json.dumps({
        "seconds": seconds,
        "responses": stats.get("response_received_count", 0),
        "items": stats.get("item_scraped_count", 0),
        "errors": stats.get("log_count/ERROR", 0),
    }))
    '''
)


# -- the demo site in its own process ---------------------------------------------------------


def _serve_site(port_queue: Any, stop: EventType) -> None:
    with DemoSiteServer(SiteState()) as site:
        port_queue.put(site.url)
        stop.wait()


# -- throughput ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """The Redis the pipeline runs on: one server, or a cluster with the crawl queue split
    into ``partitions``."""

    url: str
    cluster: bool = False
    partitions: int = 1

    def store(self, **options: Any) -> Store:
        retention = timedelta(days=35)
        return Store.from_url(self.url, retention=retention, cluster=self.cluster, **options)

    def client(self) -> Any:
        return RedisCluster.from_url(self.url) if self.cluster else redis.Redis.from_url(self.url)

    def settings(self, **options: Any) -> CrawlerSettings:
        return CrawlerSettings(
            _env_file=None,
            allowed_private_networks=[ip_network("127.0.0.0/8"), ip_network("::1/128")],
            queue_partitions=self.partitions,
            **options,
        )


async def _seed(target: Target, listings: list[Listing], due: list[float] | None = None) -> int:
    """Store the items and listings (due at ``due``, epoch seconds in the past), queue
    every job in due order; the number queued."""
    store = target.store()
    partitions = target.partitions
    try:
        await store.redis.flushdb()
        items = [ItemFacts(sku=x.sku, currency="USD", list_price=Decimal(500)) for x in listings]
        for start in range(0, len(items), 1000):
            await store.put_items(items[start : start + 1000])
            if due is None:
                chunk = listings[start : start + 1000]
                await put_listings(store.redis, chunk, partitions=partitions, now=0)
        for listing, at in zip(listings, due or [], strict=False):
            await put_listings(store.redis, [listing], partitions=partitions, now=at)
        settings = target.settings(max_backlog=len(listings) + 1)
        scheduler = Scheduler(store.redis, settings)
        queued = 0
        while queued < len(listings):
            result = await scheduler.tick()
            if not result.queued:
                break
            queued += result.queued
        return queued
    finally:
        await store.close()


async def _run_workers(
    target: Target,
    competitors: dict[str, Competitor],
    concurrency: int,
    *,
    until_outcomes: int | None = None,
    stop_event: EventType | None = None,
    ready: EventType | None = None,
) -> tuple[float, float]:
    """One worker process's loop; returns the monotonic times of its start and end."""
    store = target.store(pool_size=concurrency * 4)
    fetcher = Fetcher(target.settings(), store.redis, competitors)
    worker = CrawlWorker(
        store,
        fetcher,
        competitors,
        target.settings(),
        consumer=f"bench-{os.getpid()}",
        concurrency=concurrency,
        block_seconds=0.05,
    )
    stop = asyncio.Event()

    stuck = False

    async def watch() -> None:
        nonlocal stuck
        # A job that keeps failing stays pending and is logged: give up rather than hang.
        deadline = time.monotonic() + STUCK_AFTER_SECONDS + (until_outcomes or 0) / 20
        while not stop.is_set():
            await asyncio.sleep(0.02)
            if stop_event is not None and stop_event.is_set():
                stop.set()
            if until_outcomes is not None and await _done(store, target, until_outcomes):
                stop.set()
            if until_outcomes is not None and time.monotonic() > deadline:
                stuck = True
                stop.set()

    watcher = asyncio.create_task(watch())
    if ready is not None:
        ready.set()
    started = time.monotonic()
    try:
        await worker.run(stop)
        if stuck:
            raise SystemExit(f"the crawl stalled before {until_outcomes} outcomes (see the log)")
        return started, time.monotonic()
    finally:
        stop.set()
        await watcher
        await fetcher.close()
        await store.close()


async def _done(store: Store, target: Target, outcomes: int) -> bool:
    queues = keys.queues(target.partitions)
    return sum([int(await store.redis.xlen(queue.outcomes)) for queue in queues]) >= outcomes


def _redis_commands(target: Target) -> int:
    client = target.client()
    try:
        if target.cluster:  # per node
            nodes: Any = client.info("stats", target_nodes=RedisCluster.PRIMARIES)
            return sum(int(node["total_commands_processed"]) for node in nodes.values())
        stats: Any = client.info("stats")
        return int(stats["total_commands_processed"])
    finally:
        client.close()


def _outcomes(target: Target) -> Counter[str]:
    client = target.client()
    try:
        counts: Counter[str] = Counter()
        for queue in keys.queues(target.partitions):
            entries: Any = client.xrange(queue.outcomes)
            for _, fields in entries:
                counts[fields[b"outcome"].decode()] += 1
        return counts
    finally:
        client.close()


def _bench_competitors() -> dict[str, Competitor]:
    return {
        "bench": Competitor(
            name="Bench shop",
            domains=["127.0.0.1"],
            requests_per_second=Decimal(1000),
            concurrency=256,
        )
    }


def _throughput_worker(
    target: Target, concurrency: int, pages: int, times: Any, ready: EventType, go: EventType
) -> None:
    ready.set()
    go.wait()
    competitors = _bench_competitors()
    spans = run_event_loop(_run_workers(target, competitors, concurrency, until_outcomes=pages))
    times.put(spans)


def bench_ours(
    target: Target, site: str, pages: int, concurrency: int, processes: int = 1
) -> dict[str, Any]:
    """The pipeline in ``processes`` worker processes sharing ``concurrency``."""
    listings = [
        Listing(
            sku=f"BENCH-{n}",
            competitor="bench",
            url=f"{site}/jsonld/BENCH-{n}",
            frequency=timedelta(hours=6),
        )
        for n in range(pages)
    ]
    queued = asyncio.run(_seed(target, listings))
    assert queued == pages, f"queued {queued} of {pages} jobs"
    commands = _redis_commands(target)
    cpu = time.process_time()
    if processes == 1:
        started, ended = run_event_loop(
            _run_workers(target, _bench_competitors(), concurrency, until_outcomes=pages)
        )
    else:
        context = multiprocessing.get_context("spawn")
        times = context.Queue()
        share = concurrency // processes
        go = context.Event()
        readies = [context.Event() for _ in range(processes)]
        arguments = [(target, share, pages, times, ready, go) for ready in readies]
        fleet = [context.Process(target=_throughput_worker, args=args) for args in arguments]
        for process in fleet:
            process.start()
        for ready in readies:
            ready.wait(60)
        go.set()
        spans = [times.get(timeout=600) for _ in fleet]
        for process in fleet:
            process.join(30)
        # Each process's clock starts once it is up: from the first start to the last end.
        started, ended = min(s for s, _ in spans), max(e for _, e in spans)
    cpu = time.process_time() - cpu  # this process's, threads included: 1 process only
    commands = _redis_commands(target) - commands
    outcomes = _outcomes(target)
    done = sum(outcomes.values())
    seconds = ended - started
    return {
        "cpu_ms_per_page": cpu * 1000 / done,
        "redis_commands_per_page": commands / done,
        "seconds": seconds,
        "pages": done,
        "stored": outcomes["accepted"] + outcomes["quarantined"],
        "outcomes": dict(outcomes),
        "pages_per_second": done / seconds,
    }


def bench_scrapy(
    python: str | None, site: str, pages: int, concurrency: int, folder: Path
) -> dict[str, Any] | None:
    if python is None or not Path(python).exists():
        return None
    spider = folder / "spider.py"
    spider.write_text(SPIDER)
    urls = folder / "urls.txt"
    urls.write_text("".join(f"{site}/jsonld/BENCH-{n}\n" for n in range(pages)))
    output = folder / "scrapy.jsonl"
    completed = subprocess.run(
        [python, str(spider), str(urls), str(output), str(concurrency)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if completed.returncode != 0:
        print(completed.stderr[-2000:], file=sys.stderr)
        raise RuntimeError(f"the Scrapy run failed with {completed.returncode}")
    summary: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    lines = output.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    summary["written"] = len(records)
    summary["with_price"] = sum(1 for r in records if r.get("price") and r.get("currency"))
    summary["pages_per_second"] = summary["written"] / summary["seconds"]
    return summary


def scrapy_version(python: str | None) -> str:
    if python is None or not Path(python).exists():
        return "not installed"
    completed = subprocess.run(
        [python, "-c", "import scrapy; print(scrapy.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return completed.stdout.strip() or "unusable"


def bench_on_cluster(
    folder: Path, site: str, pages: int, concurrency: int, single: dict[str, Any]
) -> None:
    """The throughput run again, on a local Redis Cluster of 3 masters with the crawl
    queue in 3 partitions, against ``single``: the same run on one Redis."""
    cluster = EmbeddedCluster(folder / "cluster")
    cluster.start()
    try:
        target = Target(cluster.url, cluster=True, partitions=CLUSTER_PARTITIONS)
        ours = bench_ours(target, site, pages, concurrency)
        for processes in (1, 2):
            figures = ours if processes == 1 else bench_ours(target, site, pages, concurrency, 2)
            print(
                f"  pipeline on a 3-master Redis Cluster, {CLUSTER_PARTITIONS} queue partitions, "
                f"{processes} process(es) x {concurrency // processes} (for information): "
                f"{figures['pages_per_second']:.0f} pages/s ({figures['pages']} outcomes, "
                f"{figures['stored']} observations stored; outcomes {figures['outcomes']})"
            )
        print(
            f"  on the cluster, 1 process: {ours['cpu_ms_per_page']:.1f} ms of crawler CPU and "
            f"{ours['redis_commands_per_page']:.1f} Redis commands per page; "
            f"{ours['pages_per_second'] / single['pages_per_second']:.2f}x one Redis's pages/s"
        )
    finally:
        cluster.stop()


# -- rate accuracy ------------------------------------------------------------------------------


def _rate_competitors() -> dict[str, Competitor]:
    return {
        competitor: Competitor(
            name=competitor, domains=[host], requests_per_second=rate, concurrency=4
        )
        for competitor, (host, _, rate) in RATE_DOMAINS.items()
    }


def _rate_worker(url: str, stop: EventType, ready: EventType) -> None:
    run_event_loop(
        _run_workers(
            Target(url), _rate_competitors(), RATE_WORKER_CONCURRENCY, stop_event=stop, ready=ready
        )
    )


def bench_rates(url: str, window: float) -> dict[str, dict[str, float]]:
    with DemoSiteServer(SiteState()) as site:
        port = site.url.rsplit(":", 1)[1]
        listings: list[Listing] = []
        due: list[float] = []
        for competitor, (host, prefix, rate) in RATE_DOMAINS.items():
            # Far more jobs than the window can serve: the rate limit is what binds.
            count = int(float(rate) * (window + RATE_WARMUP_SECONDS + 30))
            listings += [
                Listing(
                    sku=f"R{competitor}-{n}",
                    competitor=competitor,
                    url=f"http://{host}:{port}{prefix}R{competitor}-{n}",
                    frequency=timedelta(hours=6),
                )
                for n in range(count)
            ]
            # The stream holds the domains' jobs mixed in the ratio of their rates, as
            # the scheduler queues them in production (each listing at its own time).
            due += [1_000_000 + n / float(rate) for n in range(count)]
        asyncio.run(_seed(Target(url), listings, due))
        context = multiprocessing.get_context("spawn")
        stop = context.Event()
        readies = [context.Event() for _ in range(RATE_WORKERS)]
        fleet = [
            context.Process(target=_rate_worker, args=(url, stop, ready), name=f"bench-{n}")
            for n, ready in enumerate(readies)
        ]
        for process in fleet:
            process.start()
        try:
            for ready in readies:
                if not ready.wait(60):
                    raise RuntimeError("a worker process did not start")
            begin = time.time() + RATE_WARMUP_SECONDS
            time.sleep(RATE_WARMUP_SECONDS + window + 0.5)
        finally:
            stop.set()
            for process in fleet:
                process.join(30)
        end = begin + window
        consumers = Counter(
            json.loads(body)["consumer"]
            for body in _outcome_bodies(url)
            if json.loads(body).get("consumer")
        )
        results = {}
        for competitor, (host, prefix, rate) in RATE_DOMAINS.items():
            hits = sorted(site.state.hits(prefix))
            in_window = [at for at in hits if begin <= at < end]
            peak = max(
                (sum(1 for other in hits if at <= other < at + 1) for at in in_window),
                default=0,
            )
            achieved = len(in_window) / window
            results[f"{competitor} ({host})"] = {
                "configured": float(rate),
                "achieved": achieved,
                "error": achieved / float(rate) - 1,
                "peak_1s": float(peak),
            }
        results["_fleet"] = {name: float(count) for name, count in consumers.items()}
        return results


def _outcome_bodies(url: str) -> list[bytes]:
    client = redis.Redis.from_url(url)
    try:
        found: list[bytes] = []
        for key in client.scan_iter(match=keys.outcome("*"), count=1000):
            body = client.get(key)
            if isinstance(body, bytes):
                found.append(body)
        return found
    finally:
        client.close()


# -- the run ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--window", type=float, default=10.0, help="Rate window, seconds.")
    parser.add_argument(
        "--scrapy-python",
        default=os.environ.get("SCRAPY_PYTHON", DEFAULT_SCRAPY_PYTHON),
        help="A Python with Scrapy installed (not a project dependency).",
    )
    parser.add_argument("--skip-rates", action="store_true")
    parser.add_argument(
        "--cluster-too",
        action="store_true",
        help="Also time the pipeline on a local 3-master Redis Cluster (for information).",
    )
    parser.add_argument(
        "--fleet-too",
        action="store_true",
        help="Also time 2 worker processes sharing the concurrency (for information).",
    )
    args = parser.parse_args()

    print("Crawler benchmark (bench/crawl.py)")
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC, python {platform.python_version()}, "
        f"cpus {os.cpu_count()}, load {' '.join(f'{x:.2f}' for x in os.getloadavg())}, "
        f"scrapy {scrapy_version(args.scrapy_python)}, redis-server {shutil.which('redis-server')}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-crawl-") as scratch:
        folder = Path(scratch)
        server = EmbeddedRedis(folder / "redis", persistent=False)
        url = server.start()
        context = multiprocessing.get_context("spawn")
        port_queue = context.Queue()
        stop_site = context.Event()
        site_process = context.Process(target=_serve_site, args=(port_queue, stop_site))
        site_process.start()
        try:
            site = port_queue.get(timeout=60)
            print(
                f"\nThroughput, politeness off: {args.pages} pages, concurrency {args.concurrency}"
            )
            ours = bench_ours(Target(url), site, args.pages, args.concurrency)
            print(
                f"  pipeline, 1 process x {args.concurrency}: {ours['pages_per_second']:.0f} "
                f"pages/s fetched, extracted and stored ({ours['pages']} outcomes recorded, "
                f"{ours['stored']} observations stored, in {ours['seconds']:.2f} s; "
                f"outcomes {ours['outcomes']})"
            )
            print(
                f"  pipeline cost: {ours['cpu_ms_per_page']:.1f} ms of crawler CPU and "
                f"{ours['redis_commands_per_page']:.1f} Redis commands per page"
            )
            scrapy = bench_scrapy(args.scrapy_python, site, args.pages, args.concurrency, folder)
            if scrapy is None:
                print(
                    f"  scrapy:   skipped, no Scrapy at {args.scrapy_python} (install: python3 -m "
                    "venv /tmp/scrapy-venv && /tmp/scrapy-venv/bin/pip install scrapy)"
                )
                print(
                    f"GOAL throughput >= {GOAL_SCRAPY_RATIO}x Scrapy: SKIPPED "
                    f"(ours {ours['pages_per_second']:.0f} pages/s, Scrapy not installed)"
                )
            else:
                print(
                    f"  scrapy:   {scrapy['pages_per_second']:.0f} pages/s parsed and written "
                    f"({scrapy['written']} JSON lines, {scrapy['with_price']} with a price, in "
                    f"{scrapy['seconds']:.2f} s; {scrapy['errors']} errors)"
                )
                ratio = ours["pages_per_second"] / scrapy["pages_per_second"]
                verdict = "MET" if ratio >= GOAL_SCRAPY_RATIO else "MISSED"
                print(
                    f"GOAL throughput >= {GOAL_SCRAPY_RATIO}x Scrapy: {verdict} "
                    f"({ours['pages_per_second']:.0f} vs {scrapy['pages_per_second']:.0f} "
                    f"pages/s, {ratio:.2f}x)"
                )
            if args.fleet_too:
                fleet = bench_ours(Target(url), site, args.pages, args.concurrency, processes=2)
                print(
                    f"  pipeline, 2 processes x {args.concurrency // 2} (not the goal's "
                    f"set-up, for information): {fleet['pages_per_second']:.0f} pages/s "
                    f"({fleet['pages']} outcomes in {fleet['seconds']:.2f} s; "
                    f"outcomes {fleet['outcomes']})"
                )
            if args.cluster_too:
                bench_on_cluster(folder, site, args.pages, args.concurrency, ours)
        finally:
            stop_site.set()
            site_process.join(10)
        if not args.skip_rates:
            print(
                f"\nRate accuracy, politeness on: {RATE_WORKERS} worker processes x "
                f"{RATE_WORKER_CONCURRENCY}, window {args.window:.0f} s after "
                f"{RATE_WARMUP_SECONDS:.0f} s warm-up"
            )
            rates = bench_rates(url, args.window)
            fleet = rates.pop("_fleet")
            print(f"  jobs done per worker process: {sorted(int(n) for n in fleet.values())}")
            worst = 0.0
            for domain, figures in rates.items():
                worst = max(worst, abs(figures["error"]))
                print(
                    f"  {domain}: configured {figures['configured']:.1f}/s, achieved "
                    f"{figures['achieved']:.2f}/s ({figures['error']:+.1%}), "
                    f"busiest 1 s {figures['peak_1s']:.0f}"
                )
            verdict = "MET" if worst <= GOAL_RATE_TOLERANCE and len(fleet) == 2 else "MISSED"
            detail = ", ".join(
                f"{domain} {f['achieved']:.2f}/{f['configured']:.0f} per s"
                for domain, f in rates.items()
            )
            print(
                f"GOAL rate within {GOAL_RATE_TOLERANCE:.0%} of configured, 2 processes: "
                f"{verdict} (worst {worst:.1%}; {detail})"
            )
        server.stop()


if __name__ == "__main__":
    main()
