"""Sales and inventory buckets in a real Redis: hours and days, duplicates, late events,
retention, and the API's event ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest

from pricing_service.demand.buckets import day_bucket, decode_buckets, hour_bucket
from pricing_service.elasticity.dataset import fit_rows
from pricing_service.engine.inputs import ItemFacts
from pricing_service.store import keys
from pricing_service.store.store import SALES_WEEK, Sale, Store, demand_from_sales, sales_week
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


async def test_a_days_returns_are_kept_apart_for_the_fit(store: Store) -> None:
    # Ten sold at 9.99 today; two bought earlier at 12.00 come back today.
    today = [Sale(NOW, 10, PRICE, "s1"), Sale(NOW, -2, Decimal("12.00"), "r1")]
    await store.add_sales("A", "USD", today)
    raw = (await store.sales_buckets(["A"]))[0]
    day = day_bucket(NOW)
    assert await _days(store, "A") == {day: (8, 7590)}  # net, as the signals read it
    assert (raw[f"n:{day}".encode()], raw[f"x:{day}".encode()]) == (b"2", b"2400")
    # The fit sees today's sales alone, at the price paid today.
    rows = fit_rows([raw], [NOW.date()], ["tv"], ["USD"])
    assert rows.units.tolist() == [10.0]
    assert rows.price.tolist() == [999.0]


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
    assert demand.velocity_7d == pytest.approx(20)  # its first day on sale: 20 a day
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


async def test_event_ids_are_kept_per_week_until_the_retention_has_passed(store: Store) -> None:
    weeks_ago = NOW - timedelta(days=9)
    events = [Sale(NOW, 1, PRICE, "now"), Sale(weeks_ago, 1, PRICE, "before")]
    assert await store.add_sales("A", "USD", events) == []
    # Resent in a later batch, in the other order, with a new one: only the new one counts.
    resent = [*reversed(events), Sale(weeks_ago, 2, PRICE, "new")]
    assert await store.add_sales("A", "USD", resent) == [0, 1]
    assert sum(units for units, _ in (await _days(store, "A")).values()) == 4
    for moment, ids in ((NOW, 1), (weeks_ago, 2)):
        week = sales_week(moment)
        key = keys.sales_ids("A", day_bucket(week))
        assert await store.redis.hlen(key) == ids
        expires_at = week + SALES_WEEK + store.retention
        assert abs(await store.redis.expiretime(key) - expires_at.timestamp()) <= 1


async def test_an_id_counted_by_an_earlier_version_is_not_counted_again(store: Store) -> None:
    # Earlier versions kept the ids in one sorted set, scored by the event's epoch second.
    legacy = keys.sales_events("A")
    await store.redis.zadd(legacy, {"counted-before": NOW.timestamp()})
    await store.redis.expire(legacy, 3600)
    events = [Sale(NOW, 1, PRICE, "counted-before"), Sale(NOW, 1, PRICE, "new")]
    assert await store.add_sales("A", "USD", events) == [0]
    assert await _days(store, "A") == {day_bucket(NOW): (1, 999)}
    assert await store.redis.ttl(legacy) <= 3600  # not renewed: it ages out


async def test_a_months_event_ids_take_a_fraction_of_the_sorted_set(store: Store) -> None:
    events = [
        Sale(NOW - timedelta(days=day, minutes=minute), 1, PRICE, f"order-{day}-{minute}-line-1")
        for day in range(34, -1, -1)
        for minute in range(0, 24 * 60, 60)
    ]
    assert await store.add_sales("A", "USD", events) == []
    weeks = {day_bucket(sales_week(sale.at)) for sale in events}
    by_week = [await store.redis.memory_usage(keys.sales_ids("A", w), samples=0) for w in weeks]
    await store.redis.zadd("earlier", {sale.event_id: sale.at.timestamp() for sale in events})
    earlier = await store.redis.memory_usage("earlier", samples=0)
    assert sum(by_week) * 4 < earlier, (sum(by_week), earlier)
