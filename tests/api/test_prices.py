"""Price lookups, explanations, history, the lowest price and decisions, over HTTP."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import redis

from pricing_service.store import keys
from pricing_service.store.store import Schedule, decode_schedule
from tests.api.conftest import ADMIN_KEY, READ_KEY, ServeApp, auth
from tests.api.helpers import item, publish

PROBLEM = "application/problem+json"


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def test_lookup_returns_the_published_price(
    api: httpx.Client, clean_redis: str, rules_dir: Path
) -> None:
    result = publish(clean_redis, rules_dir, item(), _now())
    response = api.get("/v1/prices/SKU-1", headers=auth(READ_KEY))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["sku"] == "SKU-1"
    assert body["segment"] == ""
    assert body["price"] in ("50.00", "40.00")  # 40.00 on a weekend
    assert body["currency"] == "USD"
    assert body["decision_id"].startswith(f"SKU-1~{result.stream_id}~")
    assert body["stale"] is False
    assert "explanation" not in body
    assert "valid_until" in body  # null when open-ended, never left out
    for field in ("valid_from", "valid_until", "ruleset_version", "computed_at"):
        assert field in body


def test_segment_maps_to_the_priced_segment(
    api: httpx.Client, clean_redis: str, rules_dir: Path
) -> None:
    publish(clean_redis, rules_dir, item(), _now(), segment="channel:app")
    publish(clean_redis, rules_dir, item(), _now())
    response = api.get(
        "/v1/prices/SKU-1", params={"segment": "channel:app,tier:x"}, headers=auth(READ_KEY)
    )
    assert response.status_code == 200, response.text
    assert response.json()["segment"] == "channel:app"
    # tier is not a dimension of these rules: ignored, and the header says so.
    assert response.headers["pricing-segment-warning"] == (
        "segment dimension 'tier' is not in the ruleset: ignored"
    )
    bad = api.get("/v1/prices/SKU-1", params={"segment": "no"}, headers=auth(READ_KEY))
    assert bad.status_code == 422
    # A typo of a declared value still gets a price (a storefront must never go down for
    # a value the rules have not declared yet), the default one, and the header says why.
    typo = api.get("/v1/prices/SKU-1", params={"segment": "channel:ap"}, headers=auth(READ_KEY))
    assert (typo.status_code, typo.json()["segment"]) == (200, "")
    assert typo.headers["pricing-segment-warning"] == (
        "unknown segment channel value 'ap' (did you mean 'app'?); the ruleset declares: web, app"
    )
    batch = api.post(
        "/v1/prices/lookup",
        json={"skus": ["SKU-1"], "segment": "channel:ap"},
        headers=auth(READ_KEY),
    )
    assert batch.headers["pricing-segment-warning"] == typo.headers["pricing-segment-warning"]
    exact = api.get("/v1/prices/SKU-1", params={"segment": "channel:app"}, headers=auth(READ_KEY))
    assert "pricing-segment-warning" not in exact.headers
    metrics = api.get("/metrics").text
    assert "pricing_lookup_segments_ignored_total 3.0" in metrics


def test_at_a_window_boundary_returns_the_window_starting_then(
    api: httpx.Client, clean_redis: str, rules_dir: Path
) -> None:
    publish(clean_redis, rules_dir, item(), _now())
    schedule = _stored_schedule(clean_redis)
    boundary = schedule.windows[1].valid_from
    before, after = (
        datetime.fromtimestamp(moment, tz=UTC).isoformat() for moment in (boundary - 1, boundary)
    )
    first = api.get("/v1/prices/SKU-1", params={"at": before}, headers=auth(READ_KEY)).json()
    second = api.get("/v1/prices/SKU-1", params={"at": after}, headers=auth(READ_KEY)).json()
    assert first["price"] == str(schedule.windows[0].price)
    assert second["price"] == str(schedule.windows[1].price)
    assert second["valid_from"] == datetime.fromtimestamp(boundary, tz=UTC).isoformat().replace(
        "+00:00", "Z"
    )
    assert first["decision_id"] != second["decision_id"]


def _stored_schedule(redis_url: str) -> Schedule:
    client = redis.Redis.from_url(redis_url)
    try:
        raw = client.get(keys.schedule("SKU-1", ""))
    finally:
        client.close()
    assert raw is not None
    return decode_schedule("SKU-1", "", raw)


def test_at_outside_the_schedule_is_answered_from_the_audit_trail(
    api: httpx.Client, clean_redis: str, rules_dir: Path
) -> None:
    now = _now()
    old = publish(clean_redis, rules_dir, item(list_price="50.00"), now - timedelta(minutes=5))
    publish(clean_redis, rules_dir, item(list_price="60.00"), now + timedelta(hours=1))
    moment = (now + timedelta(minutes=30)).isoformat()
    response = api.get("/v1/prices/SKU-1", params={"at": moment}, headers=auth(READ_KEY))
    assert response.status_code == 200, response.text
    assert response.json()["decision_id"].startswith(f"SKU-1~{old.stream_id}~")


def test_explain_embeds_the_decision_and_needs_a_key(
    serve_app: ServeApp, clean_redis: str, rules_dir: Path
) -> None:
    api = serve_app(public_reads=True)
    publish(clean_redis, rules_dir, item(), _now())
    anonymous = api.get("/v1/prices/SKU-1")
    assert anonymous.status_code == 200
    assert api.get("/v1/prices/SKU-1", params={"explain": "true"}).status_code == 401
    explained = api.get("/v1/prices/SKU-1", params={"explain": "true"}, headers=auth(READ_KEY))
    explanation = explained.json()["explanation"]
    assert "held_by" in explanation
    assert explanation["decision_id"] == explained.json()["decision_id"]
    assert explanation["rule_id"] in ("weekend", "default")
    assert explanation["steps"]


def test_explain_names_the_guardrail_that_bound_the_price(
    api: httpx.Client, clean_redis: str, rules_dir: Path
) -> None:
    # The list price (50.00, or 40.00 on a weekend) is below MAP; the cost's margin is not.
    clamped = item().model_copy(
        update={"map_price": Decimal("55.00"), "max_price": Decimal("70.00")}
    )
    publish(clean_redis, rules_dir, clamped, _now())
    explained = api.get("/v1/prices/SKU-1", params={"explain": "true"}, headers=auth(READ_KEY))
    assert explained.status_code == 200, explained.text
    explanation = explained.json()["explanation"]
    assert explained.json()["price"] == "55.00"
    assert explanation["guardrails_fired"] == ["map"]
    [step] = [step for step in explanation["steps"] if step["stage"] == "guardrail"]
    assert (step["name"], step["output"]) == ("map", "55.00")
    assert step["detail"] == "raised to the map floor 55.00 (allowed range 55.00..70.00)"


def test_unknown_sku_is_a_404_problem(api: httpx.Client) -> None:
    response = api.get("/v1/prices/NOPE", headers=auth(READ_KEY))
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == 404
    assert body["instance"] == "/v1/prices/NOPE"
    assert {"type", "title", "detail"} <= body.keys()


def test_bad_sku_format_is_a_422_problem_with_errors(api: httpx.Client) -> None:
    response = api.get("/v1/prices/-bad!", headers=auth(READ_KEY))
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["errors"][0]["location"] == ["path", "sku"]
    too_long = api.get("/v1/prices/" + "A" * 65, headers=auth(READ_KEY))
    assert too_long.status_code == 422


def test_batch_lookup_reports_unknown_skus_one_by_one(
    api: httpx.Client, clean_redis: str, rules_dir: Path
) -> None:
    publish(clean_redis, rules_dir, item(), _now())
    response = api.post(
        "/v1/prices/lookup",
        json={"skus": ["SKU-1", "MISSING", "bad sku"]},
        headers=auth(READ_KEY),
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["found"] for r in results] == [True, False, False]
    assert results[0]["price"]["sku"] == "SKU-1"
    assert results[2]["error"] == "not a valid SKU"


def test_batch_lookup_is_bounded(serve_app: ServeApp) -> None:
    api = serve_app(max_lookup_skus=3)
    response = api.post(
        "/v1/prices/lookup", json={"skus": ["A", "B", "C", "D"]}, headers=auth(READ_KEY)
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM


def test_head_answers_wherever_get_does(
    api: httpx.Client, clean_redis: str, rules_dir: Path
) -> None:
    publish(clean_redis, rules_dir, item(), _now())
    for path in ("/v1/prices/SKU-1", "/v1/prices/SKU-1?explain=true", "/healthz"):
        got = api.get(path, headers=auth(READ_KEY))
        head = api.head(path, headers=auth(READ_KEY))
        assert head.status_code == got.status_code == 200, path
        assert head.content == b""
        assert head.headers["content-type"] == got.headers["content-type"]
        assert head.headers["content-length"] == got.headers["content-length"]
    assert api.head("/v1/prices/NOPE", headers=auth(READ_KEY)).status_code == 404
    assert api.head("/v1/sales", headers=auth(READ_KEY)).status_code == 405


def test_a_method_not_allowed_names_every_method_the_path_takes(api: httpx.Client) -> None:
    # GET, PUT and DELETE of an item are three routes: Starlette names the first one's.
    refused = api.post("/v1/items/SKU-1", headers=auth(READ_KEY), json={})
    assert refused.status_code == 405
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["allow"] == "DELETE, GET, HEAD, PUT"
    assert api.delete("/v1/sales", headers=auth(READ_KEY)).headers["allow"] == "POST"


def test_request_bodies_and_segments_that_say_something_else_are_refused(
    api: httpx.Client,
) -> None:
    # Ignored, an "at" would give the current price, a "segmnet" the default one.
    for body in (
        {"skus": ["A"], "at": "2026-12-07T20:00:00Z"},
        {"skus": ["A"], "segmnet": "channel:app"},
        {"skus": ["A" * 201]},  # echoed back whole, were it accepted
        {"skus": ["A"], "segment": "x" * 201},
    ):
        response = api.post("/v1/prices/lookup", json=body, headers=auth(READ_KEY))
        assert response.status_code == 422, body
        assert response.headers["content-type"] == PROBLEM
    twice = api.get(
        "/v1/prices/SKU-1", params={"segment": "channel:app,channel:web"}, headers=auth(READ_KEY)
    )
    assert twice.status_code == 422
    assert (
        twice.json()["detail"]
        == "segment: segment 'channel:app,channel:web' names a dimension twice"
    )


def test_a_new_publish_reaches_the_cache(
    api: httpx.Client, clean_redis: str, rules_dir: Path
) -> None:
    now = _now()
    publish(clean_redis, rules_dir, item(list_price="50.00"), now)
    first = api.get("/v1/prices/SKU-1", headers=auth(READ_KEY)).json()  # now cached
    publish(clean_redis, rules_dir, item(list_price="70.00"), now)
    deadline = time.monotonic() + 2
    while True:
        latest = api.get("/v1/prices/SKU-1", headers=auth(READ_KEY)).json()
        if latest["decision_id"] != first["decision_id"] or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert latest["price"] in ("70.00", "56.00")


def test_the_cache_follows_every_partition_of_the_changes_stream(
    serve_app: ServeApp, clean_redis: str, rules_dir: Path
) -> None:
    api = serve_app(queue_partitions=3)
    now = _now()
    skus = [f"SKU-{n}" for n in range(9)]  # over the three partitions
    assert len({keys.sku_partition(sku, 3) for sku in skus}) == 3
    for sku in skus:
        publish(clean_redis, rules_dir, item(sku, "50.00"), now, queue_partitions=3)
        cached = api.get(f"/v1/prices/{sku}", headers=auth(READ_KEY)).json()["price"]
        assert cached in ("50.00", "40.00")  # list price, or the weekend's 20% off
    for sku in skus:
        publish(clean_redis, rules_dir, item(sku, "70.00"), now, queue_partitions=3)
    deadline = time.monotonic() + 5
    while True:
        prices = {sku: api.get(f"/v1/prices/{sku}", headers=auth(READ_KEY)).json() for sku in skus}
        fresh = {body["price"] in ("70.00", "56.00") for body in prices.values()}
        if fresh == {True} or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert fresh == {True}, prices


def test_history_is_newest_first_and_paginated(
    api: httpx.Client, clean_redis: str, rules_dir: Path
) -> None:
    now = _now()
    published = [
        publish(clean_redis, rules_dir, item(list_price=f"{price}.00"), now).stream_id
        for price in (50, 51, 52)
    ]
    pages, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/prices/SKU-1/history", params=params, headers=auth(READ_KEY))
        assert page.status_code == 200, page.text
        pages.append([record["record_id"] for record in page.json()["records"]])
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert pages == [published[::-1][:2], published[::-1][2:]]
    bad = api.get("/v1/prices/SKU-1/history", params={"cursor": "x"}, headers=auth(READ_KEY))
    assert bad.status_code == 422
    assert api.get("/v1/prices/NONE/history", headers=auth(READ_KEY)).status_code == 404


def test_lowest_price_comes_from_the_audit_trail(
    api: httpx.Client, clean_redis: str, rules_dir: Path
) -> None:
    now = _now()
    cheap = publish(clean_redis, rules_dir, item(list_price="30.00"), now - timedelta(days=1))
    publish(clean_redis, rules_dir, item(list_price="90.00"), now)
    response = api.get("/v1/prices/SKU-1/lowest", params={"days": 30}, headers=auth(READ_KEY))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["price"] in ("30.00", "24.00")
    assert body["decision_id"].startswith(f"SKU-1~{cheap.stream_id}~")
    too_far = api.get("/v1/prices/SKU-1/lowest", params={"days": 400}, headers=auth(READ_KEY))
    assert too_far.status_code == 422


def test_decisions_by_id(api: httpx.Client, clean_redis: str, rules_dir: Path) -> None:
    publish(clean_redis, rules_dir, item(), _now())
    decision_id = api.get("/v1/prices/SKU-1", headers=auth(READ_KEY)).json()["decision_id"]
    response = api.get(f"/v1/decisions/{decision_id}", headers=auth(ADMIN_KEY))
    assert response.status_code == 200
    assert response.json()["decision_id"] == decision_id
    for unknown in ("nope", "SKU-1~abc~0", "SKU-1~1-0~0", f"{decision_id[:-1]}99"):
        missing = api.get(f"/v1/decisions/{unknown}", headers=auth(READ_KEY))
        assert missing.status_code == 404, unknown


def _lookup_count(api: httpx.Client, result: str) -> float:
    for line in api.get("/metrics").text.splitlines():
        if line.startswith(f'pricing_lookups_total{{result="{result}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_the_fast_path_answers_exactly_like_the_full_route(
    api: httpx.Client, clean_redis: str, rules_dir: Path
) -> None:
    publish(clean_redis, rules_dir, item(), _now())
    headers = auth(READ_KEY)
    # The first lookup misses and fills the cache; later ones are cache hits.
    full_route = api.get("/v1/prices/SKU-1?segment=", headers=headers)
    hits_before = _lookup_count(api, "hit")
    fast = api.get("/v1/prices/SKU-1", headers=headers)
    assert _lookup_count(api, "hit") == hits_before + 1
    again = api.get("/v1/prices/SKU-1?segment=", headers=headers)  # a query: the full route
    assert fast.status_code == again.status_code == full_route.status_code == 200
    assert fast.json() == again.json()
    assert fast.headers["content-type"] == again.headers["content-type"]
    # No shared cache may keep a price: a CDN's default lifetime would serve it for hours.
    assert fast.headers["cache-control"] == again.headers["cache-control"] == "no-store"
    # Without a key the fast path steps aside and the route answers 401 as before.
    unauthorised = api.get("/v1/prices/SKU-1")
    assert unauthorised.status_code == 401
    assert unauthorised.headers["cache-control"] == "no-store"
    batch = api.post("/v1/prices/lookup", json={"skus": ["SKU-1"]}, headers=headers)
    assert batch.headers["cache-control"] == "no-store"
    metrics = api.get("/metrics").text
    assert 'route="/v1/prices/{sku}",status_class="2xx"' in metrics


def test_a_batch_lookup_answers_each_sku_like_a_single_lookup(
    api: httpx.Client, clean_redis: str, rules_dir: Path
) -> None:
    publish(clean_redis, rules_dir, item("SKU-1"), _now())
    publish(clean_redis, rules_dir, item("SKU-2", "12.34"), _now())
    headers = auth(READ_KEY)
    batch = api.post(
        "/v1/prices/lookup", json={"skus": ["SKU-1", "SKU-2", "NOPE"]}, headers=headers
    )
    assert batch.status_code == 200, batch.text
    results = {entry["sku"]: entry for entry in batch.json()["results"]}
    for sku in ("SKU-1", "SKU-2"):
        single = api.get(f"/v1/prices/{sku}?segment=", headers=headers).json()
        assert results[sku]["found"] is True
        assert results[sku]["price"] == {**single, "explanation": None}
    assert results["NOPE"] == {
        "sku": "NOPE",
        "found": False,
        "price": None,
        "error": "no price for this SKU",
    }
