"""Per-domain politeness shared by the whole fleet, in Redis: a rate and a concurrency.

Rate: each request reserves the next free slot of its domain (a GCRA): the script moves
the domain's theoretical arrival time (TAT) on by one interval and tells the caller how
long to wait for its slot. Slots are handed out by Redis's own clock, so workers on
several machines never exceed the domain's rate together, and nobody polls.

Concurrency: a request holds a lease in the domain's sorted set while it runs. Leases
expire on their own, so a killed worker's leases free themselves.

Retry-After: a 429 or 503 that names a wait moves the domain's next slot past it, for
every worker (:meth:`DomainGate.defer`): the fleet pauses, not only the request told.

One script does both for a request (:class:`DomainGate`): the lease comes first and the
slot is reserved while holding it. Giving a lease back rides along with the worker's
next request to the domain (the same script removes it), or goes on its own within
``RELEASE_DELAY_SECONDS``: a round trip less per page, for a lease held a few
milliseconds longer, which errs on the polite side.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis

from crawlers import keys

logger = logging.getLogger(__name__)

MICROSECONDS = 1_000_000

#: The lease first, then (with it taken) the rate slot, in one round trip.
#: KEYS: the domain's lease set, its TAT key.
#: ARGV: lease id, limit, lease length (ms), interval (µs), longest wait worth reserving (µs),
#: then the ids of leases given back since the last call, removed first.
#: Returns -2 when the domain is at its concurrency limit (no lease taken), -1 when the
#: slot would be too far (no lease taken either), else the wait in µs before the slot.
_ACQUIRE = """
if #ARGV > 5 then redis.call('ZREM', KEYS[1], unpack(ARGV, 6)) end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local now_ms = math.floor(now / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return -2 end
local interval = tonumber(ARGV[4])
local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
if tat < now then tat = now end
local wait = tat - now
if wait > tonumber(ARGV[5]) then return -1 end
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
redis.call('SET', KEYS[2], string.format('%.0f', tat + interval),
           'PX', math.floor((wait + interval) / 1000) + 1000)
return wait
"""
#: Push the domain's next slot to at least ``now + ARGV[1]`` µs (a server's Retry-After).
#: KEYS: the domain's TAT key.
_DEFER = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local later = now + tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if later > tat then
  redis.call('SET', KEYS[1], string.format('%.0f', later), 'PX',
             math.floor((later - now) / 1000) + 1000)
end
return 0
"""
#: Pause between two attempts at a lease on a busy domain.
LEASE_POLL_SECONDS = 0.02
#: A lease given back is removed by then at the latest, if no request came to carry it.
RELEASE_DELAY_SECONDS = 0.005


class RateLimitTooFar(Exception):
    """The domain's queue of reserved slots is longer than the caller will wait."""


class DomainGate:
    """A domain's rate and concurrency for one request: one round trip to take the lease
    and reserve the slot, and one to give the lease back."""

    def __init__(self, redis: aioredis.Redis, *, max_wait_seconds: float = 300.0) -> None:
        self._redis = redis
        self._acquire = redis.register_script(_ACQUIRE)
        self._defer = redis.register_script(_DEFER)
        self._max_wait_us = int(max_wait_seconds * MICROSECONDS)
        self._given_back: dict[str, list[str]] = {}
        self._flush: asyncio.TimerHandle | None = None
        self._flushing: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def hold(
        self, domain: str, limit: int, lease_seconds: float, interval_seconds: float
    ) -> AsyncIterator[None]:
        """Hold one of the domain's ``limit`` slots (it frees itself after
        ``lease_seconds``) and return at the domain's next rate slot, reserved while
        holding it. Raises :class:`RateLimitTooFar` (holding nothing) when that slot is
        further than the longest wait."""
        lease = secrets.token_hex(8)
        key = keys.slots(domain)
        args: list[str | int] = [
            lease,
            limit,
            int(lease_seconds * 1000),
            max(1, int(interval_seconds * MICROSECONDS)),
            self._max_wait_us,
        ]
        while (wait_us := await self._try(key, domain, args)) == -2:
            await asyncio.sleep(LEASE_POLL_SECONDS * (0.5 + random.random()))
        if wait_us < 0:
            raise RateLimitTooFar(domain)
        try:
            if wait_us > 0:
                await asyncio.sleep(wait_us / MICROSECONDS)
            yield
        finally:
            self._give_back(key, lease)

    async def defer(self, domain: str, seconds: float) -> None:
        """No request to ``domain`` from any worker for ``seconds`` (a 429's or 503's
        Retry-After): the wait applies to the whole fleet, not only the request told."""
        await self._defer(keys=[keys.rate(domain)], args=[int(seconds * MICROSECONDS)])

    async def close(self) -> None:
        """Give back, now, the leases still waiting to ride along with a request."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        await self._release_given_back()
        if self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)

    async def _try(self, key: str, domain: str, args: list[str | int]) -> int:
        given_back = self._given_back.pop(key, [])
        try:
            answer = await self._acquire(keys=[key, keys.rate(domain)], args=[*args, *given_back])
        except BaseException:
            self._given_back.setdefault(key, []).extend(given_back)
            raise
        return int(answer)

    def _give_back(self, key: str, lease: str) -> None:
        self._given_back.setdefault(key, []).append(lease)
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(
                RELEASE_DELAY_SECONDS, self._start_release
            )

    def _start_release(self) -> None:
        self._flush = None
        task = asyncio.create_task(self._release_given_back())
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _release_given_back(self) -> None:
        given_back, self._given_back = self._given_back, {}
        if not given_back:
            return
        try:
            for key, leases in given_back.items():
                await self._redis.zrem(key, *leases)
        except Exception:
            # Unreleased leases expire by themselves: only this domain's concurrency
            # is lower until then.
            logger.warning("giving leases back failed; they expire on their own", exc_info=True)
