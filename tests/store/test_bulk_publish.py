"""The bulk publish path and the compact audit encoding, against a real Redis."""

from __future__ import annotations

import json
import zlib
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pricing_service.engine import ItemFacts, PricingInputs, schedule
from pricing_service.engine.decision import decision_to_dict
from pricing_service.store import keys
from pricing_service.store import store as store_module
from pricing_service.store.store import (
    PUBLISH_PIPELINE,
    SCRIPT_BATCH,
    PreparedPublish,
    PublishRequest,
    PublishResult,
    Store,
    StoredSchedule,
    audit_json,
    decode_audit,
    encode_audit,
    encode_audit_entries,
    encode_schedule,
    fingerprint,
)
from tests.store.builders import AT, weekend_engine

pytestmark = pytest.mark.anyio


def _request(sku: str, list_price: str = "50.00", segment: str = "") -> PublishRequest:
    inputs = PricingInputs(item=ItemFacts(sku=sku, currency="USD", list_price=Decimal(list_price)))
    decisions = schedule(weekend_engine(), inputs, AT)
    mark = fingerprint("v1", segment, inputs.model_dump_json(), decisions)
    return PublishRequest(sku, segment, decisions, mark)


async def _changes(store: Store) -> list[tuple[str, str]]:
    entries = await store.redis.xrange(keys.CHANGES_STREAM)
    return [(f[b"sku"].decode(), f[b"seg"].decode()) for _, f in entries]


async def test_publish_many_stores_what_publish_stores(store: Store) -> None:
    bulk = [_request(f"SKU-{n}", f"{50 + n}.00") for n in range(3)]
    single = _request("SKU-9", "59.00", segment="tier:member")
    results = await store.publish_many([*bulk, single], now=AT)
    assert [r.written for r in results] == [True] * 4
    for request, result in zip([*bulk, single], results, strict=True):
        stored = await store.get_schedule(request.sku, request.segment)
        assert stored is not None
        assert stored.stream_id == result.stream_id
        assert stored.fingerprint == request.fingerprint_value
        assert [w.price for w in stored.windows] == [d.price for d in request.decisions]
        record = await store.get_audit(request.sku, result.stream_id)
        assert record is not None
        assert record.segment == request.segment
        expected = decision_to_dict(request.decisions[1])
        assert record.decisions[1]["steps"] == expected["steps"]
        assert record.decisions[1]["price"] == expected["price"]
        changes = await store.recent_changes(request.sku, request.segment)
        assert [c.price for c in changes] == [request.decisions[0].price]
    assert await _changes(store) == [
        ("SKU-0", "-"),
        ("SKU-1", "-"),
        ("SKU-2", "-"),
        ("SKU-9", "tier:member"),
    ]


async def test_publish_many_is_idempotent_and_announces_what_it_wrote_or_just_retried(
    store: Store,
) -> None:
    first = await store.publish_many([_request("SKU-1"), _request("SKU-2")], now=AT)
    again = await store.publish_many(
        [_request("SKU-1"), _request("SKU-2", "60.00")], now=AT + timedelta(minutes=1)
    )
    assert [r.written for r in again] == [False, True]
    assert again[0].stream_id == first[0].stream_id
    assert len((await store.history("SKU-1"))[0]) == 1
    assert len((await store.history("SKU-2"))[0]) == 2
    # SKU-1 was published moments ago: a retry announces it again, in case the first
    # announcement is what failed.
    assert [sku for sku, _ in await _changes(store)] == ["SKU-1", "SKU-2", "SKU-1", "SKU-2"]


async def test_publish_many_spans_several_pipelines_in_order(store: Store) -> None:
    count = max(PUBLISH_PIPELINE, 2 * SCRIPT_BATCH) + 5
    requests = [_request(f"SKU-{n}", f"{10 + n % 50}.00") for n in range(count)]
    results = await store.publish_many(requests, now=AT)
    assert len(results) == count
    assert all(r.written for r in results)
    assert len(await _changes(store)) == count
    last = await store.get_schedule(f"SKU-{count - 1}", "")
    assert last is not None
    assert last.stream_id == results[-1].stream_id


#: Two rounds that exercise every branch of the publish script: new schedules (one in a
#: segment), then an unchanged one (announced again, as it is recent), a changed one (its
#: record goes to history and a move is recorded), one computed from an older read than
#: the one in place (not written), a new one, and one SKU changed twice in one batch.
def _rounds() -> list[tuple[datetime, list[PublishRequest]]]:
    return [
        (
            AT,
            [
                _request("SKU-A", "50.00"),
                _request("SKU-B", "60.00", segment="tier:member"),
                replace(_request("SKU-C", "70.00"), read_at=5_000),
                _request("SKU-E", "10.00"),
            ],
        ),
        (
            AT + timedelta(hours=1),
            [
                _request("SKU-A", "50.00"),
                _request("SKU-B", "65.00", segment="tier:member"),
                replace(_request("SKU-C", "75.00"), read_at=1_000),
                _request("SKU-D", "80.00"),
                _request("SKU-E", "11.00"),
                _request("SKU-E", "12.00"),
            ],
        ),
    ]


_WRITTEN = [[True] * 4, [False, True, False, True, True, True]]


async def _stored_state(store: Store) -> dict[str, Any]:
    """Everything the rounds wrote, without the record ids (they come from Redis's clock)."""
    state: dict[str, Any] = {}
    for sku, segment in [("SKU-A", ""), ("SKU-B", "tier:member"), ("SKU-C", "")]:
        state[f"{sku}/{segment}"] = await _schedule_state(store, sku, segment)
    for sku in ["SKU-D", "SKU-E"]:
        state[sku] = await _schedule_state(store, sku, "")
    for sku in ["SKU-A", "SKU-B", "SKU-C", "SKU-D", "SKU-E"]:
        history = await store.redis.lrange(keys.audit(sku), 0, -1)
        state[f"{sku} history"] = [entry.split(b" ", 1)[1] for entry in history]
        state[f"{sku} history expires"] = await store.redis.pttl(keys.audit(sku)) > 0
        state[f"{sku} segments"] = sorted(await store.redis.smembers(keys.segments(sku)))
    state["changes"] = await _changes(store)
    return state


async def _schedule_state(store: Store, sku: str, segment: str) -> tuple[Any, ...]:
    raw = await store.redis.get(keys.schedule(sku, segment))
    assert raw is not None
    stored = StoredSchedule.parse(raw)
    return (stored.fingerprint, stored.read_at, stored.moves, stored.schedule_json, stored.audit)


def _check_ids(results: list[list[PublishResult]], requests: list[list[PublishRequest]]) -> None:
    """Each written schedule gets a new id, later than its key's last; one not written
    answers the id in place."""
    last: dict[tuple[str, str], str] = {}
    for round_results, round_requests in zip(results, requests, strict=True):
        for request, result in zip(round_requests, round_results, strict=True):
            key = (request.sku, request.segment)
            if result.written:
                if key in last:
                    assert _order(result.stream_id) > _order(last[key])
                last[key] = result.stream_id
            else:
                assert result.stream_id == last[key]


def _order(record_id: str) -> tuple[int, int]:
    ms, seq = record_id.split("-")
    return int(ms), int(seq)


async def test_publish_prepared_stores_what_publishing_one_by_one_stores(store: Store) -> None:
    rounds = _rounds()
    one_by_one = []
    for now, requests in rounds:
        one_by_one.append(
            [
                await store.publish(
                    r.sku,
                    r.segment,
                    r.decisions,
                    fingerprint_value=r.fingerprint_value,
                    now=now,
                    read_at=r.read_at,
                )
                for r in requests
            ]
        )
    expected = await _stored_state(store)

    await store.redis.flushdb()
    in_bulk = []
    for now, requests in rounds:
        prepared = [store.prepare_publish(request) for request in requests]
        in_bulk.append(await store.publish_prepared(prepared, now=now))
    assert await _stored_state(store) == expected

    sent = [requests for _, requests in rounds]
    for results in (one_by_one, in_bulk):
        assert [[r.written for r in round_results] for round_results in results] == _WRITTEN
        _check_ids(results, sent)
    for sku, segment, result in [
        ("SKU-B", "tier:member", in_bulk[1][1]),
        ("SKU-C", "", in_bulk[0][2]),
        ("SKU-E", "", in_bulk[1][5]),
    ]:
        stored = await store.get_schedule(sku, segment)
        assert stored is not None
        assert stored.stream_id == result.stream_id
    # what the state holds, spelled out
    assert [c.price for c in await store.recent_changes("SKU-B", "tier:member")] == [
        Decimal("60.00"),
        Decimal("65.00"),
    ]
    assert [c.price for c in await store.recent_changes("SKU-E", "")] == [
        Decimal("10.00"),
        Decimal("11.00"),
        Decimal("12.00"),
    ]
    assert len(expected["SKU-B history"]) == 1
    assert len(expected["SKU-E history"]) == 2
    assert expected["SKU-C history"] == []
    assert expected["SKU-B segments"] == [b"tier:member"]
    assert [sku for sku, _ in expected["changes"]] == [
        *("SKU-A", "SKU-B", "SKU-C", "SKU-E"),
        *("SKU-A", "SKU-B", "SKU-C", "SKU-D", "SKU-E", "SKU-E"),
    ]
    record = await store.get_audit("SKU-B", in_bulk[0][1].stream_id)  # from the history list
    assert record is not None
    assert record.decisions[0]["price"] == "60.00"


async def test_publish_prepared_does_not_announce_an_old_schedule_found_unchanged(
    store: Store,
) -> None:
    prepared = store.prepare_publish(_request("SKU-1"))
    await store.publish_prepared([prepared], now=AT)
    key = keys.schedule("SKU-1", "")
    raw = await store.redis.get(key)
    assert raw is not None
    await store.redis.set(key, b"1000-0" + raw[raw.index(b" ") :])  # published in 1970
    again = await store.publish_prepared([prepared], now=AT)
    assert again == [PublishResult(written=False, stream_id="1000-0")]
    assert len(await _changes(store)) == 1


async def test_publish_prepared_announces_on_each_skus_partition(store: Store) -> None:
    partitioned = Store(store.redis, retention=store.retention, queue_partitions=3)
    skus = [f"SKU-{n}" for n in range(30)]
    results = await partitioned.publish_prepared(
        [partitioned.prepare_publish(_request(sku)) for sku in skus], now=AT
    )
    assert all(r.written for r in results)
    for stream in partitioned.changes_streams:
        entries = await store.redis.xrange(stream)
        announced = [fields[b"sku"].decode() for _, fields in entries]
        assert announced == [sku for sku in skus if partitioned.changes_stream(sku) == stream]
        assert announced  # 30 SKUs reach every one of 3 partitions


async def test_publish_prepared_loads_its_script_again_after_a_flush(store: Store) -> None:
    await store.publish_prepared([store.prepare_publish(_request("SKU-1"))], now=AT)
    await store.redis.script_flush()  # what a restarted Redis looks like
    results = await store.publish_prepared([store.prepare_publish(_request("SKU-2"))], now=AT)
    assert [r.written for r in results] == [True]
    assert await store.publish_prepared([], now=AT) == []


def test_a_prepared_publish_is_the_encoded_request() -> None:
    request = replace(_request("SKU-1", segment="tier:member"), read_at=7)
    decisions = request.decisions
    by_hand = PreparedPublish(
        sku="SKU-1",
        segment="tier:member",
        fingerprint=request.fingerprint_value,
        schedule_json=encode_schedule(decisions, "USD", "v1"),
        audit=encode_audit(decisions, "tier:member"),
        current_price="50.00",
        price_epoch=int(decisions[0].valid_from.timestamp()),
        read_at=7,
    )
    assert Store.prepare_publish(request) == by_hand


def test_audit_entries_encode_as_the_decisions_do() -> None:
    decisions = _request("SKU-1").decisions
    entries = [decision_to_dict(decision) for decision in decisions]
    windows = json.loads(encode_schedule(decisions, "USD", "v1"))["w"]
    encoded = encode_audit_entries(entries, windows, "tier:member")
    assert encoded == encode_audit(decisions, "tier:member")
    assert entries == [decision_to_dict(decision) for decision in decisions]  # left whole


async def test_set_boundaries_adds_moves_and_removes_members(store: Store) -> None:
    await store.set_boundaries({"A|-": 100, "B|-": 200})
    await store.set_boundaries({"A|-": None, "B|-": 300, "C|-": None})
    members = await store.redis.zrange(keys.BOUNDARIES, 0, -1, withscores=True)
    assert members == [(b"B|-", 300.0)]


def test_audit_records_of_the_first_format_still_decode() -> None:
    decisions = _request("SKU-1").decisions
    compact = encode_audit(decisions, "tier:member")
    payload = json.loads(audit_json(compact))
    legacy = zlib.compress(json.dumps(payload, separators=(",", ":")).encode(), 6)
    assert len(compact) < len(legacy)
    beside = encode_schedule(decisions, "USD", "v1").encode()
    new_record = decode_audit("SKU-1", "1-0", compact, schedule_json=beside)
    old_record = decode_audit("SKU-1", "1-0", legacy, schedule_json=beside)
    assert new_record == old_record
    assert new_record.segment == "tier:member"
    assert new_record.decisions[0]["decision_id"] == "SKU-1~1-0~0"
    # The first dictionary's records (format byte 1), written before the second, too.
    compressor = zlib.compressobj(6, zlib.DEFLATED, -12, 4, zdict=store_module._AUDIT_ZDICT_1)
    body = json.dumps(payload, separators=(",", ":")).encode()
    first_dictionary = b"\x01" + compressor.compress(body) + compressor.flush()
    assert compact[:1] == b"\x02"
    assert decode_audit("SKU-1", "1-0", first_dictionary, schedule_json=beside) == new_record


def test_an_audit_record_reads_back_every_field_of_every_decision() -> None:
    decisions = _request("SKU-1").decisions
    # An instant the schedule's whole UTC seconds cannot say is kept in the record itself.
    odd = replace(
        decisions[0], valid_from=AT.astimezone(ZoneInfo("America/New_York")) + timedelta(0, 0, 5)
    )
    for written in (decisions, [odd, *decisions[1:]]):
        beside = encode_schedule(written, "USD", "v1").encode()
        record = decode_audit("SKU-1", "7-0", encode_audit(written, ""), schedule_json=beside)
        for index, decision in enumerate(written):
            expected = {**decision_to_dict(decision), "decision_id": f"SKU-1~7-0~{index}"}
            assert record.decisions[index] == expected
