"""Multi-key writes against a real Redis: read-modify-writes lose nothing to a
concurrent write, and a write's keys and work-queue entries go together."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from pricing_service.store import keys
from pricing_service.store.store import Store
from tests.repricer.helpers import item

pytestmark = pytest.mark.anyio
UPDATES = 20


async def test_inventory_updates_never_undo_a_concurrent_item_write(store: Store) -> None:
    await store.put_items([item("SKU-1", "10.00")], reason="item")
    # Connected beforehand, so that every update reads before the item write lands.
    await asyncio.gather(*(store.redis.ping() for _ in range(UPDATES + 1)))
    await asyncio.gather(
        *(store.set_inventory("SKU-1", units) for units in range(UPDATES)),
        store.put_items([item("SKU-1", "12.00")], reason="item"),
    )
    final = await store.get_item("SKU-1")
    assert final is not None
    assert final.list_price == Decimal("12.00")
    assert final.inventory in range(UPDATES)


async def test_an_inventory_update_of_an_unknown_item_writes_nothing(store: Store) -> None:
    assert await store.set_inventory("NOPE", 3) is None
    assert await store.redis.exists(keys.item("NOPE"), keys.DIRTY_STREAM) == 0


async def test_an_item_write_queues_its_sku_in_the_same_transaction(store: Store) -> None:
    created = await store.put_items([item("SKU-1"), item("SKU-2")], reason="bulk")
    assert created == [True, True]
    assert await store.put_items([item("SKU-1")], reason="item") == [False]
    queued = await store.redis.xrange(keys.DIRTY_STREAM)
    assert [fields[b"sku"] for _, fields in queued] == [b"SKU-1", b"SKU-2", b"SKU-1"]
    assert await store.count_items() == 2
