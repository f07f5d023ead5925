"""Overrides, the kill switch, rules status, validation and preview, manual repricing."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import httpx
import redis

from pricing_service.engine import ItemFacts
from pricing_service.store import keys
from tests.api.conftest import ADMIN_KEY, READ_KEY, RULES, WRITE_KEY, auth
from tests.api.helpers import publish

ADMIN = auth(ADMIN_KEY)


def _put_items(api: httpx.Client, *skus: str) -> None:
    items = [
        {"sku": sku, "currency": "USD", "list_price": "50.00", "current_price": "50.00"}
        for sku in skus
    ]
    assert api.post("/v1/items/bulk", json=items, headers=auth(WRITE_KEY)).status_code == 200


def _dirty(redis_url: str) -> int:
    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.xlen(keys.DIRTY_STREAM))
    finally:
        client.close()


def test_overrides_are_admin_only(api: httpx.Client) -> None:
    _put_items(api, "SKU-1")
    override = {"price": "45.00", "until": "2099-01-01T00:00:00Z", "reason": "clearance"}
    assert api.put("/v1/overrides/SKU-1", json=override, headers=auth(WRITE_KEY)).status_code == 403
    response = api.put("/v1/overrides/SKU-1", json=override, headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json()["set_by"] == "boss"
    assert response.json()["price"] == "45.00"
    for bad in (
        {**override, "price": 45.0},
        {**override, "price": "45.001"},
        {**override, "price": "0.00"},  # would stop the SKU's repricing: never a price
        {**override, "price": 0},
        {**override, "until": "2001-01-01T00:00:00Z"},
    ):
        assert api.put("/v1/overrides/SKU-1", json=bad, headers=ADMIN).status_code == 422, bad
    assert api.put("/v1/overrides/NONE", json=override, headers=ADMIN).status_code == 404
    assert api.delete("/v1/overrides/SKU-1", headers=ADMIN).status_code == 204
    assert api.delete("/v1/overrides/SKU-1", headers=ADMIN).status_code == 404


def test_freeze_and_unfreeze(api: httpx.Client, clean_redis: str) -> None:
    _put_items(api, "A", "B")
    before = _dirty(clean_redis)
    assert api.post("/v1/admin/freeze", headers=auth(WRITE_KEY)).status_code == 403
    frozen = api.post("/v1/admin/freeze", json={"reason": "incident"}, headers=ADMIN)
    assert frozen.json() == {"frozen": True, "marked_dirty": 0}
    client = redis.Redis.from_url(clean_redis)
    try:
        assert client.exists(keys.FROZEN)
    finally:
        client.close()
    thawed = api.post("/v1/admin/unfreeze", headers=ADMIN)
    assert thawed.json() == {"frozen": False, "marked_dirty": 2}
    assert _dirty(clean_redis) == before + 2


def test_reprice(api: httpx.Client, clean_redis: str) -> None:
    _put_items(api, "A", "B")
    before = _dirty(clean_redis)
    some = api.post("/v1/admin/reprice", json={"skus": ["A", "ZZ"]}, headers=ADMIN).json()
    assert some == {"marked_dirty": 1, "unknown": ["ZZ"], "invalid": []}
    every = api.post("/v1/admin/reprice", json={"all": True}, headers=ADMIN).json()
    assert every["marked_dirty"] == 2
    assert _dirty(clean_redis) == before + 3
    assert api.post("/v1/admin/reprice", json={}, headers=ADMIN).status_code == 422


def test_rules_status(api: httpx.Client, clean_redis: str) -> None:
    client = redis.Redis.from_url(clean_redis)
    try:
        client.hset(keys.RULESET_STATUS, mapping={"version": "abc", "last_error": ""})
    finally:
        client.close()
    body = api.get("/v1/rules", headers=auth(READ_KEY)).json()
    assert body["version"]
    assert body["files"] == ["rules.yaml"]
    assert body["last_error"] is None
    assert body["repricer"]["version"] == "abc"


def test_a_broken_edit_keeps_the_last_good_rules(api: httpx.Client, rules_dir: Path) -> None:
    good = api.get("/v1/rules", headers=auth(READ_KEY)).json()["version"]
    (rules_dir / "rules.yaml").write_text(RULES.replace("priority: 10", "priority: ten"))
    for _ in range(100):
        body = api.get("/v1/rules", headers=auth(READ_KEY)).json()
        if body["last_error"]:
            break
        time.sleep(0.05)
    assert body["version"] == good
    assert "rules.yaml:" in body["last_error"]
    assert api.get("/readyz").status_code == 200


def test_validate_reports_file_line_and_column(api: httpx.Client) -> None:
    broken = RULES.replace("priority: 10", "priority: ten")
    response = api.post(
        "/v1/rules/validate", json={"files": {"rules.yaml": broken}}, headers=auth(WRITE_KEY)
    )
    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is False
    assert body["errors"] >= 1
    first = body["diagnostics"][0]
    line = broken.splitlines().index("    priority: ten") + 1
    assert (first["file"], first["line"], first["column"]) == ("rules.yaml", line, 15)
    good = api.post(
        "/v1/rules/validate", json={"files": {"rules.yaml": RULES}}, headers=auth(WRITE_KEY)
    )
    assert good.json()["valid"] is True


def test_preview_compares_every_segment_with_its_price_in_force(
    api: httpx.Client, clean_redis: str, rules_dir: Path
) -> None:
    item = ItemFacts(
        sku="A", currency="USD", list_price=Decimal("50.00"), current_price=Decimal("50.00")
    )
    publish(clean_redis, rules_dir, item, datetime.now(UTC), segment="channel:app")
    in_force = api.get("/v1/prices/A?segment=channel:app", headers=auth(READ_KEY)).json()
    candidate = RULES.replace("list_price: true", "fixed: 55").replace('"10%"', '"30%"')
    candidate = (
        candidate[: candidate.index("  - id: weekend")]
        + candidate[candidate.index("  - id: app") :]
    )
    response = api.post(
        "/v1/rules/preview", json={"files": {"rules.yaml": candidate}}, headers=auth(WRITE_KEY)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["summary"]["evaluated"] == 2  # one SKU in two segments
    by_segment = {change["segment"]: change for change in body["changes"]}
    # The app segment against its published price; the default one (nothing published)
    # against the item's current price.
    assert by_segment["channel:app"]["current"] == in_force["price"]
    assert by_segment["channel:app"]["proposed"] == "35.00"
    assert (by_segment[""]["current"], by_segment[""]["proposed"]) == ("50.00", "55.00")


def test_preview_refuses_an_instant_past_what_a_calendar_holds(api: httpx.Client) -> None:
    body = {"files": {"rules.yaml": RULES}, "at": "9999-12-31T23:59:59Z"}
    response = api.post("/v1/rules/preview", json=body, headers=auth(WRITE_KEY))
    assert response.status_code == 422, response.text  # was a 500 (date overflow)
    assert response.json()["detail"] == "at: before 2200-01-01, please"


def test_preview_against_the_rules_in_force_shows_only_the_edits_effect(
    api: httpx.Client,
) -> None:
    _put_items(api, "A", "B")  # current 50.00, nothing published yet

    def preview(files: dict[str, str], against: str) -> dict[str, Any]:
        body = {"files": files, "against": against}
        response = api.post("/v1/rules/preview", json=body, headers=auth(WRITE_KEY))
        assert response.status_code == 200, response.text
        return cast(dict[str, Any], response.json())

    # The rules in force, unedited: against themselves nothing changes.
    same = preview({"rules.yaml": RULES}, "rules")
    # Two SKUs in two segments (the app rule's 45.00); against the prices in force, the
    # app segment would show as changes (50.00 is all that is known of them).
    assert (same["summary"]["evaluated"], same["summary"]["changed"]) == (4, 0)
    assert preview({"rules.yaml": RULES}, "prices")["summary"]["changed"] > 0
    edited = RULES.replace("list_price: true", "fixed: 55")
    edited = edited[: edited.index("rules:")]
    effect = preview({"rules.yaml": edited}, "rules")
    # The edit prices no segment apart, but the rules in force price the app on its own:
    # its lookups would get the default segment's price, so both segments show.
    assert effect["summary"]["evaluated"] == effect["summary"]["changed"] == 4
    assert [(c["sku"], c["segment"], c["answered_by"]) for c in effect["changes"]] == [
        ("A", "", None),
        ("A", "channel:app", ""),
        ("B", "", None),
        ("B", "channel:app", ""),
    ]
    # Compared with what the rules in force give: list price, app 10% off, weekend 20% off.
    assert {change["current"] for change in effect["changes"]} <= {"50.00", "45.00", "40.00"}
    assert {change["proposed"] for change in effect["changes"]} == {"55.00"}
    refused = api.post(
        "/v1/rules/preview",
        json={"files": {"rules.yaml": RULES}, "against": "yesterday"},
        headers=auth(WRITE_KEY),
    )
    assert refused.status_code == 422


def test_preview_counts_changes_without_publishing(api: httpx.Client, clean_redis: str) -> None:
    _put_items(api, "A", "B")
    candidate = RULES.replace("list_price: true", "fixed: 55")
    # The weekend rule would win on weekends; a rule-free candidate keeps this date-proof.
    candidate = candidate[: candidate.index("rules:")]
    response = api.post(
        "/v1/rules/preview", json={"files": {"rules.yaml": candidate}}, headers=auth(WRITE_KEY)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    # Both SKUs in the default segment and in the app segment the rules in force price on
    # their own: the candidate's default price would answer the app's lookups too.
    assert body["summary"]["evaluated"] == 4
    assert body["summary"]["changed"] == body["summary"]["up"] == 4
    assert body["unknown"] == []
    named = api.post(
        "/v1/rules/preview",
        json={"files": {"rules.yaml": candidate}, "skus": ["A", "NOPE"]},
        headers=auth(WRITE_KEY),
    ).json()
    assert (named["summary"]["evaluated"], named["unknown"]) == (2, ["NOPE"])
    assert body["summary"]["max_abs_change_percent"] == "10.00"
    assert body["changes"][0] == {
        "sku": "A",
        "segment": "",
        "currency": "USD",
        "current": "50.00",
        "proposed": "55.00",
        "change": "5.00",
        "change_percent": "10.00",
        "rule_id": "default",
        "strategy": "fixed",
        "guardrails_fired": [],
        "answered_by": None,
        "heading": "55.00",
        "heading_from": "50.00",
        "heading_change_percent": "10.00",
        "heading_settles": True,
        "heading_until": None,
    }
    assert (body["summary"]["heading_changed"], body["summary"]["unsettled"]) == (4, 0)
    assert body["summary"]["held_short"] == 0  # the next repricing gets there
    assert (body["summary"]["held"], body["summary"]["discounts_up"]) == ({}, 0)
    assert body["summary"]["unmatched_rules"] == []
    client = redis.Redis.from_url(clean_redis)
    try:
        assert client.get(keys.schedule("A", "")) is None
    finally:
        client.close()
    broken = api.post(
        "/v1/rules/preview", json={"files": {"rules.yaml": "x: ["}}, headers=auth(WRITE_KEY)
    )
    assert broken.status_code == 422
    assert broken.json()["errors"][0]["location"][0] == "rules.yaml"
    naive = api.post(
        "/v1/rules/preview",
        json={"files": {"rules.yaml": candidate}, "at": "2026-11-27T00:00:00"},
        headers=auth(WRITE_KEY),
    )
    assert naive.status_code == 422
    assert naive.headers["content-type"] == "application/problem+json"
    assert "timezone" in naive.json()["detail"]
