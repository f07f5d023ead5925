"""Sales and inventory buckets in a real Redis: hours and days, duplicates, late events,
retention, and the API's event ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from pricing_service.demand.buckets import day_bucket, decode_buckets, hour_bucket
from pricing_service.engine.inputs import ItemFacts
from pricing_service.store import keys
from pricing_service.store.store import Sale, Store, demand_from_sales
from tests.api.conftest import WRITE_KEY, auth

pytestmark = pytest.mark.anyio

NOW = datetime.now(UTC).replace(microsecond=0)
PRICE = Decimal("9.99")


async def _days(store: Store, sku: str) -> dict[str, tuple[int, int]]:
    raw = (await store.sales_buckets([sku]))[0]
    return {day: (b.units, b.revenue_minor) for day, b in decode_buckets(raw).items() if b.units}


async def test_a_duplicate_id_is_counted_once_even_in_a_later_batch(store: Store) -> None:
    first = [Sale(NOW, 2, PRICE, "e1"), Sale(NOW, 1, PRICE, "e2"), Sale(NOW, 5, PRICE, "e1")]
    assert await store.add_sales("A", "USD", first) == [2]
    assert await store.add_sales("A", "USD", [Sale(NOW, 2, PRICE, "e1")]) == [0]
    assert await _days(store, "A") == {day_bucket(NOW): (3, 2997)}
    hours = decode_buckets(await store.hourly_buckets("A"))
    assert hours[hour_bucket(NOW)].units == 3
    # The same id for another SKU is another event.
    assert await store.add_sales("B", "USD", [Sale(NOW, 1, PRICE, "e1")]) == []


async def test_late_events_land_in_their_own_hour_and_day(store: Store) -> None:
    late = NOW - timedelta(days=3, hours=5)
    very_late = NOW - timedelta(days=20)
    await store.add_sales("A", "USD", [Sale(NOW, 1, PRICE, "now")])
    await store.add_sales(
        "A", "USD", [Sale(late, 4, PRICE, "late"), Sale(very_late, 2, PRICE, "very-late")]
    )
    days = await _days(store, "A")
    assert days[day_bucket(late)] == (4, 3996)
    assert days[day_bucket(very_late)] == (2, 1998)
    hours = decode_buckets(await store.hourly_buckets("A"))
    assert hours[hour_bucket(late)].units == 4
    # Hour buckets are kept a week: a 20-day-old event only counts in its day.
    assert hour_bucket(very_late) not in hours


async def test_events_past_the_retention_are_not_counted_and_old_buckets_pruned(
    store: Store,
) -> None:
    old = NOW - store.retention - timedelta(days=2)
    await store.redis.hset(keys.sales("A"), mapping={f"u:{day_bucket(old)}": 9})
    assert await store.add_sales("A", "USD", [Sale(old, 1, PRICE, "x"), (NOW, 1, PRICE)]) == [0]
    assert await _days(store, "A") == {day_bucket(NOW): (1, 999)}
    for key in (keys.sales("A"), keys.sales_hourly("A")):
        assert await store.redis.ttl(key) > 0


async def test_inventory_updates_are_bucketed_and_feed_sell_through(store: Store) -> None:
    await store.put_items([ItemFacts(sku="A", currency="USD", list_price=Decimal("10.00"))])
    await store.set_inventory("A", 30)
    await store.set_inventory("A", 20)
    raw = (await store.sales_buckets(["A"]))[0]
    assert decode_buckets(raw)[day_bucket(datetime.now(UTC))].inventory == 20
    await store.add_sales("A", "USD", [Sale(NOW, 20, PRICE, "s")])
    demand = demand_from_sales((await store.sales_buckets(["A"]))[0], NOW, inventory=20)
    assert demand is not None
    assert demand.sell_through == pytest.approx(0.5)
    assert demand.velocity_7d == pytest.approx(20 / 7)
    assert demand.days_of_supply is not None


def test_the_sales_api_takes_event_ids_and_reports_duplicates(api: httpx.Client) -> None:
    writer = auth(WRITE_KEY)
    body = {"currency": "USD", "list_price": "10.00"}
    assert api.put("/v1/items/SKU-1", json=body, headers=writer).status_code == 201
    now = datetime.now(UTC)
    events = [
        {"id": "o-1", "sku": "SKU-1", "quantity": 2, "unit_price": "9.99", "ts": now.isoformat()},
        {"id": "o-1", "sku": "SKU-1", "quantity": 2, "unit_price": "9.99", "ts": now.isoformat()},
        {"sku": "SKU-1", "quantity": 1, "unit_price": "9.99", "ts": now.isoformat()},
        {
            "id": "o-old",
            "sku": "SKU-1",
            "quantity": 1,
            "unit_price": "9.99",
            "ts": (now - timedelta(days=400)).isoformat(),
        },
    ]
    first = api.post("/v1/sales", json=events, headers=writer).json()
    assert first["accepted"] == 2
    assert first["duplicates"] == [1]
    assert [r["index"] for r in first["rejected"]] == [3]
    again = api.post("/v1/sales", json=events[:1], headers=writer).json()
    assert again == {"accepted": 0, "duplicates": [0], "rejected": []}
