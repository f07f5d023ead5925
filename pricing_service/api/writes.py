"""The API's writes that touch several keys, each as one MULTI/EXEC transaction.

Redis can go away between any two commands. A write that spans keys (an item and the
SKU index, the sales counters of several SKUs, an offer and its history) goes out with
the work-queue entries that get its SKUs repriced in one transaction: either all of it
is applied or none, so a call that failed with a 503 left nothing half-done and can be
retried as a whole. (Non-idempotent writes such as sales counters are only at risk of
being applied twice if the connection breaks after Redis ran the transaction.)
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from redis.asyncio.client import Pipeline

from pricing_service.engine.inputs import ItemFacts
from pricing_service.money import to_minor
from pricing_service.store import keys
from pricing_service.store.store import OfferStatus, Override, Store

#: As ``Store.mark_dirty`` and ``Store.publish`` trim the two streams (approximately).
DIRTY_STREAM_MAXLEN = 2_000_000
CHANGES_STREAM_MAXLEN = 100_000

#: (instant, quantity, unit price) of each sale, with the item's currency, per SKU.
SalesBySku = Mapping[str, tuple[str, Sequence[tuple[datetime, int, Decimal]]]]


def _queue_for_repricing(pipe: Pipeline, skus: Sequence[str], reason: str) -> None:
    """The entries of ``Store.mark_dirty``, added to ``pipe``."""
    now = str(int(time.time() * 1000))
    for sku in skus:
        pipe.xadd(
            keys.DIRTY_STREAM,
            {"sku": sku, "reason": reason, "at": now},
            maxlen=DIRTY_STREAM_MAXLEN,
            approximate=True,
        )


def _item_json(item: ItemFacts) -> str:
    return item.model_dump_json(exclude_defaults=True)  # as Store.put_items stores it


async def put_items(store: Store, items: Sequence[ItemFacts], *, reason: str) -> list[bool]:
    """Insert or replace items and queue them; True for each that was new."""
    if not items:
        return []
    async with store.redis.pipeline(transaction=True) as pipe:
        for item in items:
            pipe.set(keys.item(item.sku), _item_json(item))
            pipe.sadd(keys.SKU_INDEX, item.sku)
        _queue_for_repricing(pipe, [item.sku for item in items], reason)
        results = await pipe.execute()
    return [bool(added) for added in results[1 : 2 * len(items) : 2]]


async def set_inventory(store: Store, sku: str, inventory: int) -> ItemFacts | None:
    """Set an item's inventory, or None if there is no such item.

    A read-modify-write under WATCH: when the item is written between the read and the
    write (a PUT of the whole item), the transaction is refused and run again on the new
    item, so neither write is lost."""
    item_key = keys.item(sku)

    async def update(pipe: Pipeline) -> ItemFacts | None:
        raw = await pipe.get(item_key)
        if raw is None:
            return None
        updated = ItemFacts.model_validate_json(raw).model_copy(update={"inventory": inventory})
        pipe.multi()  # type: ignore[no-untyped-call]  # untyped in redis-py
        pipe.set(item_key, _item_json(updated))
        _queue_for_repricing(pipe, [sku], "inventory")
        return updated

    result: ItemFacts | None = await store.redis.transaction(
        update, item_key, value_from_callable=True
    )
    return result


async def delete_item(store: Store, sku: str) -> bool:
    """Remove the item, its live prices and inputs, and tell the API caches; False if
    there was no such item. Its audit trail stays until retention."""
    schedules = [key async for key in store.redis.scan_iter(match=keys.schedule(sku, "*"))]
    async with store.redis.pipeline(transaction=True) as pipe:
        pipe.delete(keys.item(sku))
        pipe.srem(keys.SKU_INDEX, sku)
        pipe.delete(keys.offers(sku), keys.override(sku), *schedules)
        pipe.xadd(keys.CHANGES_STREAM, {"sku": sku}, maxlen=CHANGES_STREAM_MAXLEN, approximate=True)
        results = await pipe.execute()
    return bool(results[0])


async def record_sales(store: Store, sales: SalesBySku) -> None:
    """Add sales to the SKUs' daily buckets and queue the SKUs, all or nothing: the
    counters are increments, so a partly applied batch could not be retried."""
    if not sales:
        return
    ttl = int(store.retention.total_seconds())
    async with store.redis.pipeline(transaction=True) as pipe:
        for sku, (currency, events) in sales.items():
            for moment, quantity, unit_price in events:
                day = moment.astimezone(UTC).strftime("%Y%m%d")  # as Store.demand reads it
                pipe.hincrby(keys.sales(sku), f"u:{day}", quantity)
                pipe.hincrby(keys.sales(sku), f"r:{day}", quantity * to_minor(unit_price, currency))
            pipe.expire(keys.sales(sku), ttl)
        _queue_for_repricing(pipe, list(sales), "sales")
        await pipe.execute()


async def record_offers(
    store: Store, offers: Mapping[str, Sequence[OfferStatus]], changed: Sequence[str]
) -> None:
    """Store the latest offer of each competitor and its history, and queue the
    ``changed`` SKUs (those with an accepted offer), all or nothing."""
    if not offers:
        return
    retention_ms = int(store.retention.total_seconds() * 1000)
    minid = f"{int(time.time() * 1000) - retention_ms}-0"
    async with store.redis.pipeline(transaction=True) as pipe:
        for sku, statuses in offers.items():
            for offer in statuses:
                body = offer.model_dump_json()
                pipe.hset(keys.offers(sku), offer.observation.competitor, body)
                pipe.xadd(keys.offer_history(sku), {"o": body}, minid=minid, approximate=True)
            pipe.pexpire(keys.offer_history(sku), retention_ms)
        _queue_for_repricing(pipe, changed, "observation")
        await pipe.execute()


async def set_override(store: Store, sku: str, override: Override) -> None:
    """Store a manual price and queue the SKU to apply it."""
    async with store.redis.pipeline(transaction=True) as pipe:
        pipe.set(keys.override(sku), override.model_dump_json())
        _queue_for_repricing(pipe, [sku], "override")
        await pipe.execute()


async def clear_override(store: Store, sku: str) -> bool:
    """Remove a manual price and queue the SKU; False (and nothing queued) if there was
    none."""
    override_key = keys.override(sku)

    async def remove(pipe: Pipeline) -> bool:
        if not await pipe.exists(override_key):
            return False
        pipe.multi()  # type: ignore[no-untyped-call]  # untyped in redis-py
        pipe.delete(override_key)
        _queue_for_repricing(pipe, [sku], "override")
        return True

    removed: bool = await store.redis.transaction(remove, override_key, value_from_callable=True)
    return removed
