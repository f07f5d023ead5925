"""``pricing scheduler``: queue each listing's crawl when it is due.

Each tick reads the listings due from ``crawl:due`` and, per listing, in one script:
skips it if another scheduler already moved it; else, when its previous job is still in
flight, only moves its due time on (no second job for the same page); else adds a job to
the stream and records it in flight. The next due time is one period later, give or take
the jitter, so listings imported together spread out. While the workers' backlog is
above ``max_backlog`` the scheduler queues nothing: due listings simply wait.
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
from crawlers.jobs import Job, backlog, ensure_group
from crawlers.listings import ListingBody
from crawlers.settings import CrawlerSettings
from pricing_service import metrics

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
#: A job in flight for this long is taken as lost (its entry removed by hand, say).
LOST_JOB_SECONDS = 86_400
TICK_BATCH = 1000


@dataclass(frozen=True, slots=True)
class TickResult:
    queued: int = 0
    skipped_in_flight: int = 0
    paused: bool = False


class Scheduler:
    def __init__(self, redis: aioredis.Redis, settings: CrawlerSettings) -> None:
        self.redis = redis
        self.settings = settings
        self._enqueue = redis.register_script(_ENQUEUE)

    async def tick(self, now: float | None = None) -> TickResult:
        moment = time.time() if now is None else now
        await ensure_group(self.redis)
        waiting = await backlog(self.redis)
        metrics.CRAWL_QUEUE_DEPTH.set(waiting)
        room = self.settings.max_backlog - waiting
        if room <= 0:
            return TickResult(paused=True)
        due: Any = await self.redis.zrangebyscore(
            keys.DUE, "-inf", moment, start=0, num=min(room, TICK_BATCH)
        )
        members = [member.decode() for member in due]
        async with self.redis.pipeline(transaction=False) as pipe:
            for member in members:
                sku, competitor = keys.parse_due_member(member)
                pipe.hget(keys.listings(sku), competitor)
            bodies = await pipe.execute()
        queued = skipped = 0
        for member, body in zip(members, bodies, strict=True):
            if body is None:  # the listing was deleted: forget its due time too
                await self.redis.zrem(keys.DUE, member)
                continue
            every = ListingBody.model_validate_json(body).every_seconds
            jitter = random.uniform(-self.settings.schedule_jitter, self.settings.schedule_jitter)
            sku, competitor = keys.parse_due_member(member)
            job = Job.new(sku, competitor, moment)
            result = await self._enqueue(
                keys=[keys.DUE, keys.IN_FLIGHT, keys.JOBS_STREAM],
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
        return TickResult(queued=queued, skipped_in_flight=skipped)

    async def run(self, stop: asyncio.Event, *, tick_seconds: float = 1.0) -> None:
        while not stop.is_set():
            try:
                result = await self.tick()
                if result.queued or result.paused:
                    logger.info("queued %d, paused %s", result.queued, result.paused)
            except RedisError as exc:  # Redis restarting: try again on the next tick
                logger.warning("scheduler tick failed: %s", exc)
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), tick_seconds)
