"""The schedule cache's view of Redis: stale entries for a bounded time while it has lost
the changes stream, misses refused without trying Redis, and a clean start once back."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any, cast

import pytest
import redis.exceptions

from pricing_service.api.cache import ScheduleCache, StoreUnavailableError
from pricing_service.store.store import Schedule, Store, Window

pytestmark = pytest.mark.anyio
OUTAGE = redis.exceptions.ConnectionError("Redis went away")


def _schedule(sku: str) -> Schedule:
    return Schedule(
        sku=sku,
        segment="",
        stream_id="1-0",
        fingerprint="f",
        ruleset_version="v",
        currency="USD",
        computed_at=0,
        windows=(Window(valid_from=0, valid_until=None, price=Decimal("1.00"), index=0),),
    )


def _synced_cache(stale_serve_seconds: float = 300) -> ScheduleCache:
    # No store: any attempt to read Redis would fail the test with an AttributeError.
    cache = ScheduleCache(
        cast(Store, None),
        cast(Any, None),
        max_items=10,
        stale_serve_seconds=stale_serve_seconds,
    )
    cache.begin_sync()
    return cache


async def test_while_out_of_sync_entries_are_served_stale_and_misses_refused() -> None:
    cache = _synced_cache()
    cache._fill("A", "", _schedule("A"), cache._sequence)
    assert cache.stale_seconds() is None
    cache.lose_sync(OUTAGE)
    assert await cache.get("A", "") == (_schedule("A"), True)
    stale_for = cache.stale_seconds()
    assert stale_for is not None
    assert stale_for >= 0
    with pytest.raises(StoreUnavailableError):
        await cache.get("B", "")
    with pytest.raises(StoreUnavailableError):
        await cache.get_many([("A", ""), ("B", "")])
    # A read that was in flight when the stream was lost would never hear of changes.
    cache._fill("C", "", _schedule("C"), cache._sequence)
    assert cache.peek("C", "") == (False, None)


async def test_entries_are_refused_once_out_of_sync_for_longer_than_allowed() -> None:
    cache = _synced_cache(stale_serve_seconds=0.01)
    cache._fill("A", "", _schedule("A"), cache._sequence)
    cache.lose_sync(OUTAGE)
    time.sleep(0.02)
    with pytest.raises(StoreUnavailableError):
        await cache.get("A", "")


async def test_a_resync_starts_empty_and_keeps_out_reads_begun_before() -> None:
    cache = _synced_cache()
    cache._fill("A", "", _schedule("A"), cache._sequence)
    in_flight = cache._sequence  # a read of B begins
    cache.lose_sync(OUTAGE)
    cache.begin_sync()
    assert len(cache) == 0
    assert cache.stale_seconds() is None
    cache.check_store_reachable()  # misses may try Redis again
    cache._fill("B", "", _schedule("B"), in_flight)
    assert cache.peek("B", "") == (False, None)
    cache._fill("B", "", _schedule("B"), cache._sequence)
    assert cache.peek("B", "") == (True, _schedule("B"))
