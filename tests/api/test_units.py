"""Pure parts of the API: the lowest-price timeline, the cache's bookkeeping, key parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import pytest

from pricing_service.api.cache import ScheduleCache
from pricing_service.api.routes.prices import _lowest_in_force
from pricing_service.store.store import AuditRecord, Schedule, Store, Window

pytestmark = pytest.mark.anyio
NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def _record(published: datetime, *windows: tuple[datetime, datetime | None, str]) -> AuditRecord:
    stream_id = f"{int(published.timestamp() * 1000)}-0"
    return AuditRecord(
        sku="A",
        stream_id=stream_id,
        segment="",
        ruleset_version="v",
        computed_at=int(published.timestamp() * 1000),
        decisions=[
            {
                "price": price,
                "currency": "USD",
                "valid_from": start.isoformat(),
                "valid_until": None if end is None else end.isoformat(),
            }
            for start, end, price in windows
        ],
    )


def days_ago(days: int) -> datetime:
    return NOW - timedelta(days=days)


def test_a_record_published_before_the_period_still_counts_inside_it() -> None:
    older = _record(
        days_ago(40), (days_ago(40), days_ago(20), "10.00"), (days_ago(20), None, "12.00")
    )
    newer = _record(days_ago(10), (days_ago(10), None, "15.00"))
    found = _lowest_in_force([newer, older], days_ago(30), NOW)
    assert found is not None
    record, index, start, end = found
    assert (record, index, start, end) == (older, 0, days_ago(30), days_ago(20))


def test_a_window_superseded_before_it_started_never_counts() -> None:
    older = _record(days_ago(5), (days_ago(5), days_ago(1), "20.00"), (days_ago(1), None, "1.00"))
    newer = _record(days_ago(2), (days_ago(2), None, "25.00"))
    found = _lowest_in_force([newer, older], days_ago(30), NOW)
    assert found is not None
    assert found[0].decisions[found[1]]["price"] == "20.00"


def _schedule(sku: str, price: str) -> Schedule:
    return Schedule(
        sku=sku,
        segment="",
        stream_id="1-0",
        fingerprint="f",
        ruleset_version="v",
        currency="USD",
        computed_at=0,
        windows=(Window(valid_from=0, valid_until=None, price=Decimal(price), index=0),),
    )


def _cache(max_items: int = 10) -> ScheduleCache:
    cache = ScheduleCache(
        cast(Store, None), cast(Any, None), max_items=max_items, stale_serve_seconds=300
    )
    cache.begin_sync()  # as the tailer does once it knows where the stream ends
    return cache


async def test_a_read_crossed_by_a_change_is_not_cached() -> None:
    cache = _cache()
    before = cache._sequence
    await cache.apply_changes([("A", "")])  # arrives while the read of A is in flight
    cache._fill("A", "", _schedule("A", "1.00"), before)
    assert cache.peek("A", "") == (False, None)
    cache._fill("B", "", _schedule("B", "1.00"), before)  # B did not change
    assert cache.peek("B", "")[0]


async def test_the_cache_is_bounded_and_deletes_drop_every_segment() -> None:
    cache = _cache(max_items=2)
    for sku in ("A", "B", "C"):
        cache._fill(sku, "", _schedule(sku, "1.00"), cache._sequence)
    assert len(cache) == 2
    assert not cache.peek("A", "")[0]
    cache._fill("C", "channel:app", None, cache._sequence)
    await cache.apply_changes([("C", None)])
    assert not cache.peek("C", "")[0]
    assert not cache.peek("C", "channel:app")[0]
