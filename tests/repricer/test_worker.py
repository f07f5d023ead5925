"""The repricer worker against a real Redis: queue, idempotency, takeover, freeze,
boundaries and rule hot reload."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from redis.exceptions import RedisError

from pricing_service.engine.inputs import CompetitorObservation
from pricing_service.repricer.pricer import Pricer
from pricing_service.rules.diagnostics import RulesetError
from pricing_service.store import keys
from pricing_service.store.audit_blocks import BLOCK_RECORDS, is_block
from pricing_service.store.embedded import EmbeddedRedis
from pricing_service.store.offers import HISTORY_BLOCK_MIN, HISTORY_STREAM_KEPT, OfferStatus
from pricing_service.store.store import Store
from tests.repricer.helpers import WEEKEND_RULES, compile_rules, item, worker, write_rules

pytestmark = pytest.mark.anyio
FRIDAY_NOON = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)  # 12:00 in New York


async def _pending(store: Store) -> int:
    summary = await store.redis.xpending(keys.DIRTY_STREAM, keys.DIRTY_GROUP)
    return int(summary["pending"])


async def test_the_running_worker_publishes_a_dirty_sku(store: Store, tmp_path: Path) -> None:
    repricer = worker(store, write_rules(tmp_path / "rules"))
    await repricer.load_rules()
    stop = asyncio.Event()
    running = asyncio.create_task(repricer.run(stop))
    try:
        await store.put_items([item("SKU-1")])
        for _ in range(200):
            app = await store.get_schedule("SKU-1", "channel:app")
            if app is not None and await store.get_schedule("SKU-1", "") is not None:
                break
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(running, 5)
    default = await store.get_schedule("SKU-1", "")
    assert default is not None
    assert app is not None
    assert default.windows[0].price == Decimal("50.00")
    assert app.windows[0].price == Decimal("47.50")
    assert await _pending(store) == 0


async def test_processing_the_same_sku_twice_writes_one_audit_record(
    store: Store, tmp_path: Path
) -> None:
    repricer = worker(store, write_rules(tmp_path / "rules"))
    await repricer.load_rules()
    await repricer.ensure_group()
    await store.put_items([item("SKU-1")])
    assert await repricer.consume_once() > 0
    await store.mark_dirty(["SKU-1"], "item")
    assert await repricer.consume_once() == 1
    # One record per segment (default and app), written once each.
    assert len((await store.history("SKU-1"))[0]) == 2


async def test_a_second_repricer_takes_over_a_dead_ones_entries(
    store: Store, tmp_path: Path
) -> None:
    rules = write_rules(tmp_path / "rules")
    dead = worker(store, rules, consumer="dead")
    await dead.load_rules()
    await dead.ensure_group()
    await store.put_items([item("SKU-1"), item("SKU-2")])
    await dead.consume_once()  # the 'rules' entries queued by the first load
    await store.mark_dirty(["SKU-1", "SKU-2"], "item")
    taken = await dead.queue.read_new(dead.batch_size, dead.block_ms)  # read, then it dies
    assert sum(len(entries) for _, entries in taken) == 2
    assert await _pending(store) == 2

    alive = worker(store, rules, consumer="alive", claim_idle_seconds=0.001)
    await alive.load_rules()
    await asyncio.sleep(0.01)
    assert await alive.consume_once() == 2
    assert await _pending(store) == 0
    assert await store.get_schedule("SKU-2", "") is not None


async def test_a_partitioned_queue_spreads_skus_and_every_one_gets_repriced(
    store: Store, tmp_path: Path
) -> None:
    partitioned = Store(store.redis, retention=store.retention, queue_partitions=4)
    rules = write_rules(tmp_path / "rules")
    first = worker(partitioned, rules, consumer="first", batch_size=5)
    second = worker(partitioned, rules, consumer="second", batch_size=5)
    for repricer in (first, second):
        await repricer.load_rules()
        await repricer.ensure_group()
    skus = [f"SKU-{n}" for n in range(24)]
    await partitioned.put_items([item(sku) for sku in skus])
    lengths = [await store.redis.xlen(stream) for stream in partitioned.dirty_streams]
    assert sum(lengths) == len(skus)
    assert sum(length > 0 for length in lengths) >= 3  # spread, not all in one
    for stream in partitioned.dirty_streams:  # each SKU in its own partition only
        entries = await store.redis.xrange(stream)
        assert {partitioned.dirty_stream(f[b"sku"].decode()) for _, f in entries} <= {stream}
    assert await partitioned.dirty_backlog() == len(skus)

    done = [0, 0]
    for _ in range(40):
        done[0] += await first.consume_once()
        done[1] += await second.consume_once()
        if await partitioned.dirty_backlog() == 0:
            break
    assert sum(done) == len(skus)
    assert all(done)  # both repricers took part
    for sku in skus:
        assert await partitioned.get_schedule(sku, "") is not None


async def test_a_freeze_stops_publishing_until_it_is_lifted(store: Store, tmp_path: Path) -> None:
    repricer = worker(store, write_rules(tmp_path / "rules"), claim_idle_seconds=0.001)
    await repricer.load_rules()
    await repricer.ensure_group()
    await store.set_frozen(True, reason="incident")
    await store.put_items([item("SKU-1")])
    assert await repricer.consume_once() == 0
    await asyncio.sleep(0.01)
    assert await repricer.consume_once() == 0
    assert await store.get_schedule("SKU-1", "") is None
    assert await _pending(store) > 0

    await store.set_frozen(False)
    await asyncio.sleep(0.01)
    while await repricer.consume_once():
        pass
    assert await store.get_schedule("SKU-1", "") is not None
    assert await _pending(store) == 0


async def test_boundaries_queue_skus_ahead_of_their_next_window(
    store: Store, tmp_path: Path
) -> None:
    rules = write_rules(tmp_path / "rules", WEEKEND_RULES)
    await store.put_items([item("SKU-1")])
    pricer = Pricer(store, boundary_lead_seconds=60)
    await pricer.price(compile_rules(rules), ["SKU-1"], FRIDAY_NOON)
    saturday = datetime(2026, 11, 21, 5, 0, tzinfo=UTC)  # midnight in New York
    due = await store.redis.zscore(keys.BOUNDARIES, keys.boundary_member("SKU-1", ""))
    assert due == saturday.timestamp() - 60

    repricer = worker(store, rules)
    await store.redis.delete(keys.DIRTY_STREAM)
    assert await repricer.queue_due_boundaries(FRIDAY_NOON) == 0
    assert await repricer.queue_due_boundaries(saturday - timedelta(seconds=60)) == 1
    entries: Any = await store.redis.xrange(keys.DIRTY_STREAM)
    assert [(e[b"sku"], e[b"reason"]) for _, e in entries] == [(b"SKU-1", b"boundary")]
    assert await store.redis.zcard(keys.BOUNDARIES) == 0

    # Repriced inside the lead time, the schedule already holds Saturday's window: the
    # next boundary is Monday's, not Saturday's again.
    await pricer.price(compile_rules(rules), ["SKU-1"], saturday - timedelta(seconds=30))
    monday = datetime(2026, 11, 23, 5, 0, tzinfo=UTC)
    due = await store.redis.zscore(keys.BOUNDARIES, keys.boundary_member("SKU-1", ""))
    assert due == monday.timestamp() - 60


async def test_rule_changes_are_hot_reloaded_and_invalid_ones_rejected(
    store: Store, tmp_path: Path
) -> None:
    rules = write_rules(tmp_path / "rules")
    repricer = worker(store, rules)
    await repricer.load_rules()
    first = repricer.compiled.version
    assert (await store.ruleset_status())["version"] == first

    await store.put_items([item("SKU-1")])
    await store.redis.delete(keys.DIRTY_STREAM)
    write_rules(rules, WEEKEND_RULES)
    assert await repricer.check_rules() == []
    second = repricer.compiled.version
    assert second != first
    status = await store.ruleset_status()
    assert (status["version"], status["last_error"]) == (second, "")
    entries: Any = await store.redis.xrange(keys.DIRTY_STREAM)
    assert [e[b"reason"] for _, e in entries] == [b"rules"]

    (rules / "rules.yaml").write_text("timezone: Mars/Olympus\n")
    rejected = await repricer.check_rules()
    assert rejected
    assert repricer.compiled.version == second
    status = await store.ruleset_status()
    assert status["version"] == second
    assert "rules.yaml" in status["last_error"]
    # An unchanged invalid folder is not reported again.
    assert await repricer.check_rules() == []


async def test_a_repricer_does_not_start_on_invalid_rules(store: Store, tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules", "default: {}\n")
    with pytest.raises(RulesetError):
        await worker(store, rules).load_rules()
    assert (await store.ruleset_status())["last_error"]


async def test_the_running_worker_packs_audit_records_and_old_offer_history(
    store: Store, tmp_path: Path
) -> None:
    repricer = worker(store, write_rules(tmp_path / "rules"), compaction_seconds=3600)
    await repricer.load_rules()
    observed = [
        OfferStatus(
            observation=CompetitorObservation(
                competitor="rival", price=Decimal("45.00"), currency="USD", observed_at=FRIDAY_NOON
            ),
            received_at=FRIDAY_NOON,
        )
    ] * (HISTORY_STREAM_KEPT + HISTORY_BLOCK_MIN)
    await store.record_offers({"SKU-1": observed})
    for index in range(2 * BLOCK_RECORDS + 1):
        await store.put_items([item("SKU-1", f"{50 + index}.00")])
        await repricer.pricer.price(repricer.compiled, ["SKU-1"], FRIDAY_NOON)
    before, _ = await store.history("SKU-1", limit=10_000)
    stop = asyncio.Event()
    running = asyncio.create_task(repricer.run(stop))
    try:
        for _ in range(200):
            entries = await store.redis.lrange(keys.audit("SKU-1"), 0, -1)
            old_offers = await store.redis.llen(keys.offer_history_blocks("SKU-1"))
            if any(is_block(entry) for entry in entries) and old_offers:
                break
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(running, 5)
    assert any(is_block(entry) for entry in entries)
    assert old_offers == 1
    assert await store.redis.xlen(keys.offer_history("SKU-1")) == HISTORY_STREAM_KEPT
    after, _ = await store.history("SKU-1", limit=10_000)
    assert [r.stream_id for r in after] == [r.stream_id for r in before]
    assert not await store.claim_compaction(timedelta(hours=1))  # claimed for the hour


async def test_a_rule_load_that_meets_a_redis_outage_is_tried_again(tmp_path: Path) -> None:
    # Forgetting it would leave the repricer without the edit until the files change again.
    server = EmbeddedRedis(tmp_path / "redis", persistent=False)  # not started: an outage
    store = Store.from_url(server.url, retention=timedelta(days=35))
    repricer = worker(store, write_rules(tmp_path / "rules"))
    try:
        with pytest.raises((RedisError, OSError)):
            await repricer.check_rules()
        assert repricer.ruleset is None
        server.start()
        assert await repricer.check_rules() == []
        assert repricer.ruleset is not None
    finally:
        await store.close()
        server.stop()
