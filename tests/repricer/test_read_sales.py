"""The repricer reads of a SKU's sales hash only the days its demand signals use, and
gets the same signals as from the whole hash (a real Redis)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pricing_service.demand.buckets import day_bucket
from pricing_service.repricer.inputs import field_map, read_chunk
from pricing_service.store import keys
from pricing_service.store.store import Store, demand_fields, demand_from_sales

NOW = datetime(2026, 12, 7, 10, 30, tzinfo=UTC)


def _day(back: int) -> str:
    return day_bucket(NOW - timedelta(days=back))


async def _sales_as_read(url: str, sku: str) -> dict[bytes, bytes]:
    store = Store.from_url(url, retention=timedelta(days=35))
    try:
        (row,) = await read_chunk(store, [sku], [""], NOW)
    finally:
        await store.close()
    return field_map(row[3])


@pytest.mark.anyio
async def test_a_selling_sku_s_read_holds_only_the_baseline_s_units(
    store: Store, clean_redis: str
) -> None:
    fields = {f"u:{_day(back)}": 2 for back in range(35)}
    fields |= {f"r:{_day(back)}": 3998 for back in range(35)}
    fields |= {f"i:{_day(3)}": 40, "pruned": _day(0), "first": _day(34)}
    await store.redis.hset(keys.sales("A"), mapping=fields)
    read = await _sales_as_read(clean_redis, "A")
    assert set(read) == set(demand_fields(NOW))
    assert len(read) == 29  # the baseline's units and the first sale's day
    full = await store.redis.hgetall(keys.sales("A"))
    assert demand_from_sales(read, NOW, 40) == demand_from_sales(full, NOW, 40)


@pytest.mark.anyio
async def test_without_a_sale_in_the_baseline_the_whole_hash_is_read(
    store: Store, clean_redis: str
) -> None:
    # Sold 30 days ago only, and a zero inside the baseline: "sold before", not "never".
    await store.redis.hset(keys.sales("OLD"), mapping={f"u:{_day(30)}": 5, f"u:{_day(2)}": 0})
    read = await _sales_as_read(clean_redis, "OLD")
    assert read == await store.redis.hgetall(keys.sales("OLD"))
    demand = demand_from_sales(read, NOW, 10)
    assert demand is not None
    assert demand.velocity_28d == 0
    assert await _sales_as_read(clean_redis, "NEVER") == {}


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    days=st.dictionaries(
        st.integers(0, 40),
        st.tuples(st.integers(-3, 20), st.integers(0, 10_000), st.none() | st.integers(0, 99)),
        max_size=40,
    ),
    inventory=st.none() | st.integers(0, 500),
)
def test_the_signals_from_the_read_are_those_of_the_whole_hash(
    clean_redis: str, days: dict[int, tuple[int, int, int | None]], inventory: int | None
) -> None:
    client = redis.Redis.from_url(clean_redis)
    try:
        client.delete(keys.sales("P"))
        fields: dict[str, int] = {}
        for back, (units, revenue, level) in days.items():
            fields |= {f"u:{_day(back)}": units, f"r:{_day(back)}": revenue}
            if level is not None:
                fields[f"i:{_day(back)}"] = level
        if fields:
            client.hset(keys.sales("P"), mapping=fields)
        full = client.hgetall(keys.sales("P"))
    finally:
        client.close()
    read = asyncio.run(_sales_as_read(clean_redis, "P"))
    assert demand_from_sales(read, NOW, inventory) == demand_from_sales(full, NOW, inventory)
