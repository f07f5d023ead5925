"""Crawl jobs on the queue's Redis Streams, and recording each job's single outcome.

A job finishes with two scripts: one on its SKU's shard records the outcome (SET NX)
and, only when it does, stores the observation the job yields; one on its queue
partition's shard acknowledges the job, frees its listing and, only when it is the
acknowledgement that removed the job from the group's pending entries, appends the
outcome to the outcomes stream (and a dead letter). On one Redis both run as one script,
with the SKU's dirty mark inside: nothing is half done. On a Redis
Cluster they run one after the other, the dirty mark between them; a worker dying in
between leaves the job pending, and its next delivery, finding the outcome recorded,
marks the SKU dirty again when it was accepted and acknowledges it: the writes converge,
each outcome is recorded and streamed once, and an observation is never lost.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import redis.asyncio as aioredis

from crawlers import keys
from crawlers.keys import CrawlQueue
from crawlers.outcome import RETRY_SOONER, Outcome
from pricing_service.store import keys as store_keys
from pricing_service.store.offers import OfferStatus, history_entry
from pricing_service.store.store import DIRTY_MAXLEN, Store

OUTCOMES_STREAM_MAXLEN = 1_000_000

#: Records the outcome once and, with an offer, stores it (latest and history, like
#: ``Store.put_offers``) and, on one Redis, marks the SKU dirty when it was accepted (like
#: ``Store.mark_dirty``): all only when this call records the outcome.
#: KEYS: outcome key [, offers hash, offer history stream [, dirty stream]].
#: ARGV: outcome JSON, TTL [, competitor, offer JSON, history MINID, history TTL (ms),
#:   N, the history entry's N field names and values (``offers.history_entry``)
#:   [, SKU to mark dirty or '', dirty reason, dirty time (epoch ms), dirty maxlen]].
#: Returns 1 when this call recorded the outcome, 0 when an earlier delivery had.
_RECORD_FUNCTION = """
local function record(KEYS, ARGV)
  if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 0 end
  if #KEYS > 1 then
    redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
    local entry_end = 7 + tonumber(ARGV[7])
    redis.call('XADD', KEYS[3], 'MINID', '~', ARGV[5], '*', unpack(ARGV, 8, entry_end))
    redis.call('PEXPIRE', KEYS[3], ARGV[6])
    local dirty = entry_end + 1
    if #KEYS > 3 and ARGV[dirty] ~= '' then
      redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[dirty + 3], '*',
                 'sku', ARGV[dirty], 'reason', ARGV[dirty + 1], 'at', ARGV[dirty + 2])
    end
  end
  return 1
end
"""

#: Acknowledges and removes the job and frees its listing; when this acknowledgement is
#: the one that took the job off the pending entries, streams its outcome (and, for a
#: job given up, its dead letter), and counts the listing's failures in a row: after one
#: worth retrying soon, its next crawl moves to ``now + base * 2^(failures - 1)`` if that
#: is sooner than the one scheduled, at most a period on; any other outcome ends the
#: streak. All once per job, however often it was delivered.
#: KEYS: jobs stream, in-flight hash, outcomes stream, dead-letter stream, due set,
#:   failures hash.
#: ARGV: group, message id, due member, job id, outcome, outcomes maxlen,
#:   deliveries ('' unless dead-lettered), sku, competitor, '1' if worth retrying soon
#:   (else '0'), now (s), base delay (s), the listing's period (s).
#: Returns 1 when this call acknowledged the job.
_ACKNOWLEDGE_FUNCTION = """
local function acknowledge(KEYS, ARGV)
  local acknowledged = redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
  redis.call('XDEL', KEYS[1], ARGV[2])
  if redis.call('HGET', KEYS[2], ARGV[3]) == ARGV[4] then
    redis.call('HDEL', KEYS[2], ARGV[3])
  end
  if acknowledged == 1 then
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'job', ARGV[4], 'outcome', ARGV[5])
    if ARGV[7] ~= '' then
      redis.call('XADD', KEYS[4], '*', 'job', ARGV[4], 'sku', ARGV[8],
                 'competitor', ARGV[9], 'deliveries', ARGV[7])
    end
    if ARGV[10] == '1' then
      local failures = redis.call('HINCRBY', KEYS[6], ARGV[3], 1)
      local delay = math.min(tonumber(ARGV[12]) * 2 ^ math.min(failures - 1, 40),
                             tonumber(ARGV[13]))
      redis.call('ZADD', KEYS[5], 'XX', 'LT', tonumber(ARGV[11]) + delay, ARGV[3])
    else
      redis.call('HDEL', KEYS[6], ARGV[3])
    end
    if ARGV[5] == 'accepted' then
      local before = tonumber(redis.call('HGET', KEYS[7], ARGV[9]) or '0')
      if tonumber(ARGV[11]) > before then
        redis.call('HSET', KEYS[7], ARGV[9], ARGV[11])
      end
    end
  end
  return acknowledged
end
"""
_RECORD = _RECORD_FUNCTION + "return record(KEYS, ARGV)"
_ACKNOWLEDGE = _ACKNOWLEDGE_FUNCTION + "return acknowledge(KEYS, ARGV)"
#: Both in one script, for one Redis: one round trip. (A MULTI/EXEC of the two made
#: redis-py check with SCRIPT EXISTS first, a round trip per job: an EVALSHA failing with
#: NOSCRIPT inside a transaction would not stop the other.)
#: KEYS: the record's, then the acknowledgement's.
#: ARGV: how many of the keys and of the other arguments are the record's, the record's
#:   arguments, the acknowledgement's. Returns the record's reply.
_FINISH = (
    _RECORD_FUNCTION
    + _ACKNOWLEDGE_FUNCTION
    + """
local record_keys, record_args = tonumber(ARGV[1]), tonumber(ARGV[2])
local rk, ra, ak, aa = {}, {}, {}, {}
for i = 1, #KEYS do
  if i <= record_keys then rk[#rk + 1] = KEYS[i] else ak[#ak + 1] = KEYS[i] end
end
for i = 3, #ARGV do
  if i - 2 <= record_args then ra[#ra + 1] = ARGV[i] else aa[#aa + 1] = ARGV[i] end
end
local recorded = record(rk, ra)
acknowledge(ak, aa)
return recorded
"""
)


@dataclass(frozen=True, slots=True)
class OfferWrite:
    """An observation to store with the job's outcome (``Store.put_offers`` for one offer,
    then ``Store.mark_dirty`` when ``dirty``), over the store's own keys."""

    sku: str
    offer: OfferStatus
    retention: timedelta
    dirty: bool
    reason: str = "crawl"

    def keys(self) -> list[str]:
        return [store_keys.offers(self.sku), store_keys.offer_history(self.sku)]

    def args(self) -> list[str | int]:
        retention = self.retention.total_seconds()
        oldest_kept = int((time.time() - retention) * 1000)
        entry = [part for pair in history_entry(self.offer).items() for part in pair]
        return [
            self.offer.observation.competitor,
            self.offer.model_dump_json(),
            f"{oldest_kept}-0",
            int(retention * 1000),
            len(entry),
            *entry,
        ]

    def dirty_args(self) -> list[str | int]:
        now_ms = int(time.time() * 1000)
        return [self.sku if self.dirty else "", self.reason, str(now_ms), DIRTY_MAXLEN]


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    sku: str
    competitor: str
    #: The partition whose stream delivered it (where it is acknowledged).
    queue: CrawlQueue = field(default=CrawlQueue(0), compare=False)

    @property
    def member(self) -> str:
        return keys.due_member(self.sku, self.competitor)

    @classmethod
    def new(cls, sku: str, competitor: str, now: float, queue: CrawlQueue) -> Job:
        # The enqueue time in the id lets the scheduler tell a lost job from a slow one.
        job_id = f"{keys.due_member(sku, competitor)}|{int(now * 1000)}"
        return cls(job_id, sku, competitor, queue)

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes], queue: CrawlQueue) -> Job:
        return cls(
            fields[b"job"].decode(), fields[b"sku"].decode(), fields[b"competitor"].decode(), queue
        )

    def fields(self) -> dict[str, str]:
        return {"job": self.id, "sku": self.sku, "competitor": self.competitor}


class OutcomeRecorder:
    """Finishes jobs; each outcome, with its detail, is kept ``retention_seconds``: a
    delivery of the job within it finds the outcome and is only acknowledged."""

    def __init__(
        self, store: Store, retention_seconds: int, retry_after_failure_seconds: float = 0.0
    ) -> None:
        self._store = store
        self._retention_seconds = retention_seconds
        self._retry_after_failure_seconds = retry_after_failure_seconds
        self._record = store.redis.register_script(_RECORD)
        self._acknowledge = store.redis.register_script(_ACKNOWLEDGE)
        self._finish = store.redis.register_script(_FINISH)

    async def finish(
        self,
        job: Job,
        message_id: str,
        outcome: Outcome,
        detail: dict[str, Any],
        offer: OfferWrite | None = None,
        *,
        deliveries: int | None = None,
        period: timedelta | None = None,
    ) -> bool:
        """Record the job's outcome unless one is recorded, and acknowledge the job; True
        when this call recorded it. With ``offer``, the offer is stored (and the SKU
        marked dirty when the offer says so) only when this call records the outcome.
        ``deliveries`` dead-letters the job. With the listing's ``period``, an outcome
        in ``RETRY_SOONER`` brings its next crawl forward (see ``_ACKNOWLEDGE_FUNCTION``)."""
        body = json.dumps({"outcome": outcome, "at": time.time(), **detail}, default=str)
        record_keys = [keys.outcome(job.id)]
        record_args: list[str | int] = [body, self._retention_seconds]
        if offer is not None:
            record_keys += offer.keys()
            record_args += offer.args()
            if not self._store.cluster:  # on a cluster the queue lives on another shard
                record_keys.append(self._store.dirty_stream(offer.sku))
                record_args += offer.dirty_args()
        queue = job.queue
        acknowledge_keys = [
            queue.jobs,
            queue.in_flight,
            queue.outcomes,
            queue.dead_letters,
            queue.due,
            queue.failures,
            queue.accepted,
        ]
        retry_soon = (
            outcome in RETRY_SOONER and period is not None and self._retry_after_failure_seconds > 0
        )
        acknowledge_args: list[str | int] = [
            keys.JOBS_GROUP,
            message_id,
            job.member,
            job.id,
            outcome.value,
            OUTCOMES_STREAM_MAXLEN,
            "" if deliveries is None else deliveries,
            job.sku,
            job.competitor,
            "1" if retry_soon else "0",
            repr(time.time()),
            repr(self._retry_after_failure_seconds),
            repr(period.total_seconds() if period is not None else 0.0),
        ]
        if not self._store.cluster:
            recorded = await self._finish(
                keys=record_keys + acknowledge_keys,
                args=[len(record_keys), len(record_args), *record_args, *acknowledge_args],
            )
            return bool(recorded)
        recorded = await self._record(keys=record_keys, args=record_args)
        if recorded and offer is not None and offer.dirty:
            await self._store.mark_dirty([offer.sku], offer.reason)
        await self._acknowledge(keys=acknowledge_keys, args=acknowledge_args)
        return bool(recorded)


async def read_outcome(redis: aioredis.Redis, job_id: str) -> dict[str, Any] | None:
    raw = await redis.get(keys.outcome(job_id))
    return None if raw is None else dict(json.loads(raw))
