"""Per-domain politeness shared by the whole fleet, in Redis: a rate and a concurrency.

Rate: each request reserves the next free slot of its domain (a GCRA): the script moves
the domain's theoretical arrival time (TAT) on by one interval and tells the caller how
long to wait for its slot. Slots are handed out by Redis's own clock, so workers on
several machines never exceed the domain's rate together, and nobody polls.

Concurrency: a request holds a lease in the domain's sorted set while it runs. Leases
expire on their own, so a killed worker's leases free themselves.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis

from crawlers import keys

#: KEYS: the domain's TAT key. ARGV: interval (µs), longest wait worth reserving (µs).
#: Returns the wait in µs before the reserved slot, or -1 when it would exceed the limit.
_RESERVE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - now
if wait > tonumber(ARGV[2]) then return -1 end
redis.call('SET', KEYS[1], string.format('%.0f', tat + interval),
           'PX', math.floor((wait + interval) / 1000) + 1000)
return wait
"""
MICROSECONDS = 1_000_000

#: KEYS: the domain's lease set. ARGV: lease id, limit, lease length (ms).
#: Returns 1 with the lease taken, 0 when the domain is at its limit.
_LEASE = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""
#: Pause between two attempts at a lease on a busy domain.
LEASE_POLL_SECONDS = 0.02


class RateLimitTooFar(Exception):
    """The domain's queue of reserved slots is longer than the caller will wait."""


class DomainPacer:
    def __init__(self, redis: aioredis.Redis, *, max_wait_seconds: float = 300.0) -> None:
        self._reserve = redis.register_script(_RESERVE)
        self._max_wait_us = int(max_wait_seconds * MICROSECONDS)

    async def reserve(self, domain: str, interval_seconds: float) -> float:
        """Reserve the domain's next slot; the seconds to wait until it comes."""
        interval_us = max(1, int(interval_seconds * MICROSECONDS))
        wait_us = int(
            await self._reserve(keys=[keys.rate(domain)], args=[interval_us, self._max_wait_us])
        )
        if wait_us < 0:
            raise RateLimitTooFar(domain)
        return wait_us / MICROSECONDS

    async def wait_turn(self, domain: str, interval_seconds: float) -> None:
        """Return when this process may send its next request to ``domain``."""
        wait = await self.reserve(domain, interval_seconds)
        if wait > 0:
            await asyncio.sleep(wait)


class DomainSlots:
    """At most ``limit`` requests in flight per domain, across the fleet."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._redis = redis
        self._lease = redis.register_script(_LEASE)

    @asynccontextmanager
    async def hold(self, domain: str, limit: int, lease_seconds: float) -> AsyncIterator[None]:
        """Hold one of the domain's ``limit`` slots; it frees itself after ``lease_seconds``."""
        lease = uuid.uuid4().hex
        key = keys.slots(domain)
        lease_ms = int(lease_seconds * 1000)
        while not await self._lease(keys=[key], args=[lease, limit, lease_ms]):
            await asyncio.sleep(LEASE_POLL_SECONDS * (0.5 + random.random()))
        try:
            yield
        finally:
            await self._redis.zrem(key, lease)
