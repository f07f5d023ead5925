"""The bulk publish path and the compact audit encoding, against a real Redis."""

from __future__ import annotations

import json
import zlib
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from pricing_service.engine import ItemFacts, PricingInputs, schedule
from pricing_service.engine.decision import decision_to_dict
from pricing_service.store import keys
from pricing_service.store.store import (
    PUBLISH_PIPELINE,
    PublishRequest,
    Store,
    audit_json,
    decode_audit,
    encode_audit,
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
    count = PUBLISH_PIPELINE + 5
    requests = [_request(f"SKU-{n}", f"{10 + n % 50}.00") for n in range(count)]
    results = await store.publish_many(requests, now=AT)
    assert len(results) == count
    assert all(r.written for r in results)
    assert len(await _changes(store)) == count
    last = await store.get_schedule(f"SKU-{count - 1}", "")
    assert last is not None
    assert last.stream_id == results[-1].stream_id


async def test_set_boundaries_adds_moves_and_removes_members(store: Store) -> None:
    await store.set_boundaries({"A|-": 100, "B|-": 200})
    await store.set_boundaries({"A|-": None, "B|-": 300, "C|-": None})
    members = await store.redis.zrange(keys.BOUNDARIES, 0, -1, withscores=True)
    assert members == [(b"B|-", 300.0)]


def test_audit_records_of_the_first_format_still_decode() -> None:
    decisions = _request("SKU-1").decisions
    compact = encode_audit(decisions, "tier:member", "v1")
    payload = json.loads(audit_json(compact))
    legacy = zlib.compress(json.dumps(payload, separators=(",", ":")).encode(), 6)
    assert len(compact) < len(legacy)
    beside = encode_schedule(decisions, "USD", "v1").encode()
    new_record = decode_audit("SKU-1", "1-0", compact, schedule_json=beside)
    old_record = decode_audit("SKU-1", "1-0", legacy, schedule_json=beside)
    assert new_record == old_record
    assert new_record.segment == "tier:member"
    assert new_record.decisions[0]["decision_id"] == "SKU-1~1-0~0"


def test_an_audit_record_reads_back_every_field_of_every_decision() -> None:
    decisions = _request("SKU-1").decisions
    # An instant the schedule's whole UTC seconds cannot say is kept in the record itself.
    odd = replace(
        decisions[0], valid_from=AT.astimezone(ZoneInfo("America/New_York")) + timedelta(0, 0, 5)
    )
    for written in (decisions, [odd, *decisions[1:]]):
        beside = encode_schedule(written, "USD", "v1").encode()
        record = decode_audit("SKU-1", "7-0", encode_audit(written, "", "v1"), schedule_json=beside)
        for index, decision in enumerate(written):
            expected = {**decision_to_dict(decision), "decision_id": f"SKU-1~7-0~{index}"}
            assert record.decisions[index] == expected
