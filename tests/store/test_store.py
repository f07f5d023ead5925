"""The Redis store against a real Redis: atomic, idempotent publishing and the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from redis.crc import key_slot

from pricing_service.engine import ItemFacts, PricingInputs, schedule
from pricing_service.store import keys
from pricing_service.store.store import (
    PublishResult,
    Store,
    _needs_announcing,
    fingerprint,
    parse_decision_id,
)
from tests.store.builders import AT, weekend_engine

pytestmark = pytest.mark.anyio


def _inputs(sku: str = "SKU-1") -> PricingInputs:
    return PricingInputs(item=ItemFacts(sku=sku, currency="USD", list_price=Decimal("50.00")))


async def test_items_round_trip_and_mark_dirty(store: Store) -> None:
    item = _inputs().item
    assert await store.put_items([item]) == [True]
    assert await store.put_items([item]) == [False]
    assert await store.get_item("SKU-1") == item
    assert await store.count_items() == 1
    assert await store.redis.xlen(keys.DIRTY_STREAM) == 2
    assert await store.delete_item("SKU-1")
    assert await store.get_item("SKU-1") is None


async def test_publish_writes_the_schedule_and_its_audit_record_together(store: Store) -> None:
    decisions = schedule(weekend_engine(), _inputs(), AT)
    mark = fingerprint("v1", "", "{}", decisions)
    result = await store.publish("SKU-1", "", decisions, fingerprint_value=mark, now=AT)
    assert result.written
    stored = await store.get_schedule("SKU-1", "")
    assert stored is not None
    assert [w.price for w in stored.windows] == [
        Decimal("50.00"),
        Decimal("40.00"),
        Decimal("50.00"),
    ]
    saturday = stored.window_at(int(datetime(2026, 11, 21, 12, tzinfo=UTC).timestamp()))
    assert saturday is not None
    assert saturday.price == Decimal("40.00")
    record = await store.get_audit("SKU-1", result.stream_id)
    assert record is not None
    assert record.decisions[1]["price"] == "40.00"
    assert parse_decision_id(stored.decision_id(saturday)) == ("SKU-1", result.stream_id, 1)


async def test_publishing_the_same_inputs_twice_writes_nothing_the_second_time(
    store: Store,
) -> None:
    decisions = schedule(weekend_engine(), _inputs(), AT)
    mark = fingerprint("v1", "", "{}", decisions)
    first = await store.publish("SKU-1", "", decisions, fingerprint_value=mark, now=AT)
    later = schedule(weekend_engine(), _inputs(), AT + timedelta(minutes=5))
    again = await store.publish(
        "SKU-1", "", later, fingerprint_value=fingerprint("v1", "", "{}", later), now=AT
    )
    assert not again.written
    assert again.stream_id == first.stream_id
    assert await store.redis.xlen(keys.audit("SKU-1")) == 1


async def test_history_is_newest_first_and_paginates(store: Store) -> None:
    engine = weekend_engine()
    for index in range(5):
        inputs = PricingInputs(
            item=ItemFacts(sku="SKU-1", currency="USD", list_price=Decimal(f"{50 + index}.00"))
        )
        decisions = schedule(engine, inputs, AT)
        mark = fingerprint("v1", "", inputs.model_dump_json(), decisions)
        await store.publish("SKU-1", "", decisions, fingerprint_value=mark, now=AT)
    page, cursor = await store.history("SKU-1", limit=3)
    assert [r.decisions[0]["price"] for r in page] == ["54.00", "53.00", "52.00"]
    assert cursor is not None
    rest, end = await store.history("SKU-1", limit=3, cursor=cursor)
    assert [r.decisions[0]["price"] for r in rest] == ["51.00", "50.00"]
    assert end is None
    changes = await store.recent_changes("SKU-1", "")
    assert [c.price for c in changes] == [Decimal(f"{50 + i}.00") for i in range(5)]


def test_keys_of_one_sku_share_a_cluster_hash_slot() -> None:
    sku = "ABC-123"
    names = [
        keys.item(sku),
        keys.offers(sku),
        keys.audit(sku),
        keys.schedule(sku, "tier:member"),
        keys.changes(sku, ""),
        keys.override(sku),
        keys.sales(sku),
        keys.offer_history(sku),
    ]
    assert len({key_slot(name.encode()) for name in names}) == 1


async def test_a_retry_announces_a_recent_schedule_again_but_not_an_old_one(store: Store) -> None:
    """The changes stream is written after the publish script: a retry after a failure in
    between must still tell the API caches."""
    decisions = schedule(weekend_engine(), _inputs(), AT)
    mark = fingerprint("v1", "", "{}", decisions)
    await store.publish("SKU-1", "", decisions, fingerprint_value=mark, now=datetime.now(UTC))
    assert await store.redis.xlen(keys.CHANGES_STREAM) == 1
    retry = await store.publish(
        "SKU-1", "", decisions, fingerprint_value=mark, now=datetime.now(UTC)
    )
    assert not retry.written
    assert await store.redis.xlen(keys.CHANGES_STREAM) == 2


def test_an_old_schedule_found_unchanged_is_not_announced_again() -> None:
    old = PublishResult(written=False, stream_id="1000-0")  # published in 1970
    assert not _needs_announcing(old)
    assert _needs_announcing(PublishResult(written=True, stream_id="1000-0"))
