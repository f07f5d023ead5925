"""The Redis store against a real Redis: atomic, idempotent publishing and the audit trail."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from redis.crc import key_slot

from pricing_service.engine import ItemFacts, PricingInputs, schedule
from pricing_service.engine.decision import Decision
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
    assert len((await store.history("SKU-1"))[0]) == 1


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
        keys.segments(sku),
        keys.override(sku),
        keys.sales(sku),
        keys.sales_hourly(sku),
        keys.sales_events(sku),
        keys.sales_ids(sku, "20261203"),
        keys.offer_history(sku),
        keys.offer_history_blocks(sku),
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


def _priced(sku: str, price: str) -> tuple[PricingInputs, str]:
    inputs = PricingInputs(item=ItemFacts(sku=sku, currency="USD", list_price=Decimal(price)))
    return inputs, inputs.model_dump_json()


async def _publish_price(store: Store, segment: str, price: str, now: datetime = AT) -> str:
    inputs, inputs_json = _priced("SKU-1", price)
    decisions = schedule(weekend_engine(), inputs, AT)
    mark = fingerprint("v1", segment, inputs_json, decisions)
    result = await store.publish("SKU-1", segment, decisions, fingerprint_value=mark, now=now)
    assert result.written
    return result.stream_id


async def test_the_trail_holds_every_segments_current_and_superseded_records(
    store: Store,
) -> None:
    published = [
        (await _publish_price(store, segment, price), segment)
        for segment, price in [("", "50.00"), ("tier:member", "45.00"), ("", "51.00")]
    ]
    records, _ = await store.history("SKU-1")
    # Ids grow: newest first is the reverse of the publishing order.
    assert [(r.stream_id, r.segment) for r in records] == published[::-1]
    # Each record keeps the fingerprint it was published with, current or superseded.
    current = await store.get_schedule("SKU-1", "")
    assert current is not None
    assert records[0].fingerprint == current.fingerprint
    assert all(len(r.fingerprint) == 16 for r in records)
    assert records[0].fingerprint != records[2].fingerprint
    member_id = published[1][0]
    member = await store.get_audit("SKU-1", member_id)  # still current, in its schedule
    assert member is not None
    assert member.decisions[0]["price"] == "45.00"
    superseded = await store.get_audit("SKU-1", published[0][0])  # in the history list
    assert superseded is not None
    assert superseded.decisions[0]["price"] == "50.00"
    assert await store.get_audit("SKU-1", "1-0") is None


async def test_moves_keep_the_last_32_changes(store: Store) -> None:
    for index in range(40):
        await _publish_price(store, "", f"{50 + index}.00")
    changes = await store.recent_changes("SKU-1", "")
    assert [c.price for c in changes] == [Decimal(f"{50 + i}.00") for i in range(8, 40)]


async def test_superseded_records_are_kept_for_the_retention_after_they_ended(
    store: Store,
) -> None:
    await _publish_price(store, "", "50.00", now=AT)
    ended = AT + timedelta(days=1)
    await _publish_price(store, "", "51.00", now=ended)  # 50.00 in force until then
    assert len((await store.history("SKU-1"))[0]) == 2
    await _publish_price(store, "", "52.00", now=ended + store.retention + timedelta(hours=1))
    # 50.00 ended more than the retention ago; 51.00 was in force until just now.
    assert [r.decisions[0]["price"] for r in (await store.history("SKU-1"))[0]] == [
        "52.00",
        "51.00",
    ]


async def test_deleting_an_item_keeps_its_audit_trail(store: Store) -> None:
    await store.put_items([_priced("SKU-1", "50.00")[0].item])
    published = [
        await _publish_price(store, segment, price)
        for segment, price in [("", "50.00"), ("tier:member", "45.00"), ("", "51.00")]
    ]
    assert await store.delete_item("SKU-1")
    assert await store.get_schedule("SKU-1", "") is None
    assert await store.get_schedule("SKU-1", "tier:member") is None
    records, _ = await store.history("SKU-1")
    assert sorted(r.stream_id for r in records) == sorted(published)
    member = await store.get_audit("SKU-1", published[1])
    assert member is not None
    assert member.decisions[0]["price"] == "45.00"


async def test_a_schedule_from_an_earlier_read_does_not_replace_a_later_one(store: Store) -> None:
    def request(price: str) -> tuple[list[Decision], str]:
        inputs, inputs_json = _priced("SKU-1", price)
        decisions = schedule(weekend_engine(), inputs, AT)
        return decisions, fingerprint("v1", "", inputs_json, decisions)

    read_first, read_later = await store.read_clock(), await store.read_clock()
    assert read_later > read_first
    later, later_mark = request("51.00")
    first = await store.publish(
        "SKU-1", "", later, fingerprint_value=later_mark, now=AT, read_at=read_later
    )
    # The repricer that read first publishes last: its older view is not written.
    earlier, earlier_mark = request("50.00")
    stale = await store.publish(
        "SKU-1", "", earlier, fingerprint_value=earlier_mark, now=AT, read_at=read_first
    )
    assert first.written
    assert not stale.written
    assert stale.stream_id == first.stream_id
    stored = await store.get_schedule("SKU-1", "")
    assert stored is not None
    assert stored.windows[0].price == Decimal("51.00")
    # A read after the one in place replaces it.
    newer = await store.publish(
        "SKU-1",
        "",
        earlier,
        fingerprint_value=earlier_mark,
        now=AT,
        read_at=await store.read_clock(),
    )
    assert newer.written


async def test_a_process_with_another_partition_count_than_the_repricers_says_so(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    repricers = Store(store.redis, retention=store.retention, queue_partitions=3)
    assert await store.check_partitions()  # nothing recorded yet
    await repricers.record_partitions()
    assert await repricers.check_partitions()
    with caplog.at_level(logging.ERROR, logger="pricing_service.store.store"):
        assert not await store.check_partitions()
    assert "set the same PRICING_QUEUE_PARTITIONS" in caplog.text
    with caplog.at_level(logging.WARNING, logger="pricing_service.store.store"):
        await store.record_partitions()  # a repricer restarted with 1: it says so, and wins
    assert "had 3 partitions and now have 1" in caplog.text
    assert await store.check_partitions()
