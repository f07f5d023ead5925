"""``pricing scheduler``: queue each listing's crawl when it is due.

Each tick reads the listings due from each queue partition's due set and, per listing,
in one script on that partition's shard:
skips it if another scheduler already moved it; else, when its previous job is still in
flight, only moves its due time on (no second job for the same page); else adds a job to
the stream and records it in flight. The next due time is one period later, give or take
the jitter, so listings imported together spread out. While the workers' backlog is
above ``max_backlog`` the scheduler queues nothing: due listings simply wait.

Run one scheduler (two would only queue each due listing once between them, but do the
work twice). On start it lays the due times out for the configured partition count
(:meth:`Scheduler.rebalance`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from crawlers import keys
from crawlers.jobs import Job
from crawlers.keys import CrawlQueue
from crawlers.listings import ListingBody, scan_listings
from crawlers.settings import LOST_JOB_SECONDS, CrawlerSettings
from pricing_service import metrics
from pricing_service.logs import OutageLog
from pricing_service.store.streams import ensure_groups, group_backlog

logger = logging.getLogger(__name__)

#: KEYS: due set, in-flight hash, jobs stream.
#: ARGV: member, now (s), next due (s), job id, sku, competitor, lost-job age (ms), now (ms).
#: Returns 1 queued, -1 skipped (still in flight), 0 not due any more.
_ENQUEUE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
local previous = redis.call('HGET', KEYS[2], ARGV[1])
if previous then
  local queued_at = tonumber(string.match(previous, '|(%d+)$') or '0')
  if tonumber(ARGV[8]) - queued_at < tonumber(ARGV[7]) then return -1 end
end
redis.call('XADD', KEYS[3], '*', 'job', ARGV[4], 'sku', ARGV[5], 'competitor', ARGV[6])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
return 1
"""
TICK_BATCH = 1000
#: Due times moved per round trip when the partitions change.
REBALANCE_BATCH = 1000


@dataclass(frozen=True, slots=True)
class TickResult:
    queued: int = 0
    skipped_in_flight: int = 0
    paused: bool = False


class Scheduler:
    def __init__(self, redis: aioredis.Redis, settings: CrawlerSettings) -> None:
        self.redis = redis
        self.settings = settings
        self.queues = keys.queues(settings.queue_partitions)
        self._enqueue = redis.register_script(_ENQUEUE)
        self._next_partition = 0  # partitions take turns at being served first
        self._periods_exported: set[str] = set()
        self._listed_exported: set[str] = set()

    async def tick(self, now: float | None = None) -> TickResult:
        moment = time.time() if now is None else now
        streams = [queue.jobs for queue in self.queues]
        await ensure_groups(self.redis, streams, keys.JOBS_GROUP)
        waiting = await group_backlog(self.redis, streams, keys.JOBS_GROUP)
        metrics.crawl_queue_depth().set(waiting)
        accepted = await self._export_last_accepted()
        listed = await self._export_listed_since()
        await self._export_median_periods(sorted(accepted | listed))
        room = self.settings.max_backlog - waiting
        if room <= 0:
            return TickResult(paused=True)
        first = self._next_partition % len(self.queues)
        self._next_partition += 1
        queued = skipped = 0
        for queue in self.queues[first:] + self.queues[:first]:
            if room - queued <= 0:
                break
            done, passed = await self._tick_partition(queue, moment, room - queued)
            queued += done
            skipped += passed
        return TickResult(queued=queued, skipped_in_flight=skipped)

    async def _export_last_accepted(self) -> set[str]:
        """Each competitor's newest accepted observation, from Redis: one process exports
        it, and a crawler restart does not make it vanish (which silenced the stale-data
        alert for a competitor that keeps failing). The competitors exported."""
        newest: dict[str, float] = {}
        for queue in self.queues:
            recorded: dict[bytes, bytes] = await self.redis.hgetall(queue.accepted)  # type: ignore[assignment]
            for competitor, stamp in recorded.items():
                name = competitor.decode()
                newest[name] = max(newest.get(name, 0.0), float(stamp))
        for name, newest_at in newest.items():
            metrics.CRAWL_LAST_ACCEPTED_SECONDS.labels(name).set(newest_at)
        return set(newest)

    async def _export_listed_since(self) -> set[str]:
        """When each competitor with listings was listed, from Redis: with no accepted
        observation, what its never-accepted alert measures. The competitors exported."""
        stored: dict[bytes, bytes] = await self.redis.hgetall(keys.LISTED_COMPETITORS)  # type: ignore[assignment]
        listed = {name.decode(): float(since) for name, since in stored.items()}
        gauge = metrics.CRAWL_LISTED_SINCE_SECONDS
        for name, since in listed.items():
            gauge.labels(name).set(since)
        for name in self._listed_exported - listed.keys():
            gauge.remove(name)
        self._listed_exported = set(listed)
        return self._listed_exported

    async def _export_median_periods(self, competitors: list[str]) -> None:
        """The median period of each competitor's listings, from its periods index (two
        reads each, however many listings): what the stale-data alert measures staleness
        against. A competitor without listings has none, so it stops alerting."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in competitors:
                pipe.zcard(keys.competitor_periods(name))
            counts: list[int] = await pipe.execute()
        async with self.redis.pipeline(transaction=False) as pipe:
            for name, count in zip(competitors, counts, strict=True):
                # The upper median: more than half the listings are crawled this often.
                pipe.zrange(keys.competitor_periods(name), count // 2, count // 2, withscores=True)
            medians: list[list[tuple[bytes, float]]] = await pipe.execute()
        gauge = metrics.CRAWL_MEDIAN_LISTING_PERIOD_SECONDS
        exported = {
            name: median[0][1] for name, median in zip(competitors, medians, strict=True) if median
        }
        for name, period in exported.items():
            gauge.labels(name).set(period)
        for name in self._periods_exported - exported.keys():
            gauge.remove(name)
        self._periods_exported = set(exported)

    async def _tick_partition(self, queue: CrawlQueue, moment: float, room: int) -> tuple[int, int]:
        """Queue up to ``room`` of the partition's due listings; (queued, still in flight)."""
        due: Any = await self.redis.zrangebyscore(
            queue.due, "-inf", moment, start=0, num=min(room, TICK_BATCH)
        )
        members = [member.decode() for member in due]
        if not members:
            return 0, 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for member in members:
                sku, competitor = keys.parse_due_member(member)
                pipe.hget(keys.listings(sku), competitor)
            bodies = await pipe.execute()
        queued = skipped = 0
        for member, body in zip(members, bodies, strict=True):
            if body is None:  # the listing was deleted: forget its due time too
                await self.redis.zrem(queue.due, member)
                continue
            every = ListingBody.model_validate_json(body).every_seconds
            jitter = random.uniform(-self.settings.schedule_jitter, self.settings.schedule_jitter)
            sku, competitor = keys.parse_due_member(member)
            job = Job.new(sku, competitor, moment, queue)
            result = await self._enqueue(
                keys=[queue.due, queue.in_flight, queue.jobs],
                args=[
                    member,
                    moment,
                    moment + every * (1 + jitter),
                    job.id,
                    sku,
                    competitor,
                    LOST_JOB_SECONDS * 1000,
                    int(moment * 1000),
                ],
            )
            queued += int(result == 1)
            skipped += int(result == -1)
        return queued, skipped

    async def rebalance(self) -> int:
        """Lay the due times out for the configured partition count; how many moved.

        Moves them from the unpartitioned due set of earlier versions and, when the count
        changed since the last run, from every old partition to the one each listing now
        belongs to (ZADD NX there, then ZREM: a retry after a failure converges). Jobs
        still queued in a partition beyond the new count are dropped with its stream:
        their listings are crawled again when next due. Counts of failures in a row move
        with their listings. The first time, it also puts the listings stored by earlier
        versions into their competitors' periods index."""
        raw: Any = await self.redis.get(keys.PARTITIONS)
        previous = int(raw) if raw is not None else 1
        configured = len(self.queues)
        moved = await self._move_due(keys.LEGACY_DUE)
        await self.redis.delete(keys.LEGACY_JOBS)
        await self.redis.delete(keys.LEGACY_IN_FLIGHT)
        if previous != configured:
            for old in keys.queues(previous):
                moved += await self._move_due(old.due)
                await self._move_failures(old.failures)
                if old.index >= configured:
                    await self._merge_accepted(old.accepted)
                    await self.redis.delete(old.jobs)
                    await self.redis.delete(old.in_flight)
        await self.redis.set(keys.PARTITIONS, configured)
        if moved:
            logger.info("moved %d due listings to %d partition(s)", moved, configured)
        await self._index_periods()
        await self._index_listed_competitors()
        return moved

    async def _index_periods(self) -> None:
        """Put the listings stored before the competitors' periods index existed into it,
        once: storing and deleting listings keep it since."""
        if await self.redis.exists(keys.PERIODS_INDEXED):
            return
        indexed = 0
        async for batch in scan_listings(self.redis, partitions=len(self.queues)):
            async with self.redis.pipeline(transaction=False) as pipe:
                for scheduled in batch:
                    listing = scheduled.listing
                    periods = keys.competitor_periods(listing.competitor)
                    pipe.zadd(periods, {listing.sku: listing.every_seconds})
                await pipe.execute()
            indexed += len(batch)
        await self.redis.set(keys.PERIODS_INDEXED, 1)
        logger.info("indexed the crawl periods of %d listing(s)", indexed)

    async def _index_listed_competitors(self) -> None:
        """Put the competitors of the listings stored before their index existed into it,
        once, as listed since now (when they were first listed is not known)."""
        if await self.redis.exists(keys.LISTED_INDEXED):
            return
        moment = time.time()
        async for batch in scan_listings(self.redis, partitions=len(self.queues)):
            competitors = {scheduled.listing.competitor for scheduled in batch}
            async with self.redis.pipeline(transaction=False) as pipe:
                for competitor in competitors:
                    pipe.hsetnx(keys.LISTED_COMPETITORS, competitor, moment)
                await pipe.execute()
        await self.redis.set(keys.LISTED_INDEXED, 1)

    async def _move_due(self, source: str) -> int:
        """Move the members of the due set ``source`` that belong elsewhere; how many."""
        moved, cursor = 0, 0
        while True:
            reply: Any = await self.redis.zscan(source, cursor, count=REBALANCE_BATCH)
            cursor, entries = reply
            leaving: dict[str, dict[str, float]] = {}
            for raw_member, score in entries:
                member = raw_member.decode()
                sku, _ = keys.parse_due_member(member)
                target = keys.queue_of(sku, len(self.queues)).due
                if target != source:
                    leaving.setdefault(target, {})[member] = float(score)
            for target, members in leaving.items():
                await self.redis.zadd(target, members, nx=True)
                await self.redis.zrem(source, *members)
                moved += len(members)
            if cursor == 0:
                return moved

    async def _move_failures(self, source: str) -> None:
        """Move the failure streaks in ``source`` that belong to another partition now, so
        a listing failing before the change keeps backing off after it."""
        cursor = 0
        while True:
            reply: Any = await self.redis.hscan(source, cursor, count=REBALANCE_BATCH)
            cursor, entries = reply
            for raw_member, count in entries.items():
                member = raw_member.decode()
                sku, _ = keys.parse_due_member(member)
                target = keys.queue_of(sku, len(self.queues)).failures
                if target != source:
                    await self.redis.hsetnx(target, member, count)
                    await self.redis.hdel(source, member)
            if cursor == 0:
                return

    async def _merge_accepted(self, source: str) -> None:
        """Fold a dropped partition's last-accepted times into partition 0's (the newest
        per competitor wins), so the staleness metric does not lose them."""
        target = self.queues[0].accepted
        recorded: dict[bytes, bytes] = await self.redis.hgetall(source)  # type: ignore[assignment]
        for competitor, at in recorded.items():
            kept = await self.redis.hget(target, competitor)
            if kept is None or float(kept) < float(at):
                await self.redis.hset(target, competitor, at)
        await self.redis.delete(source)

    async def run(self, stop: asyncio.Event, *, tick_seconds: float = 1.0) -> None:
        rebalanced = False
        outage = OutageLog(logger, "scheduler tick")
        while not stop.is_set():
            try:
                if not rebalanced:
                    await self.rebalance()
                    rebalanced = True
                result = await self.tick()
                if result.queued or result.paused:
                    logger.info("queued %d, paused %s", result.queued, result.paused)
            except RedisError as exc:  # Redis restarting: try again on the next tick
                outage.failed(exc)
            else:
                outage.succeeded()
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), tick_seconds)
