"""Scheduler -> Redis Stream -> worker -> quality gate -> store, against the demo site."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from crawlers import keys
from crawlers.demo_site import DemoSiteServer
from crawlers.fetch import Fetcher
from crawlers.jobs import Job, read_outcome
from crawlers.listings import Listing, ListingBody, delete_listing, put_listings, scan_listings
from crawlers.outcome import Outcome
from crawlers.scheduler import Scheduler
from crawlers.settings import CrawlerSettings
from crawlers.worker import CrawlWorker
from pricing_service.engine.inputs import ItemFacts
from pricing_service.rules.model import Competitor
from pricing_service.store import keys as store_keys
from pricing_service.store.offers import history_offer
from pricing_service.store.store import Store

#: The crawl queue with the default single partition.
QUEUE = keys.CrawlQueue(0)

pytestmark = pytest.mark.anyio
EVERY = timedelta(hours=6)


@pytest.fixture
def make_worker(
    store: Store,
    fetcher: Fetcher,
    competitors: dict[str, Competitor],
    crawler_settings: CrawlerSettings,
) -> Any:
    def make(consumer: str = "w1") -> CrawlWorker:
        return CrawlWorker(
            store, fetcher, competitors, crawler_settings, consumer=consumer, block_seconds=0.05
        )

    return make


@pytest.fixture
def worker_with(store: Store, competitors: dict[str, Competitor]) -> Any:
    """A worker with its own fetcher under other settings; the fetcher closes on exit."""

    @asynccontextmanager
    async def make(settings: CrawlerSettings) -> AsyncIterator[CrawlWorker]:
        fetcher = Fetcher(settings, store.redis, competitors)
        try:
            yield CrawlWorker(
                store, fetcher, competitors, settings, consumer="w1", block_seconds=0.05
            )
        finally:
            await fetcher.close()

    return make


async def listed(store: Store, url: str, sku: str = "A-1", competitor: str = "demo") -> None:
    await store.put_items([ItemFacts(sku=sku, currency="USD")])
    await store.redis.delete(store_keys.DIRTY_STREAM)  # only the crawl's marks from here on
    await put_listings(
        store.redis, [Listing(sku=sku, competitor=competitor, url=url, frequency=EVERY)]
    )


async def one_job(
    site: DemoSiteServer, store: Store, settings: CrawlerSettings, make_worker: Any
) -> tuple[CrawlWorker, str, Job]:
    """A-1 listed on the demo site's JSON-LD page and queued, and a worker that has read
    its job (its message id and the job)."""
    await listed(store, f"{site.url}/jsonld/A-1")
    await Scheduler(store.redis, settings).tick()
    worker = make_worker()
    [(message_id, job, _)] = await worker.next_batch(16)
    return worker, message_id, job


async def work_once(worker: CrawlWorker) -> list[str]:
    """Run every job currently deliverable; their ids."""
    batch = await worker.next_batch(16)
    await asyncio.gather(*(worker.handle(message_id, job, n) for message_id, job, n in batch))
    return [job.id for _, job, _ in batch]


async def outcome_of(redis: aioredis.Redis, job_id: str) -> str:
    recorded = await read_outcome(redis, job_id)
    assert recorded is not None
    return str(recorded["outcome"])


async def dirty_skus(redis: aioredis.Redis) -> list[str]:
    entries: Any = await redis.xrange(store_keys.DIRTY_STREAM)
    return [fields[b"sku"].decode() for _, fields in entries if fields[b"reason"] == b"crawl"]


@pytest.mark.parametrize("style", ["jsonld", "microdata", "opengraph", "plain"])
async def test_scheduler_to_stored_observation(
    site: DemoSiteServer,
    store: Store,
    crawler_settings: CrawlerSettings,
    make_worker: Any,
    style: str,
) -> None:
    site.state.fixed_prices["A-1"] = Decimal("42.50")
    await listed(store, f"{site.url}/{style}/A-1")
    scheduled = await Scheduler(store.redis, crawler_settings).tick()
    assert scheduled.queued == 1

    [job_id] = await work_once(make_worker())

    assert await outcome_of(store.redis, job_id) == Outcome.ACCEPTED
    [offer] = await store.get_offers("A-1")
    assert (offer.status, offer.observation.price, offer.observation.currency) == (
        "accepted",
        Decimal("42.50"),
        "USD",
    )
    assert await dirty_skus(store.redis) == ["A-1"]
    assert await store.redis.xlen(QUEUE.jobs) == 0  # acknowledged and removed
    assert await store.redis.hlen(QUEUE.in_flight) == 0


async def test_a_captcha_page_is_blocked_never_a_price(
    site: DemoSiteServer, store: Store, crawler_settings: CrawlerSettings, make_worker: Any
) -> None:
    await listed(store, f"{site.url}/captcha/A-1")
    await Scheduler(store.redis, crawler_settings).tick()
    [job_id] = await work_once(make_worker())
    assert await outcome_of(store.redis, job_id) == Outcome.BLOCKED
    assert await store.get_offers("A-1") == []
    assert await dirty_skus(store.redis) == []


@pytest.mark.parametrize(
    ("path", "outcome"),
    [("/garbage", Outcome.NO_PRICE), ("/wrong-charset/A-1", Outcome.ACCEPTED)],
)
async def test_hostile_pages_get_a_clear_outcome(
    site: DemoSiteServer,
    store: Store,
    crawler_settings: CrawlerSettings,
    make_worker: Any,
    path: str,
    outcome: Outcome,
) -> None:
    await listed(store, site.url + path)
    await Scheduler(store.redis, crawler_settings).tick()
    [job_id] = await work_once(make_worker())
    assert await outcome_of(store.redis, job_id) == outcome


async def test_a_crawl_that_did_not_end_accepted_is_logged_with_what_to_look_for(
    site: DemoSiteServer,
    store: Store,
    crawler_settings: CrawlerSettings,
    make_worker: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await listed(store, f"{site.url}/garbage")
    await Scheduler(store.redis, crawler_settings).tick()
    with caplog.at_level("WARNING", logger="crawlers.worker"):
        [job_id] = await work_once(make_worker())
    # Counted too, by outcome: also the jobs that fetch nothing.
    assert REGISTRY.get_sample_value(
        "pricing_crawl_jobs_total", {"competitor": "demo", "outcome": "no_price"}
    )
    [record] = [r for r in caplog.records if r.getMessage().startswith("crawl of ")]
    assert record.getMessage() == "crawl of A-1 at demo: no_price"
    fields = record.__dict__
    assert (fields["sku"], fields["competitor"], fields["job"]) == ("A-1", "demo", job_id)
    assert (fields["url"], fields["outcome"]) == (f"{site.url}/garbage", "no_price")


async def test_an_outlier_is_quarantined_until_a_second_crawl_confirms(
    site: DemoSiteServer, store: Store, crawler_settings: CrawlerSettings, make_worker: Any
) -> None:
    await listed(store, f"{site.url}/jsonld/A-1")
    scheduler, worker = Scheduler(store.redis, crawler_settings), make_worker()
    crawl_at = 0.0

    async def crawl(price: str) -> str:
        nonlocal crawl_at
        site.state.fixed_prices["A-1"] = Decimal(price)
        await store.redis.zadd(QUEUE.due, {"A-1|demo": 0})  # due now
        crawl_at += 1
        await scheduler.tick()
        [job_id] = await work_once(worker)
        return await outcome_of(store.redis, job_id)

    assert await crawl("100.00") == Outcome.ACCEPTED
    assert await crawl("99.00") == Outcome.ACCEPTED
    assert await crawl("10.00") == Outcome.QUARANTINED  # a sudden -90%
    [held] = await store.get_offers("A-1")
    assert held.status == "quarantined"
    assert (held.reason or "").startswith("outlier: ")
    assert held.in_force is not None
    assert held.in_force.price == Decimal("99.00")
    assert await crawl("10.00") == Outcome.ACCEPTED  # confirmed by the second crawl
    assert await dirty_skus(store.redis) == ["A-1", "A-1", "A-1"]


async def test_a_listing_in_flight_is_not_queued_again(
    site: DemoSiteServer, store: Store, crawler_settings: CrawlerSettings, make_worker: Any
) -> None:
    await listed(store, f"{site.url}/jsonld/A-1")
    scheduler = Scheduler(store.redis, crawler_settings)
    first = await scheduler.tick()
    next_period = time.time() + EVERY.total_seconds() * 1.2  # past the jitter too
    later = await scheduler.tick(now=next_period)
    assert (first.queued, later.queued, later.skipped_in_flight) == (1, 0, 1)
    assert await store.redis.xlen(QUEUE.jobs) == 1
    await work_once(make_worker())
    assert (await scheduler.tick(now=next_period * 2)).queued == 1


async def test_the_scheduler_pauses_when_workers_fall_behind(
    site: DemoSiteServer, store: Store, crawler_settings: CrawlerSettings
) -> None:
    for sku in ("A-1", "A-2", "A-3"):
        await listed(store, f"{site.url}/jsonld/{sku}", sku=sku)
    scheduler = Scheduler(store.redis, crawler_settings.model_copy(update={"max_backlog": 2}))
    assert (await scheduler.tick()).queued == 2
    assert (await scheduler.tick()).paused
    assert await store.redis.zcount(QUEUE.due, "-inf", "+inf") == 3  # the third still waits


async def test_a_dead_workers_job_is_taken_over_with_one_outcome(
    site: DemoSiteServer, store: Store, crawler_settings: CrawlerSettings, make_worker: Any
) -> None:
    await listed(store, f"{site.url}/jsonld/A-1")
    await Scheduler(store.redis, crawler_settings).tick()
    dead, alive = make_worker("dead"), make_worker("alive")
    assert len(await dead.next_batch(16)) == 1  # read, then the worker "dies"
    await asyncio.sleep(crawler_settings.claim_idle_seconds + 0.1)

    [job_id] = await work_once(alive)

    assert await outcome_of(store.redis, job_id) == Outcome.ACCEPTED
    assert await store.redis.xlen(QUEUE.outcomes) == 1
    pending: Any = await store.redis.xpending(QUEUE.jobs, keys.JOBS_GROUP)
    assert pending["pending"] == 0


async def test_a_job_delivered_too_often_is_dead_lettered(
    site: DemoSiteServer, store: Store, crawler_settings: CrawlerSettings, make_worker: Any
) -> None:
    await listed(store, f"{site.url}/jsonld/A-1")
    await Scheduler(store.redis, crawler_settings).tick()
    workers = [make_worker(f"w{n}") for n in range(crawler_settings.max_deliveries + 1)]
    for worker in workers[:-1]:  # each reads the job, then dies
        assert len(await worker.next_batch(16)) == 1
        await asyncio.sleep(crawler_settings.claim_idle_seconds + 0.05)

    [job_id] = await work_once(workers[-1])

    assert await outcome_of(store.redis, job_id) == Outcome.DEAD_LETTER
    assert await store.redis.xlen(QUEUE.dead_letters) == 1
    assert site.state.hits("/jsonld/") == []


async def test_a_redelivered_finished_job_is_only_acknowledged(
    site: DemoSiteServer, store: Store, crawler_settings: CrawlerSettings, make_worker: Any
) -> None:
    worker, message_id, job = await one_job(site, store, crawler_settings, make_worker)
    await worker.handle(message_id, job, 1)
    await worker.handle(message_id, job, 2)  # as if delivered again after a crash
    assert await store.redis.xlen(QUEUE.outcomes) == 1
    assert len(site.state.hits("/jsonld/")) == 1


async def test_a_job_crawled_twice_at_once_stores_one_observation(
    site: DemoSiteServer, store: Store, crawler_settings: CrawlerSettings, make_worker: Any
) -> None:
    # As when a slow job is claimed by a second worker: the offer, the dirty mark and the
    # outcome are written together by whichever finishes first, and only by it.
    worker, message_id, job = await one_job(site, store, crawler_settings, make_worker)
    await asyncio.gather(worker.handle(message_id, job, 1), worker.handle(message_id, job, 2))
    assert len(site.state.hits("/jsonld/")) == 2
    assert await store.redis.xlen(QUEUE.outcomes) == 1
    assert await outcome_of(store.redis, job.id) == Outcome.ACCEPTED
    assert await store.redis.xlen(store_keys.offer_history("A-1")) == 1
    assert [offer.observation.competitor for offer in await store.get_offers("A-1")] == ["demo"]
    assert await dirty_skus(store.redis) == ["A-1"]
    pending: Any = await store.redis.xpending(QUEUE.jobs, keys.JOBS_GROUP)
    assert pending["pending"] == 0


async def test_the_scheduler_moves_due_times_when_the_partitions_change(
    store: Store, crawler_settings: CrawlerSettings
) -> None:
    skus = [f"R-{n}" for n in range(20)]
    due = {keys.due_member(sku, "demo"): 100.0 + n for n, sku in enumerate(skus)}
    for sku in skus:  # as an earlier version left them: one unpartitioned queue
        body = ListingBody(url=f"http://127.0.0.1/{sku}", every_seconds=3600)
        await store.redis.hset(keys.listings(sku), "demo", body.model_dump_json())
    await store.redis.zadd(keys.LEGACY_DUE, due)
    await store.redis.hset(keys.LEGACY_IN_FLIGHT, "R-0|demo", "R-0|demo|1")

    def partitioned(count: int) -> Scheduler:
        settings = crawler_settings.model_copy(update={"queue_partitions": count})
        return Scheduler(store.redis, settings)

    async def laid_out(count: int) -> dict[str, float]:
        found = {}
        for queue in keys.queues(count):
            for member, score in await store.redis.zrange(queue.due, 0, -1, withscores=True):
                sku, _ = keys.parse_due_member(member.decode())
                assert keys.queue_of(sku, count) == queue
                found[member.decode()] = score
        return found

    assert await partitioned(3).rebalance() == len(skus)
    assert await laid_out(3) == due
    assert not await store.redis.exists(keys.LEGACY_DUE, keys.LEGACY_IN_FLIGHT)
    assert await partitioned(3).rebalance() == 0  # nothing changed

    # Failure streaks move with their listings; a dropped partition's last-accepted
    # times fold into partition 0's, the newest per competitor winning.
    streaks = {keys.due_member(sku, "demo"): str(n % 3 + 1) for n, sku in enumerate(skus)}
    for member, count in streaks.items():
        sku, _ = keys.parse_due_member(member)
        await store.redis.hset(keys.queue_of(sku, 3).failures, member, count)
    await store.redis.hset(keys.CrawlQueue(2).accepted, mapping={"demo": "500", "other": "90"})
    await store.redis.hset(keys.CrawlQueue(0).accepted, mapping={"demo": "400", "other": "95"})

    two = partitioned(2)
    assert await two.rebalance() > 0
    assert await laid_out(2) == due
    assert await store.redis.zcard(keys.CrawlQueue(2).due) == 0
    moved_streaks = {}
    for queue in keys.queues(2):
        for member, count in (await store.redis.hgetall(queue.failures)).items():
            sku, _ = keys.parse_due_member(member.decode())
            assert keys.queue_of(sku, 2) == queue
            moved_streaks[member.decode()] = count.decode()
    assert moved_streaks == streaks
    assert not await store.redis.exists(keys.CrawlQueue(2).failures, keys.CrawlQueue(2).accepted)
    assert await store.redis.hgetall(keys.CrawlQueue(0).accepted) == {
        b"demo": b"500",
        b"other": b"95",
    }
    assert (await two.tick(now=200)).queued == len(skus)  # every listing still comes round


async def test_a_job_recorded_by_a_worker_that_died_before_acknowledging_it_converges(
    site: DemoSiteServer, store: Store, crawler_settings: CrawlerSettings, make_worker: Any
) -> None:
    # On a cluster the outcome (with the observation) and the acknowledgement are two
    # scripts on two shards; a worker can die between them. Its job, delivered again, is
    # not crawled again; it is acknowledged and streamed once, and on a cluster its SKU is
    # marked dirty again, as the dead worker may not have done it.
    worker, message_id, job = await one_job(site, store, crawler_settings, make_worker)
    recorded = json.dumps({"outcome": Outcome.ACCEPTED, "at": time.time(), "consumer": "dead"})
    await store.redis.set(keys.outcome(job.id), recorded)

    await worker.handle(message_id, job, 2)

    assert site.state.hits("/jsonld/") == []
    entries: Any = await store.redis.xrange(QUEUE.outcomes)
    assert [(f[b"job"].decode(), f[b"outcome"].decode()) for _, f in entries] == [
        (job.id, Outcome.ACCEPTED)
    ]
    pending: Any = await store.redis.xpending(QUEUE.jobs, keys.JOBS_GROUP)
    assert pending["pending"] == 0
    assert await store.redis.hlen(QUEUE.in_flight) == 0
    assert await dirty_skus(store.redis) == (["A-1"] if store.cluster else [])


async def test_a_worker_says_when_its_partition_count_is_not_the_queues(
    store: Store, crawler_settings: CrawlerSettings, make_worker: Any, caplog: Any
) -> None:
    three = crawler_settings.model_copy(update={"queue_partitions": 3})
    await Scheduler(store.redis, three).rebalance()
    with caplog.at_level("ERROR", logger="crawlers.worker"):
        await make_worker().next_batch(1)  # configured for one partition
    assert "the crawl queue has 3 partitions and this worker reads 1" in caplog.text


async def test_the_outcome_is_kept_as_configured_and_the_history_holds_the_offer(
    site: DemoSiteServer,
    store: Store,
    fetcher: Fetcher,
    competitors: dict[str, Competitor],
    crawler_settings: CrawlerSettings,
) -> None:
    settings = crawler_settings.model_copy(update={"outcome_retention_seconds": 7_200})
    site.state.fixed_prices["A-1"] = Decimal("42.50")
    await listed(store, f"{site.url}/jsonld/A-1")
    await Scheduler(store.redis, settings).tick()
    worker = CrawlWorker(store, fetcher, competitors, settings, consumer="w1", block_seconds=0.05)

    [job_id] = await work_once(worker)

    assert 7_200 - 60 < await store.redis.ttl(keys.outcome(job_id)) <= 7_200
    [(_, fields)] = await store.redis.xrange(store_keys.offer_history("A-1"))
    [offer] = await store.get_offers("A-1")
    assert history_offer(fields) == offer


async def test_a_failing_page_is_crawled_again_sooner_each_time_less_soon(
    site: DemoSiteServer, store: Store, crawler_settings: CrawlerSettings, worker_with: Any
) -> None:
    # One attempt per job, so that each job meets one of the page's 503s.
    settings = crawler_settings.model_copy(
        update={"max_attempts": 1, "retry_after_failure_seconds": 3000.0}
    )
    scheduler = Scheduler(store.redis, settings)
    member = keys.due_member("A-1", "demo")
    period = EVERY.total_seconds()
    await listed(store, f"{site.url}/flaky/4/A-1")

    async def crawl_when_due(moment: float) -> tuple[str, float, float, float]:
        """Queue the listing at ``moment`` and crawl it: its outcome, the (real) times
        the crawl began and ended, and the listing's next due time."""
        assert (await scheduler.tick(moment)).queued == 1
        began = time.time()
        [job_id] = await work_once(worker)
        ended = time.time()
        due = await store.redis.zscore(QUEUE.due, member)
        assert due is not None
        return await outcome_of(store.redis, job_id), began, ended, float(due)

    async with worker_with(settings) as worker:
        moment = time.time()
        for failures, delay in enumerate([3000, 6000, 12000], start=1):
            outcome, began, ended, due = await crawl_when_due(moment)
            assert outcome == Outcome.SERVER_ERROR
            assert began + delay <= due <= ended + delay  # not a period (6 h) later
            assert await store.redis.hget(QUEUE.failures, member) == str(failures).encode()
            moment = due
        # The fourth would be 24,000 s on: a period (6 h) at most.
        outcome, began, ended, due = await crawl_when_due(moment)
        assert outcome == Outcome.SERVER_ERROR
        assert began + period <= due <= ended + period
        # The page is back: the streak ends, and the regular next crawl stands.
        queued_at = due
        outcome, began, ended, due = await crawl_when_due(queued_at)
        assert outcome == Outcome.ACCEPTED
        assert await store.redis.hget(QUEUE.failures, member) is None
        assert queued_at + period * 0.9 <= due <= queued_at + period * 1.1


async def test_a_robots_txt_that_cannot_be_read_brings_the_next_crawl_forward(
    site: DemoSiteServer, store: Store, crawler_settings: CrawlerSettings, worker_with: Any
) -> None:
    settings = crawler_settings.model_copy(update={"retry_after_failure_seconds": 3000.0})
    site.state.robots_status = 503
    async with worker_with(settings) as worker:
        await listed(store, f"{site.url}/jsonld/A-1")
        await Scheduler(store.redis, settings).tick()
        began = time.time()
        [job_id] = await work_once(worker)
        ended = time.time()
        assert await outcome_of(store.redis, job_id) == Outcome.ROBOTS_UNREACHABLE
        due = await store.redis.zscore(QUEUE.due, keys.due_member("A-1", "demo"))
        assert due is not None
        assert began + 3000 <= due <= ended + 3000  # not a period (6 h) later
        assert site.state.hits("/jsonld/") == []


async def test_a_job_queued_before_its_listing_is_deleted_ends_unknown_listing(
    site: DemoSiteServer, store: Store, crawler_settings: CrawlerSettings, make_worker: Any
) -> None:
    await listed(store, f"{site.url}/jsonld/A-1")
    await Scheduler(store.redis, crawler_settings).tick()
    member = keys.due_member("A-1", "demo")
    await store.redis.hset(QUEUE.failures, member, 2)
    assert await store.redis.hget(QUEUE.in_flight, member) is not None

    assert await delete_listing(store.redis, "A-1", "demo") is True

    assert await store.redis.hget(keys.listings("A-1"), "demo") is None
    assert await store.redis.zscore(QUEUE.due, member) is None
    assert await store.redis.hget(QUEUE.failures, member) is None
    assert await store.redis.hget(QUEUE.in_flight, member) is None
    assert await store.redis.zcard(keys.competitor_periods("demo")) == 0
    [job_id] = await work_once(make_worker())
    assert await outcome_of(store.redis, job_id) == Outcome.UNKNOWN_LISTING
    assert site.state.hits("/jsonld/") == []
    assert await delete_listing(store.redis, "A-1", "demo") is False


def by_sku(listing: Listing) -> str:
    return listing.sku


async def test_listings_are_scanned_a_batch_at_a_time_over_the_partitions(store: Store) -> None:
    listings = [
        Listing(sku=f"S-{n}", competitor="demo", url=f"http://127.0.0.1/{n}", frequency=EVERY)
        for n in range(600)  # over 128 a partition: ZSCAN honours COUNT past a listpack
    ]
    await put_listings(store.redis, listings, partitions=3, now=1000.0)
    await put_listings(
        store.redis,
        [Listing(sku="S-0", competitor="other", url="http://127.0.0.1/o", frequency=EVERY)],
        partitions=3,
    )

    batches = [
        batch
        async for batch in scan_listings(store.redis, partitions=3, competitors=["demo"], batch=50)
    ]

    assert len(batches) > 3  # not one read per due set
    found = [scheduled for batch in batches for scheduled in batch]
    assert sorted((s.listing for s in found), key=by_sku) == sorted(listings, key=by_sku)
    assert {s.next_due for s in found} == {1000.0}


async def test_the_scheduler_exports_each_competitors_median_listing_period(
    store: Store, crawler_settings: CrawlerSettings
) -> None:
    def listing(sku: str, frequency: timedelta) -> Listing:
        return Listing(
            sku=sku, competitor="demo", url=f"http://127.0.0.1/{sku}", frequency=frequency
        )

    daily, hourly = timedelta(days=1), timedelta(hours=1)
    await put_listings(
        store.redis, [listing("A-1", hourly), listing("A-2", daily), listing("A-3", daily)]
    )
    await store.redis.hset(QUEUE.accepted, "demo", time.time())
    scheduler = Scheduler(store.redis, crawler_settings)

    def exported() -> float | None:
        return REGISTRY.get_sample_value(
            "pricing_crawl_median_listing_period_seconds", {"competitor": "demo"}
        )

    await scheduler.tick()
    assert exported() == daily.total_seconds()
    await put_listings(store.redis, [listing("A-2", hourly)])
    await scheduler.tick()
    assert exported() == hourly.total_seconds()
    for sku in ("A-1", "A-2", "A-3"):
        assert await delete_listing(store.redis, sku, "demo")
    await scheduler.tick()
    assert exported() is None  # nothing left to crawl, nothing to be stale


async def test_a_competitor_is_listed_from_its_first_listing_to_its_last(
    store: Store, crawler_settings: CrawlerSettings
) -> None:
    # Never accepted, it has no last-accepted series: when it was listed is what its alert
    # (PricingCompetitorNeverAccepted) reads, with the median period it now also gets.
    def listing(sku: str) -> Listing:
        return Listing(sku=sku, competitor="new", url=f"http://127.0.0.1/{sku}", frequency=EVERY)

    await put_listings(store.redis, [listing("A-1")], now=1000.0)
    await put_listings(store.redis, [listing("A-2")], now=2000.0)
    scheduler = Scheduler(store.redis, crawler_settings)

    def exported(name: str) -> float | None:
        return REGISTRY.get_sample_value(name, {"competitor": "new"})

    await scheduler.tick()
    assert exported("pricing_crawl_listed_since_timestamp_seconds") == 1000.0
    assert exported("pricing_crawl_median_listing_period_seconds") == EVERY.total_seconds()
    assert exported("pricing_crawl_last_accepted_timestamp_seconds") is None
    assert await delete_listing(store.redis, "A-1", "new")
    await scheduler.tick()
    assert exported("pricing_crawl_listed_since_timestamp_seconds") == 1000.0
    assert await delete_listing(store.redis, "A-2", "new")
    assert await store.redis.hget(keys.LISTED_COMPETITORS, "new") is None
    await scheduler.tick()
    assert exported("pricing_crawl_listed_since_timestamp_seconds") is None
    assert exported("pricing_crawl_median_listing_period_seconds") is None
    # Listed again: a new clock.
    await put_listings(store.redis, [listing("A-1")], now=5000.0)
    await scheduler.tick()
    assert exported("pricing_crawl_listed_since_timestamp_seconds") == 5000.0


async def test_the_scheduler_lists_the_competitors_of_listings_stored_before_the_index(
    store: Store, crawler_settings: CrawlerSettings
) -> None:
    await put_listings(
        store.redis,
        [Listing(sku="A-1", competitor="old", url="http://127.0.0.1/", frequency=EVERY)],
        now=1000.0,
    )
    await store.redis.delete(keys.LISTED_COMPETITORS)  # as an earlier version stored it
    before = time.time()

    await Scheduler(store.redis, crawler_settings).rebalance()

    since = await store.redis.hget(keys.LISTED_COMPETITORS, "old")
    assert since is not None
    assert float(since) >= before  # when it was first listed is not known: from now
    await store.redis.delete(keys.LISTED_COMPETITORS)
    await Scheduler(store.redis, crawler_settings).rebalance()
    assert await store.redis.hget(keys.LISTED_COMPETITORS, "old") is None  # once


async def test_the_scheduler_indexes_the_periods_of_listings_stored_before_the_index(
    store: Store, crawler_settings: CrawlerSettings
) -> None:
    listings = [
        Listing(sku=f"A-{n}", competitor="demo", url="http://127.0.0.1/", frequency=n * EVERY)
        for n in (1, 2)
    ]
    await put_listings(store.redis, listings)
    periods = keys.competitor_periods("demo")
    await store.redis.delete(periods)  # as an earlier version stored them

    await Scheduler(store.redis, crawler_settings).rebalance()

    indexed = await store.redis.zrange(periods, 0, -1, withscores=True)
    assert indexed == [(b"A-1", EVERY.total_seconds()), (b"A-2", 2 * EVERY.total_seconds())]
    await store.redis.delete(periods)
    await Scheduler(store.redis, crawler_settings).rebalance()
    assert await store.redis.zcard(periods) == 0  # once: no scan at every start


async def test_the_last_accepted_crawl_is_kept_in_redis_and_exported_by_the_scheduler(
    site: DemoSiteServer, store: Store, crawler_settings: CrawlerSettings, make_worker: Any
) -> None:
    # Kept by a crawler process, it vanished with every restart, and the stale-data alert
    # with it, for a competitor that kept failing.
    await listed(store, f"{site.url}/jsonld/A-1")
    began = time.time()
    await Scheduler(store.redis, crawler_settings).tick()
    [job_id] = await work_once(make_worker())
    assert await outcome_of(store.redis, job_id) == Outcome.ACCEPTED
    raw = await store.redis.hget(QUEUE.accepted, "demo")
    assert raw is not None
    accepted_at = float(raw)
    assert began <= accepted_at <= time.time()

    # A failing crawl later does not move it; a new scheduler exports it from Redis.
    await listed(store, f"{site.url}/flaky/9/A-2", sku="A-2")
    await Scheduler(store.redis, crawler_settings).tick()
    [failed] = await work_once(make_worker())
    assert await outcome_of(store.redis, failed) != Outcome.ACCEPTED
    assert await store.redis.hget(QUEUE.accepted, "demo") == raw
    await Scheduler(store.redis, crawler_settings).tick()
    exported = REGISTRY.get_sample_value(
        "pricing_crawl_last_accepted_timestamp_seconds", {"competitor": "demo"}
    )
    assert exported == accepted_at


async def test_a_job_waiting_for_its_rate_slot_is_not_taken_for_an_abandoned_one(
    site: DemoSiteServer, store: Store, crawler_settings: CrawlerSettings
) -> None:
    # One request a second for the domain: the third job waits two seconds for its slot,
    # four times the claim idle time. Its worker's heartbeat keeps it from the other one.
    # (Both workers share the test's event loop, which each fetcher's first request stalls
    # for a tenth of a second or more while it loads its TLS certificates: an idle time
    # of 0.2 s took that for a dead worker.)
    slow = {"demo": Competitor(name="Demo", domains=["127.0.0.1"], requests_per_second=Decimal(1))}
    settings = crawler_settings.model_copy(update={"claim_idle_seconds": 0.5})
    for n in range(3):
        await listed(store, f"{site.url}/jsonld/A-{n}", sku=f"A-{n}")
    await Scheduler(store.redis, settings).tick()
    fetchers = [Fetcher(settings, store.redis, slow) for _ in range(2)]
    workers = [
        CrawlWorker(store, fetcher, slow, settings, consumer=f"w{n}", block_seconds=0.05)
        for n, fetcher in enumerate(fetchers)
    ]
    stop = asyncio.Event()
    running = [asyncio.create_task(worker.run(stop)) for worker in workers]
    try:
        deadline = time.monotonic() + 15
        while len(site.state.hits("/jsonld/")) < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.5)  # time enough for a second fetch, were one coming
    finally:
        stop.set()
        await asyncio.gather(*running)
        for fetcher in fetchers:
            await fetcher.close()
    fetched = sorted(path for _, path in site.state.requests if path.startswith("/jsonld/"))
    assert fetched == [f"/jsonld/A-{n}" for n in range(3)]  # each once
    assert await store.redis.xlen(QUEUE.dead_letters) == 0


async def test_a_listing_stored_again_is_due_as_its_change_asks(store: Store) -> None:
    member = keys.due_member("A-1", "demo")

    async def store_and_due(url: str, every: timedelta, now: float) -> float:
        await put_listings(
            store.redis, [Listing(sku="A-1", competitor="demo", url=url, frequency=every)], now=now
        )
        due = await store.redis.zscore(QUEUE.due, member)
        assert due is not None
        return float(due)

    await store.put_items([ItemFacts(sku="A-1", currency="USD")])
    assert await store_and_due("https://a.example/1", timedelta(days=90), 1000.0) == 1000.0
    await store.redis.zadd(QUEUE.due, {member: 1000.0 + 86_400 * 90})  # crawled: next in 90 d
    # A slip corrected ("90d" meant "6h"): due a new period from now, not in 90 days.
    assert await store_and_due("https://a.example/1", timedelta(hours=6), 2000.0) == 2000.0 + 21_600
    # A longer period does not push the crawl already due back.
    assert await store_and_due("https://a.example/1", timedelta(days=2), 3000.0) == 2000.0 + 21_600
    # A corrected URL is crawled at once.
    assert await store_and_due("https://a.example/2", timedelta(days=2), 4000.0) == 4000.0


async def test_a_page_without_a_price_waits_for_its_regular_crawl(
    site: DemoSiteServer,
    store: Store,
    crawler_settings: CrawlerSettings,
    make_worker: Any,
) -> None:
    await listed(store, f"{site.url}/garbage")
    moment = time.time()
    await Scheduler(store.redis, crawler_settings).tick(moment)
    [job_id] = await work_once(make_worker())
    assert await outcome_of(store.redis, job_id) == Outcome.NO_PRICE
    due = await store.redis.zscore(QUEUE.due, keys.due_member("A-1", "demo"))
    assert due is not None
    assert due >= moment + EVERY.total_seconds() * 0.9  # retrying would not help
    assert await store.redis.hlen(QUEUE.failures) == 0


async def test_deleting_a_listing_forgets_its_failures(
    site: DemoSiteServer, store: Store, crawler_settings: CrawlerSettings, worker_with: Any
) -> None:
    settings = crawler_settings.model_copy(update={"max_attempts": 1})
    async with worker_with(settings) as worker:
        await listed(store, f"{site.url}/flaky/1/A-1")
        await Scheduler(store.redis, settings).tick()
        [job_id] = await work_once(worker)
        assert await outcome_of(store.redis, job_id) == Outcome.SERVER_ERROR
        assert await store.redis.hlen(QUEUE.failures) == 1

        assert await delete_listing(store.redis, "A-1", "demo") is True
        assert await store.redis.hlen(QUEUE.failures) == 0
        assert await store.redis.zcard(QUEUE.due) == 0


async def test_a_slow_competitors_jobs_do_not_hold_up_the_others(
    site: DemoSiteServer, store: Store, crawler_settings: CrawlerSettings
) -> None:
    # "slow" takes one request a second, one at a time; "quick" is on another address.
    # Six of slow's jobs are queued ahead of two of quick's, for a worker of 4 slots.
    # Holding them all, the worker would reach quick's jobs after slow's third page, 2 s in.
    with DemoSiteServer(host="127.0.0.2") as other:
        competitors = {
            "slow": Competitor(
                name="Slow", domains=["127.0.0.1"], requests_per_second=Decimal(1), concurrency=1
            ),
            "quick": Competitor(
                name="Quick", domains=["127.0.0.2"], requests_per_second=Decimal(200)
            ),
        }
        for n in range(6):
            await listed(store, f"{site.url}/jsonld/S-{n}", sku=f"S-{n}", competitor="slow")
        for n in range(2):
            await listed(store, f"{other.url}/jsonld/Q-{n}", sku=f"Q-{n}", competitor="quick")
        settings = crawler_settings.model_copy(update={"claim_idle_seconds": 60.0})
        scheduler = Scheduler(store.redis, settings)
        # The slow competitor's listings are due first, so they are queued first.
        for member in [f"S-{n}|slow" for n in range(6)]:
            await store.redis.zadd(QUEUE.due, {member: 0})
        assert (await scheduler.tick()).queued == 8
        given_back_before = (
            REGISTRY.get_sample_value("pricing_crawl_jobs_given_back_total", {"competitor": "slow"})
            or 0.0
        )
        fetcher = Fetcher(settings, store.redis, competitors)
        worker = CrawlWorker(
            store, fetcher, competitors, settings, consumer="w1", concurrency=4, block_seconds=0.05
        )
        stop = asyncio.Event()
        started = time.monotonic()
        running = asyncio.create_task(worker.run(stop))
        try:
            deadline = started + 20
            while len(site.state.hits("/jsonld/")) < 6 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            stop.set()
            await running
            await fetcher.close()
        quick_hits = other.state.hits("/jsonld/")
        slow_hits = site.state.hits("/jsonld/")
    assert len(quick_hits) == 2
    assert len(slow_hits) == 6  # each slow job fetched once: none lost or doubled on its way back
    assert max(quick_hits) < sorted(slow_hits)[1]  # quick waited for none of slow's slots
    given_back = REGISTRY.get_sample_value(
        "pricing_crawl_jobs_given_back_total", {"competitor": "slow"}
    )
    assert given_back is not None
    assert given_back > given_back_before
    outcomes: Any = await store.redis.xrange(QUEUE.outcomes)
    assert sorted(fields[b"outcome"] for _, fields in outcomes) == [b"accepted"] * 8
    assert await store.redis.xlen(QUEUE.jobs) == 0
    assert await store.redis.hlen(QUEUE.in_flight) == 0
