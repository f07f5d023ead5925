"""Crawl jobs on the Redis Stream, and recording each job's single outcome."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import redis.asyncio as aioredis

from crawlers import keys
from crawlers.outcome import Outcome
from pricing_service.store import keys as store_keys
from pricing_service.store.store import DIRTY_MAXLEN

#: How long a job's outcome is kept (seconds): long enough to spot a duplicate delivery.
OUTCOME_TTL_SECONDS = 7 * 86_400
OUTCOMES_STREAM_MAXLEN = 1_000_000

#: Records the outcome once, acknowledges and removes the job, and frees its listing.
#: With an offer, also stores it (latest and history, like ``Store.put_offers``) and, when
#: it was accepted, marks the SKU dirty (like ``Store.mark_dirty``), all only when this
#: call records the outcome: one script, one round trip, and nothing half done.
#: KEYS: outcome key, outcomes stream, jobs stream, in-flight hash
#:   [, offers hash, offer history stream, dirty stream].
#: ARGV: outcome JSON, TTL, job id, outcome, maxlen, group, message id, due member
#:   [, competitor, offer JSON, history MINID, history TTL (ms), SKU to mark dirty or '',
#:    dirty reason, dirty time (epoch ms), dirty stream maxlen].
#: Returns 1 when this call recorded the outcome, 0 when an earlier delivery had.
_FINISH = """
local recorded = 0
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'job', ARGV[3], 'outcome', ARGV[4])
  if #KEYS > 4 then
    redis.call('HSET', KEYS[5], ARGV[9], ARGV[10])
    redis.call('XADD', KEYS[6], 'MINID', '~', ARGV[11], '*', 'o', ARGV[10])
    redis.call('PEXPIRE', KEYS[6], ARGV[12])
    if ARGV[13] ~= '' then
      redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[16], '*',
                 'sku', ARGV[13], 'reason', ARGV[14], 'at', ARGV[15])
    end
  end
  recorded = 1
end
redis.call('XACK', KEYS[3], ARGV[6], ARGV[7])
redis.call('XDEL', KEYS[3], ARGV[7])
if redis.call('HGET', KEYS[4], ARGV[8]) == ARGV[3] then
  redis.call('HDEL', KEYS[4], ARGV[8])
end
return recorded
"""


@dataclass(frozen=True, slots=True)
class OfferWrite:
    """An observation to store with the job's outcome (``Store.put_offers`` for one offer,
    then ``Store.mark_dirty`` when ``dirty``), over the store's own keys."""

    sku: str
    competitor: str
    body: str  # OfferStatus JSON
    retention: timedelta
    dirty: bool
    dirty_stream: str = store_keys.DIRTY_STREAM  # the SKU's queue partition
    reason: str = "crawl"

    def keys(self) -> list[str]:
        return [
            store_keys.offers(self.sku),
            store_keys.offer_history(self.sku),
            self.dirty_stream,
        ]

    def args(self, now: float) -> list[str | int]:
        retention = self.retention.total_seconds()
        return [
            self.competitor,
            self.body,
            f"{int((now - retention) * 1000)}-0",
            int(retention * 1000),
            self.sku if self.dirty else "",
            self.reason,
            str(int(now * 1000)),
            DIRTY_MAXLEN,
        ]


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    sku: str
    competitor: str

    @property
    def member(self) -> str:
        return keys.due_member(self.sku, self.competitor)

    @classmethod
    def new(cls, sku: str, competitor: str, now: float) -> Job:
        # The enqueue time in the id lets the scheduler tell a lost job from a slow one.
        return cls(f"{keys.due_member(sku, competitor)}|{int(now * 1000)}", sku, competitor)

    @classmethod
    def from_fields(cls, fields: dict[bytes, bytes]) -> Job:
        return cls(fields[b"job"].decode(), fields[b"sku"].decode(), fields[b"competitor"].decode())

    def fields(self) -> dict[str, str]:
        return {"job": self.id, "sku": self.sku, "competitor": self.competitor}


async def ensure_group(redis: aioredis.Redis) -> None:
    try:
        await redis.xgroup_create(keys.JOBS_STREAM, keys.JOBS_GROUP, id="0", mkstream=True)
    except aioredis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def backlog(redis: aioredis.Redis) -> int:
    """Jobs queued and not yet acknowledged: delivered (pending) or not yet (lag)."""
    try:
        groups: Any = await redis.xinfo_groups(keys.JOBS_STREAM)
    except aioredis.ResponseError:  # no stream yet
        return 0
    for group in groups:
        if group.get("name") in (keys.JOBS_GROUP, keys.JOBS_GROUP.encode()):
            lag = group.get("lag")
            if lag is None:  # Redis < 7 does not report it: the stream holds only live jobs
                return int(await redis.xlen(keys.JOBS_STREAM))
            return int(group.get("pending", 0)) + int(lag)
    return int(await redis.xlen(keys.JOBS_STREAM))


class OutcomeRecorder:
    def __init__(self, redis: aioredis.Redis) -> None:
        self._finish = redis.register_script(_FINISH)

    async def finish(
        self,
        job: Job,
        message_id: str,
        outcome: Outcome,
        detail: dict[str, Any],
        offer: OfferWrite | None = None,
    ) -> bool:
        """Record the job's outcome unless one is recorded, ack the message; True when
        this call recorded it. With ``offer``, the offer is stored (and the SKU marked
        dirty) in the same script, only when this call records the outcome."""
        now = time.time()
        body = json.dumps({"outcome": outcome, "at": now, **detail}, default=str)
        script_keys = [keys.outcome(job.id), keys.OUTCOMES_STREAM, keys.JOBS_STREAM, keys.IN_FLIGHT]
        extra: list[str | int] = []
        if offer is not None:
            script_keys += offer.keys()
            extra = offer.args(now)
        recorded = await self._finish(
            keys=script_keys,
            args=[
                body,
                OUTCOME_TTL_SECONDS,
                job.id,
                outcome.value,
                OUTCOMES_STREAM_MAXLEN,
                keys.JOBS_GROUP,
                message_id,
                job.member,
                *extra,
            ],
        )
        return bool(recorded)


async def read_outcome(redis: aioredis.Redis, job_id: str) -> dict[str, Any] | None:
    raw = await redis.get(keys.outcome(job_id))
    return None if raw is None else dict(json.loads(raw))
