"""The crawler fleet on a Redis Cluster of 3 masters: the pipeline tests, a queue split
into partitions on different shards, and a worker process killed mid-batch."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

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
from pricing_service.store import keys as store_keys
from pricing_service.store.store import Store
from tests.crawlers.test_fetch import test_a_slot_too_far_away_holds_no_lease  # noqa: F401
from tests.crawlers.test_pipeline import *  # noqa: F403
from tests.crawlers.test_reliability import crawl_until_killed, eventually

pytestmark = pytest.mark.anyio
PARTITIONS = 3
SKUS = [f"K-{n}" for n in range(12)]
EVERY_HOUR = timedelta(hours=1)


async def list_skus(store: Store, site: DemoSiteServer, path: str) -> None:
    await store.put_items([ItemFacts(sku=sku, currency="USD") for sku in SKUS])
    listings = [
        Listing(sku=sku, competitor="demo", url=f"{site.url}{path}{sku}", frequency=EVERY_HOUR)
        for sku in SKUS
    ]
    await put_listings(store.redis, listings, partitions=PARTITIONS)


async def outcomes(store: Store) -> list[tuple[str, str]]:
    """Every (job, outcome) streamed, over the partitions."""
    found = []
    for queue in keys.queues(PARTITIONS):
        entries: Any = await store.redis.xrange(queue.outcomes)
        found += [(fields[b"job"].decode(), fields[b"outcome"].decode()) for _, fields in entries]
    return found


async def test_a_partitioned_queue_spreads_over_the_shards(
    site: DemoSiteServer,
    store: Store,
    crawler_settings: CrawlerSettings,
    competitors: dict[str, Competitor],
    fetcher: Fetcher,
) -> None:
    settings = crawler_settings.model_copy(update={"queue_partitions": PARTITIONS})
    await list_skus(store, site, "/jsonld/")
    cluster: Any = store.redis
    shards = {cluster.get_node_from_key(queue.due).name for queue in keys.queues(PARTITIONS)}
    assert len(shards) > 1
    sizes = [await store.redis.zcard(queue.due) for queue in keys.queues(PARTITIONS)]
    assert sum(sizes) == len(SKUS)
    assert min(sizes) > 0

    assert (await Scheduler(store.redis, settings).tick()).queued == len(SKUS)
    workers = [
        CrawlWorker(store, fetcher, competitors, settings, consumer=name, block_seconds=0.05)
        for name in ("w1", "w2")
    ]

    async def all_done() -> bool:
        for worker in workers:
            batch = await worker.next_batch(4)
            await asyncio.gather(*(worker.handle(*message) for message in batch))
        return len(await outcomes(store)) >= len(SKUS)

    await eventually(all_done, 20)
    recorded = await outcomes(store)
    assert sorted(job.split("|")[0] for job, _ in recorded) == sorted(SKUS)
    assert {outcome for _, outcome in recorded} == {Outcome.ACCEPTED}
    for sku in SKUS:
        [offer] = await store.get_offers(sku)
        assert offer.status == "accepted"
    dirty: Any = await store.redis.xrange(store_keys.DIRTY_STREAM)
    crawled = [fields[b"sku"].decode() for _, fields in dirty if fields[b"reason"] == b"crawl"]
    assert sorted(crawled) == sorted(SKUS)
    for queue in keys.queues(PARTITIONS):
        assert await store.redis.hlen(queue.in_flight) == 0
        pending: Any = await store.redis.xpending(queue.jobs, keys.JOBS_GROUP)
        assert pending["pending"] == 0


async def test_every_job_gets_one_outcome_after_a_kill_9_on_a_cluster(
    site: DemoSiteServer,
    store: Store,
    crawler_settings: CrawlerSettings,
    competitors: dict[str, Competitor],
    fetcher: Fetcher,
    clean_cluster: str,
    tmp_path: Path,
) -> None:
    """`pricing crawl` itself, on the cluster, killed mid-batch; the jobs it held are
    taken over, and each ends with one outcome and one stored observation."""
    settings = crawler_settings.model_copy(update={"queue_partitions": PARTITIONS})
    await list_skus(store, site, "/slow/0.5/")
    assert (await Scheduler(store.redis, settings).tick()).queued == len(SKUS)
    cluster = {
        "REDIS_CLUSTER_URL": clean_cluster,
        "PRICING_CRAWL_QUEUE_PARTITIONS": str(PARTITIONS),
    }
    await crawl_until_killed(site, tmp_path, cluster)

    survivor = CrawlWorker(
        store, fetcher, competitors, settings, consumer="survivor", block_seconds=0.05
    )

    async def all_recorded() -> bool:
        batch = await survivor.next_batch(8)
        await asyncio.gather(*(survivor.handle(*message) for message in batch))
        return len(await outcomes(store)) >= len(SKUS)

    await eventually(all_recorded, 30)
    recorded = await outcomes(store)
    jobs = [job for job, _ in recorded]
    assert len(jobs) == len(set(jobs)) == len(SKUS)
    assert {outcome for _, outcome in recorded} == {Outcome.ACCEPTED}
    for sku in SKUS:
        assert await store.redis.xlen(store_keys.offer_history(sku)) == 1
    for queue in keys.queues(PARTITIONS):
        pending: Any = await store.redis.xpending(queue.jobs, keys.JOBS_GROUP)
        assert pending["pending"] == 0
