"""A worker killed with SIGKILL mid-batch, and a Redis restart under a running worker."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from crawlers import keys
from crawlers.demo_site import DemoSiteServer
from crawlers.fetch import Fetcher
from crawlers.listings import Listing, put_listings
from crawlers.outcome import Outcome
from crawlers.scheduler import Scheduler
from crawlers.settings import CrawlerSettings
from crawlers.worker import CrawlWorker
from pricing_service.engine.inputs import ItemFacts
from pricing_service.rules.model import Competitor
from pricing_service.store.embedded import EmbeddedRedis
from pricing_service.store.store import Store

#: The crawl queue with the default single partition.
QUEUE = keys.CrawlQueue(0)

pytestmark = pytest.mark.anyio
RULES = Path(__file__).parents[2] / "rules"
DEMO_COMPETITOR = """
  demo:
    name: Demo
    domains: [127.0.0.1]
    requests_per_second: 100
    concurrency: 8
"""


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def list_skus(store: Store, site: DemoSiteServer, skus: list[str], path: str) -> None:
    await store.put_items([ItemFacts(sku=sku, currency="USD") for sku in skus])
    listings = [
        Listing(
            sku=sku, competitor="demo", url=f"{site.url}{path}{sku}", frequency=timedelta(hours=1)
        )
        for sku in skus
    ]
    await put_listings(store.redis, listings)


def rules_with_demo(folder: Path) -> Path:
    """A copy of the repository's rules, with the demo site as a competitor."""
    rules = folder / "rules"
    rules.mkdir()
    for file in RULES.glob("*.yaml"):
        (rules / file.name).write_text(file.read_text())
    with (rules / "competitors.yaml").open("a") as handle:
        handle.write(DEMO_COMPETITOR)
    return rules


async def crawl_until_killed(
    site: DemoSiteServer, folder: Path, environment: dict[str, str]
) -> None:
    """Run `pricing crawl` in a process of its own and kill it (SIGKILL) mid-batch: once
    it has fetched two of the demo site's slow pages."""
    command = "import typer; from crawlers import cli; typer.run(cli.crawl)"
    rules = rules_with_demo(folder)
    worker_process = subprocess.Popen(
        [sys.executable, "-c", command, "--rules", str(rules), "--concurrency", "4"],
        env={
            **os.environ,
            "PRICING_CRAWL_ALLOWED_PRIVATE_NETWORKS": '["127.0.0.0/8"]',
            "PRICING_CRAWLER_METRICS_PORT": "0",
            **environment,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        async def mid_batch() -> bool:
            return len(site.state.hits("/slow/")) >= 2

        await eventually(mid_batch, 30)
    finally:
        worker_process.kill()
        worker_process.wait()


async def test_every_job_gets_one_outcome_after_a_kill_9(
    site: DemoSiteServer,
    store: Store,
    crawler_settings: CrawlerSettings,
    competitors: dict[str, Competitor],
    tmp_path: Path,
    clean_redis: str,
) -> None:
    skus = [f"K-{n}" for n in range(8)]
    # Slow, but well within the 1 s read timeout: a page taking exactly that long
    # raced it, and sometimes timed out.
    await list_skus(store, site, skus, "/slow/0.5/")
    assert (await Scheduler(store.redis, crawler_settings).tick()).queued == len(skus)

    await crawl_until_killed(site, tmp_path, {"REDIS_URL": clean_redis})

    survivor = CrawlWorker(
        store,
        Fetcher(crawler_settings, store.redis, competitors),
        competitors,
        crawler_settings,
        consumer="survivor",
        concurrency=8,
        block_seconds=0.05,
    )

    async def all_recorded() -> bool:
        batch = await survivor.next_batch(8)
        await asyncio.gather(*(survivor.handle(*message) for message in batch))
        return int(await store.redis.xlen(QUEUE.outcomes)) >= len(skus)

    await eventually(all_recorded, 20)
    await survivor.fetcher.close()
    entries: Any = await store.redis.xrange(QUEUE.outcomes)
    jobs = [fields[b"job"] for _, fields in entries]
    assert len(jobs) == len(set(jobs)) == len(skus)
    assert {fields[b"outcome"].decode() for _, fields in entries} == {Outcome.ACCEPTED}
    pending: Any = await store.redis.xpending(QUEUE.jobs, keys.JOBS_GROUP)
    assert pending["pending"] == 0


async def test_a_worker_carries_on_after_a_redis_restart(
    site: DemoSiteServer,
    crawler_settings: CrawlerSettings,
    competitors: dict[str, Competitor],
    tmp_path: Path,
) -> None:
    server = EmbeddedRedis(tmp_path, persistent=False)
    store = Store.from_url(server.start(), retention=timedelta(days=35))
    fetcher = Fetcher(crawler_settings, store.redis, competitors)
    worker = CrawlWorker(
        store, fetcher, competitors, crawler_settings, consumer="w", block_seconds=0.05
    )
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        await asyncio.sleep(0.2)
        server.stop()
        await asyncio.sleep(0.5)  # the worker sees Redis gone
        server.start()
        await list_skus(store, site, ["R-1"], "/jsonld/")
        await Scheduler(store.redis, crawler_settings).tick()

        async def crawled() -> bool:
            return int(await store.redis.xlen(QUEUE.outcomes)) == 1

        await eventually(crawled, 10)
        assert [offer.status for offer in await store.get_offers("R-1")] == ["accepted"]
    finally:
        stop.set()
        await asyncio.wait_for(running, 5)
        await fetcher.close()
        await store.close()
        server.stop()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_running_crawler_takes_up_an_edit_of_the_competitors(
    site: DemoSiteServer,
    store: Store,
    crawler_settings: CrawlerSettings,
    tmp_path: Path,
    clean_redis: str,
) -> None:
    rules = rules_with_demo(tmp_path)
    port = _free_port()
    command = "import typer; from crawlers import cli; typer.run(cli.crawl)"
    worker_process = subprocess.Popen(
        [sys.executable, "-c", command, "--rules", str(rules), "--metrics-port", str(port)],
        env={
            **os.environ,
            "REDIS_URL": clean_redis,
            "PRICING_CRAWL_ALLOWED_PRIVATE_NETWORKS": '["127.0.0.0/8"]',
            "PRICING_RULES_POLL_SECONDS": "0.1",
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    async def metric(line: str) -> bool:
        try:
            async with httpx.AsyncClient() as client:
                text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        except httpx.TransportError:
            return False
        return line in text.splitlines()

    async def outcomes(count: int) -> bool:
        return int(await store.redis.xlen(QUEUE.outcomes)) >= count

    async def crawl(sku: str) -> str:
        done = int(await store.redis.xlen(QUEUE.outcomes)) + 1  # before: it can be quick
        await list_skus(store, site, [sku], "/jsonld/")
        assert (await Scheduler(store.redis, crawler_settings).tick()).queued == 1
        await eventually(lambda: outcomes(done), 20)
        entries: Any = await store.redis.xrevrange(QUEUE.outcomes, count=1)
        return str(entries[0][1][b"outcome"].decode())

    try:
        await eventually(lambda: metric("pricing_rule_last_reload_successful 1.0"), 20)
        assert await crawl("R-1") == Outcome.ACCEPTED

        competitors = rules / "competitors.yaml"
        competitors.write_text(
            competitors.read_text().replace(
                DEMO_COMPETITOR, DEMO_COMPETITOR.replace("[127.0.0.1]", "[demoshop.invalid]")
            )
        )
        await eventually(lambda: metric('pricing_rule_reloads_total{outcome="ok"} 2.0'), 20)
        assert await crawl("R-2") == Outcome.OFF_DOMAIN

        competitors.write_text(competitors.read_text() + "\n  broken: [\n")
        await eventually(lambda: metric("pricing_rule_last_reload_successful 0.0"), 20)
        assert await crawl("R-3") == Outcome.OFF_DOMAIN  # the last good competitors serve
    finally:
        worker_process.terminate()
        assert worker_process.wait(timeout=30) == 0
