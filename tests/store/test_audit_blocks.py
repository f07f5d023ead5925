"""Superseded audit records packed into blocks, against a real Redis: the trail reads the
same before and after, the retention still trims it, and a sweep never loses a record."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from pricing_service.engine import ItemFacts, PricingInputs, schedule
from pricing_service.store import keys
from pricing_service.store.audit_blocks import BLOCK_RECORDS, is_block, pack_block, unpack_block
from pricing_service.store.store import Store, _plain_entry, fingerprint
from tests.store.builders import AT, weekend_engine

pytestmark = pytest.mark.anyio


async def _publish(store: Store, count: int, *, first: int = 0, sku: str = "SKU-1") -> None:
    engine = weekend_engine()
    for index in range(first, first + count):
        price = Decimal(f"{50 + index}.00")
        inputs = PricingInputs(item=ItemFacts(sku=sku, currency="USD", list_price=price))
        now = AT + timedelta(minutes=index)
        decisions = schedule(engine, inputs, now)
        mark = fingerprint("v1", "", inputs.model_dump_json(), decisions)
        await store.publish(sku, "", decisions, fingerprint_value=mark, now=now)


async def _trail(store: Store, sku: str = "SKU-1") -> list[tuple[str, str, list[object]]]:
    records, _ = await store.history(sku, limit=10_000)
    return [(r.stream_id, r.fingerprint, r.decisions) for r in records]


async def test_a_sweep_packs_the_older_half_of_the_newest_records(store: Store) -> None:
    await _publish(store, 2 * BLOCK_RECORDS + 5)  # the list holds one fewer: one is current
    before = await _trail(store)
    bytes_before = await store.redis.memory_usage(keys.audit("SKU-1"), samples=0)

    assert await store.compact_audit(["SKU-1", "NO-SUCH-SKU"]) == 1

    entries = await store.redis.lrange(keys.audit("SKU-1"), 0, -1)
    assert [is_block(entry) for entry in entries].count(True) == 1
    assert is_block(entries[BLOCK_RECORDS])  # the newest ones stay single
    assert len(entries) == 2 * BLOCK_RECORDS + 4 - BLOCK_RECORDS + 1
    assert await _trail(store) == before
    bytes_after = await store.redis.memory_usage(keys.audit("SKU-1"), samples=0)
    assert bytes_after < bytes_before * 0.75, (bytes_before, bytes_after)
    # A record inside the block is found by its id, and pages cross the block.
    inside = before[BLOCK_RECORDS + 3]
    record = await store.get_audit("SKU-1", inside[0])
    assert record is not None
    assert record.decisions == inside[2]
    page, cursor = await store.history("SKU-1", limit=BLOCK_RECORDS + 2)
    rest, _ = await store.history("SKU-1", limit=10_000, cursor=cursor)
    assert [r.stream_id for r in page + rest] == [stream_id for stream_id, _, _ in before]
    # Nothing more to pack until as many new records have come.
    assert await store.compact_audit(["SKU-1"]) == 0
    await _publish(store, BLOCK_RECORDS, first=2 * BLOCK_RECORDS + 5)
    assert await store.compact_audit(["SKU-1"]) == 1
    assert (await store.compact_all()).audit_blocks == 0


async def test_the_retention_drops_a_block_once_its_newest_record_is_past_it(
    store: Store,
) -> None:
    await _publish(store, 2 * BLOCK_RECORDS + 1)
    assert await store.compact_audit(["SKU-1"]) == 1
    later = AT + store.retention + timedelta(days=1)
    engine = weekend_engine()
    for step in range(6):  # each publish trims up to 16 expired entries
        inputs = PricingInputs(
            item=ItemFacts(sku="SKU-1", currency="USD", list_price=Decimal(f"{10 + step}.00"))
        )
        decisions = schedule(engine, inputs, later)
        mark = fingerprint("v1", "", inputs.model_dump_json(), decisions)
        await store.publish("SKU-1", "", decisions, fingerprint_value=mark, now=later)
    entries = await store.redis.lrange(keys.audit("SKU-1"), 0, -1)
    assert not any(is_block(entry) for entry in entries)
    # Those replaced at "later": the last one of before, and five of the six since.
    assert len(entries) == 6


async def test_a_run_that_moved_is_packed_where_it_is_and_a_trimmed_one_not_at_all(
    store: Store,
) -> None:
    await _publish(store, 2 * BLOCK_RECORDS + 1)
    key = keys.audit("SKU-1")
    run = await store.redis.lrange(key, BLOCK_RECORDS, 2 * BLOCK_RECORDS - 1)
    block = pack_block([_plain_entry(entry) for entry in run])
    arguments = [run[0], run[-1], len(run), block]
    # Published meanwhile: the run moved down the list; it is packed where it now is.
    await _publish(store, 3, first=100)
    before = await _trail(store)
    assert await store._compact_audit(keys=[key], args=arguments) == 1
    assert await _trail(store) == before
    # Packed already (by another sweep): nothing happens.
    assert await store._compact_audit(keys=[key], args=arguments) == 0
    assert await _trail(store) == before


def test_a_block_keeps_its_records_and_the_newest_replacement_time() -> None:
    entries = [b'%d-0 %d fp {}\n{"p":%d}' % (index, 1000 - index, index) for index in range(5)]
    block = pack_block(entries)
    assert is_block(block)
    assert block.split(b" ", 2)[1] == b"1000"  # where the retention trim reads it
    assert unpack_block(block) == entries


async def test_one_repricer_per_interval_runs_the_sweep(store: Store) -> None:
    assert await store.claim_compaction(timedelta(hours=1))
    assert not await store.claim_compaction(timedelta(hours=1))
