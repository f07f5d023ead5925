"""The store's multi-key writes against a real Redis: each one goes out with its
work-queue entries in one transaction, and only queues what changed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from pricing_service.engine.inputs import CompetitorObservation, ItemFacts
from pricing_service.store import keys
from pricing_service.store.store import OfferStatus, Override, Store, demand_from_sales

pytestmark = pytest.mark.anyio
NOW = datetime.now(UTC)


async def _queued(store: Store) -> list[tuple[str, str]]:
    entries = await store.redis.xrange(keys.DIRTY_STREAM)
    return [(fields[b"sku"].decode(), fields[b"reason"].decode()) for _, fields in entries]


def _offer(status: str = "accepted") -> OfferStatus:
    observation = CompetitorObservation(
        competitor="rival", price=Decimal("9.00"), currency="USD", observed_at=NOW
    )
    reason = None if status == "accepted" else "outlier"
    return OfferStatus(observation=observation, status=status, reason=reason, received_at=NOW)


async def test_offers_queue_only_skus_with_an_accepted_offer_and_only_with_a_reason(
    store: Store,
) -> None:
    await store.put_offers("A", [_offer()])
    assert await _queued(store) == []
    await store.record_offers({"A": [_offer()], "B": [_offer("quarantined")]}, reason="observation")
    assert await _queued(store) == [("A", "observation")]
    assert [o.status for o in await store.get_offers("B")] == ["quarantined"]
    assert await store.redis.xlen(keys.offer_history("A")) == 2


async def test_sales_of_several_skus_are_counted_and_queued_together(store: Store) -> None:
    await store.add_sales("A", "USD", [(NOW, 2, Decimal("5.00"))])
    assert await _queued(store) == []
    await store.record_sales(
        {"A": ("USD", [(NOW, 1, Decimal("5.00"))]), "B": ("JPY", [(NOW, 3, Decimal(100))])},
        reason="sales",
    )
    assert await _queued(store) == [("A", "sales"), ("B", "sales")]
    demand = demand_from_sales((await store.sales_buckets(["A"]))[0], NOW, inventory=None)
    assert demand is not None
    assert demand.velocity_7d == pytest.approx(3)  # all on its first day on sale
    assert await store.redis.ttl(keys.sales("B")) > 0


async def test_overrides_queue_their_sku_and_clearing_none_queues_nothing(store: Store) -> None:
    override = Override(price=Decimal("8.00"), until=NOW + timedelta(hours=1), reason="r")
    await store.set_override("A", override)
    assert await store.get_override("A") == override
    assert await store.clear_override("A")
    assert not await store.clear_override("A")
    assert await _queued(store) == [("A", "override"), ("A", "override")]


async def test_inventory_is_set_on_the_stored_item_and_queued(store: Store) -> None:
    await store.put_items([ItemFacts(sku="A", currency="USD", list_price=Decimal("10.00"))])
    updated = await store.set_inventory("A", 7)
    assert updated is not None
    assert updated.inventory == 7
    assert await store.get_item("A") == updated
    assert await _queued(store) == [("A", "item"), ("A", "inventory")]


async def test_an_item_written_whole_records_its_inventory_like_an_update(store: Store) -> None:
    items = [
        ItemFacts(sku="A", currency="USD", inventory=12),
        ItemFacts(sku="B", currency="USD"),
        ItemFacts(sku="C", currency="USD", inventory=0),
    ]
    assert await store.put_items(items) == [True, True, True]
    assert await store.put_items(items[:1]) == [False]

    def levels(buckets: dict[bytes, bytes]) -> list[bytes]:
        return [value for field, value in buckets.items() if field.startswith(b"i:")]

    daily = [levels(raw) for raw in await store.sales_buckets(["A", "B", "C"])]
    assert daily == [[b"12"], [], [b"0"]]
    assert levels(await store.hourly_buckets("A")) == [b"12"]


async def test_deleting_an_item_removes_its_inputs_and_tells_the_api_caches(
    store: Store,
) -> None:
    await store.put_items([ItemFacts(sku="A", currency="USD")])
    await store.put_offers("A", [_offer()])
    assert await store.delete_item("A")
    assert await store.count_items() == 0
    assert await store.redis.exists(keys.item("A"), keys.offers("A")) == 0
    announced = await store.redis.xrange(keys.CHANGES_STREAM)
    assert [fields[b"sku"] for _, fields in announced] == [b"A"]
    assert not await store.delete_item("A")
