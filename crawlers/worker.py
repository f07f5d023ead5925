"""``pricing crawl``: workers that fetch, extract, gate and store competitor prices.

Each worker process reads jobs from the consumer group of every queue partition and runs
up to ``concurrency`` of them at once. Delivery is at least once: a job is acknowledged
only after its outcome is recorded, and jobs a dead worker left pending are taken over
with XAUTOCLAIM once idle for ``claim_idle_seconds``. A job delivered more than
``max_deliveries`` times goes to the dead-letter stream. A worker holds at most as many
of one competitor's jobs as the competitor's ``concurrency`` lets run at once: more
would only wait for the domain's leases and rate slots, holding slots the other
competitors' jobs need (a slow competitor's backlog stalled every other one for
minutes). A new job over that share goes back to the tail of its queue
(:data:`_GIVE_BACK`), unfetched and with its delivery not counted. Whatever happens, the outcome
is recorded once per job (SET NX), so a redelivered job that already finished is only
acknowledged. The observation a job yields is stored, and its SKU marked dirty, with
the outcome and only by the delivery that records it (``crawlers.jobs``): a job's writes
happen once, together on one Redis and converging on a cluster, or not at all.

Per job, Redis sees one script reading the outcome, listing, item and market (all on
the SKU's shard), one script taking the domain's lease and rate slot (and giving back
an earlier one), and the finishing scripts (one script on one Redis).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import ValidationError
from redis.exceptions import RedisError

from crawlers import keys
from crawlers.extraction import (
    Availability,
    ExtractionOverride,
    FieldSelector,
    ProductResult,
    extract_product,
    extract_product_json,
)
from crawlers.fetch import Fetcher, FetchResult
from crawlers.jobs import Job, OfferWrite, OutcomeRecorder
from crawlers.keys import CrawlQueue
from crawlers.listings import Listing, host_allowed, stored_listing
from crawlers.outcome import Outcome
from crawlers.settings import CrawlerSettings
from pricing_service import metrics
from pricing_service.engine.inputs import CompetitorObservation, ItemFacts
from pricing_service.logs import OutageLog
from pricing_service.observations import ACCEPTED, HISTORY_SCAN, build_market, gate_in_market
from pricing_service.rules.model import Competitor, PageField
from pricing_service.shutdown import release
from pricing_service.store import keys as store_keys
from pricing_service.store.store import Store
from pricing_service.store.streams import PartitionedGroup

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

#: Pause after a failed Redis operation (a restart, say) before trying again.
RETRY_SECONDS = 1.0
#: Pages up to this size are parsed on the event loop (a millisecond or so); larger
#: ones in a thread, so that a big page cannot stall the other jobs' I/O.
INLINE_EXTRACT_BYTES = 64 * 1024


#: What a job reads before its fetch, in one call (cheaper for the client than a
#: pipeline of five commands). Every key is on the SKU's shard.
#: KEYS: outcome, listings, item, offers, offer history. ARGV: competitor, history count.
_READ_INPUTS = """
return {
    redis.call('GET', KEYS[1]),
    redis.call('HGET', KEYS[2], ARGV[1]),
    redis.call('GET', KEYS[3]),
    redis.call('HGETALL', KEYS[4]),
    redis.call('XREVRANGE', KEYS[5], '+', '-', 'COUNT', ARGV[2]),
}
"""


#: Acknowledges jobs read but not started and adds them again, unchanged (the same job
#: id: their listing stays in flight, their outcome is still recorded once), at the
#: stream's tail. A job no longer pending for this consumer (claimed meanwhile) is left
#: alone, so no job is ever queued twice.
#: KEYS: jobs stream. ARGV: group, then per job: its message id and its three fields'
#: values (job id, sku, competitor). Returns how many went back.
_GIVE_BACK = """
local given_back = 0
for i = 2, #ARGV, 4 do
  if redis.call('XACK', KEYS[1], ARGV[1], ARGV[i]) == 1 then
    redis.call('XDEL', KEYS[1], ARGV[i])
    redis.call('XADD', KEYS[1], '*', 'job', ARGV[i + 1], 'sku', ARGV[i + 2],
               'competitor', ARGV[i + 3])
    given_back = given_back + 1
  end
end
return given_back
"""


def _pairs(flat: list[bytes]) -> dict[bytes, bytes]:
    """A hash or a stream entry's fields, as a script returns them (flat), as a dict."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def run_event_loop(main: Coroutine[Any, Any, _T]) -> _T:
    """Run a worker process's event loop: uvloop's where it is installed (uvicorn's
    standard extras bring it), which spends less CPU on each of a page's dozen socket
    waits than asyncio's own loop; asyncio's otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


@dataclass
class JobReport:
    outcome: Outcome
    detail: dict[str, Any] = field(default_factory=dict)
    #: The observation to store with the outcome, when the page gave one.
    offer: OfferWrite | None = None


@dataclass(frozen=True, slots=True)
class JobInputs:
    """What a job reads before its fetch: listing, item and the SKU's market, raw."""

    listing: Listing | None
    item: ItemFacts | None
    offers: dict[bytes, bytes]
    history: list[tuple[bytes, dict[bytes, bytes]]]


class CrawlWorker:
    def __init__(
        self,
        store: Store,
        fetcher: Fetcher,
        competitors: Mapping[str, Competitor],
        settings: CrawlerSettings,
        *,
        consumer: str,
        concurrency: int = 8,
        block_seconds: float = 0.5,
    ) -> None:
        self.store = store
        self.redis = store.redis
        self.fetcher = fetcher
        self.competitors = competitors
        self.settings = settings
        self.consumer = consumer
        self.concurrency = concurrency
        self.block_ms = int(block_seconds * 1000)
        self.recorder = OutcomeRecorder(
            store, settings.outcome_retention_seconds, settings.retry_after_failure_seconds
        )
        self._read_inputs = store.redis.register_script(_READ_INPUTS)
        self._give_back = store.redis.register_script(_GIVE_BACK)
        self.queues = keys.queues(settings.queue_partitions)
        self._queue_of_stream = {queue.jobs: queue for queue in self.queues}
        self.group = PartitionedGroup(
            store.redis,
            list(self._queue_of_stream),
            keys.JOBS_GROUP,
            consumer,
            cluster=store.cluster,
        )
        self._group_ready = False
        # Claim on the first call whatever the monotonic clock reads: it starts near 0 on
        # a freshly booted host, which would delay the first claim by claim_idle_seconds/4.
        self._last_claim = -math.inf
        self._last_heartbeat = time.monotonic()
        #: How often jobs in hand are kept and idle ones looked for: well within the idle
        #: time after which a job counts as abandoned.
        self._beat = settings.claim_idle_seconds / 4
        # Jobs are read a few at a time rather than one per finished job: each read is a
        # round trip, and a quarter of the slots idle for a moment costs less than that.
        self._refill_at = max(1, concurrency // 4)

    def use_competitors(self, competitors: Mapping[str, Competitor]) -> None:
        """Crawl, extract and gate with ``competitors`` from now on (an edit of the rule
        files). A job in hand whose request still waits for its rate slot follows the edit
        (a slower rate, a removal); one already fetching finishes as it started."""
        self.fetcher.use_competitors(competitors)
        self.competitors = competitors

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set, then finish the jobs in hand. Cancelled, it
        releases the jobs still running (they stay pending, claimable at once)."""
        running: dict[asyncio.Task[None], tuple[str, Job]] = {}
        outage = OutageLog(logger, "reading crawl jobs")
        try:
            while not stop.is_set():
                free = self.concurrency - len(running)
                try:
                    await self._keep_in_hand(running.values())
                    if running and free < self._refill_at:
                        # Not for ever: the jobs in hand need their heartbeat meanwhile.
                        await asyncio.wait(
                            running, timeout=self._beat, return_when=asyncio.FIRST_COMPLETED
                        )
                        continue
                    batch = await self.next_batch(free)
                    to_run, over_share = self._within_shares(batch, running.values())
                    await self._give_back_jobs(over_share)
                except RedisError as exc:
                    outage.failed(exc)
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
                outage.succeeded()
                for message_id, job, deliveries in to_run:
                    task = asyncio.create_task(self.handle(message_id, job, deliveries))
                    running[task] = (message_id, job)
                    task.add_done_callback(running.pop)
                if over_share and not to_run and running:
                    # Only jobs of competitors at their share are queued just now: wait a
                    # little (or for a job of theirs to end) rather than cycle them at
                    # Redis's speed. (Their jobs may all have ended while they went back.)
                    await asyncio.wait(
                        running, timeout=self.block_ms / 1000, return_when=asyncio.FIRST_COMPLETED
                    )
            if running:
                await asyncio.wait(running)
        except asyncio.CancelledError:
            unfinished = dict(running)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
            for queue in self.queues:
                ids = [entry for entry, job in unfinished.values() if job.queue == queue]
                await release(self.redis, queue.jobs, keys.JOBS_GROUP, self.consumer, ids)
            raise

    def _within_shares(
        self, batch: list[tuple[str, Job, int]], in_hand: Iterable[tuple[str, Job]]
    ) -> tuple[list[tuple[str, Job, int]], list[tuple[str, Job]]]:
        """The jobs to run, and the new ones over their competitor's share (its
        ``concurrency``, counting the jobs in hand). A job delivered before is run
        whatever the share: giving it back would reset its delivery count, and a job
        that keeps failing must reach the dead letters."""
        to_run: list[tuple[str, Job, int]] = []
        over_share: list[tuple[str, Job]] = []
        taking = Counter(job.competitor for _, job in in_hand)
        for message_id, job, deliveries in batch:
            competitor = self.competitors.get(job.competitor)
            if (
                deliveries == 1
                and competitor is not None
                and taking[job.competitor] >= competitor.concurrency
            ):
                over_share.append((message_id, job))
                continue
            taking[job.competitor] += 1
            to_run.append((message_id, job, deliveries))
        return to_run, over_share

    async def _give_back_jobs(self, jobs: list[tuple[str, Job]]) -> None:
        """Put jobs not started back at the tail of their queues (:data:`_GIVE_BACK`)."""
        by_queue: dict[CrawlQueue, list[str]] = {}
        for message_id, job in jobs:
            by_queue.setdefault(job.queue, []).extend([message_id, job.id, job.sku, job.competitor])
        for queue, args in by_queue.items():
            await self._give_back(keys=[queue.jobs], args=[keys.JOBS_GROUP, *args])
        for _, job in jobs:
            metrics.CRAWL_JOBS_GIVEN_BACK.labels(job.competitor).inc()

    async def _keep_in_hand(self, in_hand: Iterable[tuple[str, Job]]) -> None:
        """Reset the idle time of the jobs this worker holds (``XCLAIM ... JUSTID``, which
        does not count a delivery), a quarter of ``claim_idle_seconds`` apart: a job waiting
        for its domain's rate slot was taken for one a dead worker left, claimed by another
        worker and fetched twice, and dead-lettered once that had happened often enough."""
        now = time.monotonic()
        if now - self._last_heartbeat < self._beat:
            return
        self._last_heartbeat = now
        by_queue: dict[CrawlQueue, list[Any]] = {}  # redis-py types ids invariantly
        for message_id, job in in_hand:
            by_queue.setdefault(job.queue, []).append(message_id)
        for queue, ids in by_queue.items():
            await self.redis.xclaim(queue.jobs, keys.JOBS_GROUP, self.consumer, 0, ids, justid=True)

    async def next_batch(self, count: int) -> list[tuple[str, Job, int]]:
        """Up to ``count`` jobs: first those abandoned by dead workers, then new ones.
        Each with how many times it has been delivered, this time included."""
        if not self._group_ready:
            await self.group.ensure()
            await self._check_partitions()
            self._group_ready = True
        try:
            return await self._next_batch(count)
        except RedisError:
            self._group_ready = False  # a restarted Redis may have lost the groups
            raise

    async def _check_partitions(self) -> None:
        """Say so when the scheduler laid the queue out for another partition count: this
        worker would leave the partitions it does not know of unread."""
        raw: Any = await self.redis.get(keys.PARTITIONS)
        if raw is not None and int(raw) != len(self.queues):
            logger.error(
                "the crawl queue has %s partitions and this worker reads %d: set the same "
                "PRICING_CRAWL_QUEUE_PARTITIONS on every process",
                int(raw),
                len(self.queues),
            )

    async def _next_batch(self, count: int) -> list[tuple[str, Job, int]]:
        claimed = await self._claim_abandoned(count)
        if claimed:
            return claimed
        return [
            (entry_id.decode(), Job.from_fields(fields, self._queue_of_stream[stream]), 1)
            for stream, entries in await self.group.read_new(count, self.block_ms)
            for entry_id, fields in entries
        ]

    async def _claim_abandoned(self, count: int) -> list[tuple[str, Job, int]]:
        """Jobs idle consumers (dead workers) hold, each with its delivery count."""
        now = time.monotonic()
        if now - self._last_claim < self._beat:
            return []
        self._last_claim = now
        idle_ms = int(self.settings.claim_idle_seconds * 1000)
        claimed = []
        for stream, entries in await self.group.claim_idle(count, idle_ms):
            for message_id, fields in entries:
                entry_id = message_id.decode()
                pending: Any = await self.redis.xpending_range(
                    stream, keys.JOBS_GROUP, min=entry_id, max=entry_id, count=1
                )
                deliveries = int(pending[0]["times_delivered"]) if pending else 1
                job = Job.from_fields(fields, self._queue_of_stream[stream])
                claimed.append((entry_id, job, deliveries))
        return claimed

    async def handle(self, message_id: str, job: Job, deliveries: int) -> None:
        """Run one job and record its outcome; on any failure leave it pending, to be
        claimed again (and dead-lettered if it keeps failing)."""
        try:
            offer: OfferWrite | None = None
            period: timedelta | None = None
            url: str | None = None
            dead = deliveries > self.settings.max_deliveries
            if dead:
                metrics.CRAWL_DEAD_LETTERS.inc()
                report = JobReport(Outcome.DEAD_LETTER, {"deliveries": deliveries})
            else:
                recorded, inputs = await self._read_job(job)
                if recorded is not None:
                    # Finished before its worker died: only acknowledged now.
                    report = JobReport(Outcome(recorded["outcome"]))
                    if self.store.cluster and report.outcome is Outcome.ACCEPTED:
                        # That worker may have died before its dirty mark (see jobs.py).
                        await self.store.mark_dirty([job.sku], "crawl")
                else:
                    report = await self._crawl(job, inputs)
                    offer = report.offer
                    if inputs.listing is not None:
                        period, url = inputs.listing.frequency, inputs.listing.url
            await self.recorder.finish(
                job,
                message_id,
                report.outcome,
                {**report.detail, "consumer": self.consumer},
                offer,
                deliveries=deliveries if dead else None,
                period=period,
            )
            metrics.CRAWL_JOBS.labels(job.competitor, report.outcome.value).inc()
            if report.outcome is not Outcome.ACCEPTED:
                # What an operator greps for when one listing's prices go missing.
                logger.warning(
                    "crawl of %s at %s: %s",
                    job.sku,
                    job.competitor,
                    report.outcome.value,
                    extra={
                        "sku": job.sku,
                        "competitor": job.competitor,
                        "outcome": report.outcome.value,
                        "job": job.id,
                        "url": url,
                        **{f"outcome_{key}": value for key, value in report.detail.items()},
                    },
                )
        except RedisError as exc:
            logger.warning("job %s: Redis failed (%s); it stays pending", job.id, exc)
        except Exception:
            logger.exception("job %s failed; it stays pending", job.id)

    async def _read_job(self, job: Job) -> tuple[dict[str, Any] | None, JobInputs]:
        """The job's recorded outcome and what crawling it needs, in one round trip.

        The market (the SKU's offers and history) is read here too, before the fetch.
        The listing's own history does not change meanwhile: it is queued once at a time
        (and should a slow job be claimed and crawled twice, only the first to finish
        stores its observation). Other competitors' offers landing during the fetch
        were already a race when the market was read after it."""
        job_keys = [
            keys.outcome(job.id),
            keys.listings(job.sku),
            store_keys.item(job.sku),
            store_keys.offers(job.sku),
            store_keys.offer_history(job.sku),
        ]
        reply: Any = await self._read_inputs(keys=job_keys, args=[job.competitor, HISTORY_SCAN])
        raw_outcome, raw_listing, raw_item, flat_offers, history = reply
        inputs = JobInputs(
            None if raw_listing is None else stored_listing(job.sku, job.competitor, raw_listing),
            None if raw_item is None else ItemFacts.model_validate_json(raw_item),
            _pairs(flat_offers),
            [(entry_id, _pairs(fields)) for entry_id, fields in history],
        )
        return None if raw_outcome is None else dict(json.loads(raw_outcome)), inputs

    async def _crawl(self, job: Job, inputs: JobInputs) -> JobReport:
        listing, item = inputs.listing, inputs.item
        competitor = self.competitors.get(job.competitor)
        if listing is None or competitor is None:
            return JobReport(Outcome.UNKNOWN_LISTING)
        if item is None:
            return JobReport(Outcome.UNKNOWN_ITEM)
        fetched = await self.fetcher.fetch(job.competitor, listing.url)
        if not fetched.ok:
            detail = {"status": fetched.status, "detail": fetched.detail}
            return JobReport(fetched.outcome, detail)
        try:
            if len(fetched.body) <= INLINE_EXTRACT_BYTES:
                result = _extract(fetched, competitor)
            else:
                result = await asyncio.to_thread(_extract, fetched, competitor)
        except ValueError as exc:  # a JSON endpoint answering with something else
            return JobReport(Outcome.BAD_RESPONSE, {"detail": str(exc)[:200]})
        metrics.CRAWL_EXTRACTIONS.labels(method=result.method).inc()
        if result.blocked:
            return JobReport(Outcome.BLOCKED, {"status": fetched.status})
        if result.price is None or result.currency is None:
            return JobReport(Outcome.NO_PRICE, {"method": result.method})
        now = datetime.now(UTC)
        try:
            observation = CompetitorObservation(
                competitor=job.competitor,
                price=result.price,
                currency=result.currency,
                observed_at=now,
                shipping=result.shipping,
                in_stock=result.availability is not Availability.OUT_OF_STOCK,
                source="crawler",
            )
        except ValidationError as exc:
            return JobReport(Outcome.NO_PRICE, {"detail": str(exc.errors()[0]["msg"])})
        market = build_market(
            inputs.offers,
            inputs.history,
            item,
            job.competitor,
            self.competitors,
            now,
            self.settings.fx_rates,
        )
        verdict = gate_in_market(
            observation,
            item,
            now,
            market,
            own_store=competitor.ours,
            fx_rates=self.settings.fx_rates,
            outlier_ratio=self.settings.outlier_ratio,
        )
        offer = OfferWrite(
            sku=job.sku,
            offer=verdict.offer,
            retention=self.store.retention,
            dirty=verdict.accepted,
        )
        previous = market.previous
        if previous is not None and previous.status == ACCEPTED:
            age = (now - previous.observation.observed_at).total_seconds()
            metrics.CRAWL_OBSERVATION_AGE_SECONDS.labels(competitor=job.competitor).set(age)
        metrics.CRAWL_OBSERVATIONS.labels(
            competitor=job.competitor,
            status=verdict.offer.status,
            reason=verdict.kind or "",
        ).inc()
        detail = {"price": str(verdict.offer.observation.price), "method": result.method}
        if verdict.accepted:
            return JobReport(Outcome.ACCEPTED, detail, offer)
        reason = {"reason": verdict.offer.reason}
        return JobReport(Outcome.QUARANTINED, {**detail, **reason}, offer)


def extraction_override(competitor: Competitor, host: str) -> ExtractionOverride | None:
    """The competitor's selectors for ``host`` (or the domain it belongs to), if any."""
    for domain, fields in competitor.extraction.items():
        if host_allowed(host, [domain]):
            return ExtractionOverride(
                domain=domain,
                price=_selector(fields.price),
                currency=_selector(fields.currency),
                availability=_selector(fields.availability),
                sku=_selector(fields.sku),
            )
    return None


def _selector(field: PageField | None) -> FieldSelector | None:
    if field is None:
        return None
    return FieldSelector(field.css, field.xpath, field.json_path, field.attribute)


def _extract(fetched: FetchResult, competitor: Competitor) -> ProductResult:
    override = extraction_override(competitor, urlsplit(fetched.url).hostname or "")
    content_type = fetched.content_type or ""
    if override is not None and "json" in content_type:
        return extract_product_json(fetched.body, override)
    return extract_product(
        fetched.body, fetched.url, override=override, content_type=fetched.content_type
    )
