"""Items one by one and in bulk, sales, inventory, observations and competitors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from pricing_service.demand.signals import today_share
from tests.api.conftest import ADMIN_KEY, READ_KEY, RULES, WRITE_KEY, ServeApp, auth
from tests.repricer.helpers import store_item_with_unknown_field

WRITE = auth(WRITE_KEY)
ADMIN = auth(ADMIN_KEY)
COMPETITORS = """\
competitors:
  megamart:
    name: MegaMart
    domains: [megamart.example]
  our_outlet:
    name: Our outlet
    ours: true
    domains: [outlet.example]
"""


def _put(api: httpx.Client, sku: str = "SKU-1", currency: str = "USD") -> None:
    body = {"currency": currency, "list_price": "50.00", "cost": 30}
    assert api.put(f"/v1/items/{sku}", json=body, headers=WRITE).status_code in (200, 201)


def test_item_round_trip(api: httpx.Client) -> None:
    created = api.put(
        "/v1/items/SKU-1",
        json={"sku": "SKU-1", "currency": "USD", "list_price": "19.99", "tags": ["a"]},
        headers=WRITE,
    )
    assert created.status_code == 201, created.text
    fetched = api.get("/v1/items/SKU-1", headers=auth(READ_KEY))
    assert fetched.json()["list_price"] == "19.99"
    assert fetched.json()["tags"] == ["a"]
    assert api.delete("/v1/items/SKU-1", headers=WRITE).status_code == 204
    assert api.get("/v1/items/SKU-1", headers=auth(READ_KEY)).status_code == 404
    assert api.delete("/v1/items/SKU-1", headers=WRITE).status_code == 404


def test_item_input_errors_are_422(api: httpx.Client) -> None:
    cases = [
        {"currency": "USD", "list_price": 19.99},  # a float: inexact money
        {"currency": "USD", "list_price": "19.999"},  # finer than cents
        {"sku": "OTHER", "currency": "USD"},  # disagrees with the URL
        {"currency": "USD", "unknown": 1},
        # A zero price would be published as 0.01.
        {"currency": "USD", "current_price": "0"},
        {"currency": "USD", "list_price": "0.00"},
        {"currency": "USD", "max_price": 0},
        # Money as the API writes it, or it is echoed back as written ("1E+3").
        {"currency": "USD", "list_price": "1e3"},
        {"currency": "USD", "list_price": " 10.00 "},
        {"currency": "USD", "list_price": "+10.00"},
        {"currency": "USD", "min_price": "50.00", "max_price": "10.00"},
        {"currency": "XYZ", "list_price": "10.00"},  # three letters, but no currency
    ]
    for body in cases:
        response = api.put("/v1/items/SKU-1", json=body, headers=WRITE)
        assert response.status_code == 422, body
        assert response.headers["content-type"] == "application/problem+json"
    assert api.get("/v1/items/SKU-1", headers=auth(READ_KEY)).status_code == 404
    float_error = api.put("/v1/items/SKU-1", json=cases[0], headers=WRITE).json()
    assert "float" in float_error["errors"][0]["message"]
    exponent = api.put("/v1/items/SKU-1", json=cases[7], headers=WRITE).json()
    assert "plain decimal string" in exponent["detail"]
    crossed = api.put("/v1/items/SKU-1", json=cases[10], headers=WRITE).json()
    assert "min_price 50.00 is above max_price 10.00" in crossed["detail"]
    unknown = api.put("/v1/items/SKU-1", json=cases[11], headers=WRITE).json()
    assert "not an ISO 4217 currency code: 'XYZ'" in unknown["detail"]
    # A free item's cost may be zero.
    free = {"currency": "USD", "cost": "0", "list_price": "10.00"}
    assert api.put("/v1/items/SKU-1", json=free, headers=WRITE).status_code == 201
    broken = api.put(
        "/v1/items/SKU-1",
        content=b"{",
        headers={**WRITE, "Content-Type": "application/json"},
    )
    # Not JSON at all: a syntax error, 400 as the OpenAPI document says, not a refused value.
    assert broken.status_code == 400
    assert broken.headers["content-type"] == "application/problem+json"
    assert broken.json()["type"] == "urn:pricing:problem:unparseable-body"
    assert broken.json()["detail"].startswith("not valid JSON: ")
    # curl -d sends a form's media type: the body was read as a form and said "not an
    # object", where the JSON in it was fine.
    for media_type in ("application/x-www-form-urlencoded", "text/plain"):
        as_form = api.put(
            "/v1/items/SKU-1",
            content=json.dumps(free).encode(),
            headers={**WRITE, "Content-Type": media_type},
        )
        assert as_form.status_code == 415, media_type
        assert as_form.json()["detail"] == f"send the body as application/json, not {media_type}"
    lookup = api.post(
        "/v1/prices/lookup",
        content=b'{"skus": ["SKU-1"]}',
        headers={**WRITE, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert lookup.status_code == 415
    charset = api.post(
        "/v1/prices/lookup",
        content=b'{"skus": ["SKU-1"]}',
        headers={**WRITE, "Content-Type": "application/json; charset=utf-8"},
    )
    assert charset.status_code == 200


def test_bulk_bodies_nested_too_deeply_are_refused_not_a_crash(api: httpx.Client) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    as_json = api.post(
        "/v1/items/bulk", content=deep, headers={**WRITE, "Content-Type": "application/json"}
    )
    assert as_json.status_code == 400, as_json.text
    assert "nested too deeply" in as_json.json()["detail"]
    as_lines = api.post(
        "/v1/items/bulk",
        content=b'{"sku": "SKU-1", "currency": "USD"}\n' + deep,
        headers={**WRITE, "Content-Type": "application/x-ndjson"},
    )
    assert as_lines.status_code == 200, as_lines.text
    body = as_lines.json()
    assert body["stored"] == 1
    assert [(e["line"], e["message"]) for e in body["errors"]] == [
        (2, "not valid JSON: nested too deeply")
    ]


def test_bulk_json_reports_errors_item_by_item(api: httpx.Client) -> None:
    items: list[object] = [
        {"sku": f"SKU-{n}", "currency": "USD", "list_price": "10.00"} for n in range(10_000)
    ]
    items[3] = {"sku": "SKU-3", "currency": "USD", "list_price": 10.5}
    items[7] = "not an object"
    response = api.post("/v1/items/bulk", json=items, headers=WRITE)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["received"] == 10_000
    assert body["stored"] == body["created"] == 9_998
    assert [(e["index"], e["sku"]) for e in body["errors"]] == [(3, "SKU-3"), (7, None)]
    assert api.get("/v1/items/SKU-9999", headers=auth(READ_KEY)).status_code == 200


def test_bulk_ndjson_counts_lines(api: httpx.Client) -> None:
    lines = [
        json.dumps({"sku": "A", "currency": "USD"}),
        "",
        "{broken",
        json.dumps({"sku": "B", "currency": "usd"}),
    ]
    response = api.post(
        "/v1/items/bulk",
        content="\n".join(lines).encode(),
        headers={**WRITE, "Content-Type": "application/x-ndjson"},
    )
    body = response.json()
    assert body["stored"] == 1
    assert [(e["line"], e["index"]) for e in body["errors"]] == [(3, 1), (4, 2)]


def test_bulk_limits(serve_app: ServeApp) -> None:
    api = serve_app(max_bulk_items=2)
    items = [{"sku": f"S{n}", "currency": "USD"} for n in range(3)]
    assert api.post("/v1/items/bulk", json=items, headers=WRITE).status_code == 422
    assert api.post("/v1/items/bulk", json={"a": 1}, headers=WRITE).status_code == 422
    odd = api.post("/v1/items/bulk", content=b"x", headers={**WRITE, "Content-Type": "text/csv"})
    assert odd.status_code == 415


def test_inventory(api: httpx.Client) -> None:
    _put(api)
    response = api.put("/v1/items/SKU-1/inventory", json={"inventory": 7}, headers=WRITE)
    assert response.json()["inventory"] == 7
    assert api.put("/v1/items/X/inventory", json={"inventory": 1}, headers=WRITE).status_code == 404
    bad = api.put("/v1/items/SKU-1/inventory", json={"inventory": -1}, headers=WRITE)
    assert bad.status_code == 422


def test_sales(api: httpx.Client) -> None:
    _put(api)
    now = datetime.now(UTC).isoformat()
    events = [
        {"sku": "SKU-1", "quantity": 2, "unit_price": "49.99", "ts": now},
        {"sku": "NOPE", "quantity": 1, "unit_price": "1.00", "ts": now},
        {"sku": "SKU-1", "quantity": 1, "unit_price": "1.001", "ts": now},
        {"sku": "SKU-1", "quantity": 0, "unit_price": "49.99", "ts": now},
    ]
    response = api.post("/v1/sales", json=events, headers=WRITE)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1
    assert [r["index"] for r in response.json()["rejected"]] == [1, 2, 3]
    assert response.json()["rejected"][2]["message"] == "quantity is 0: no units sold or returned"
    floats = [{"sku": "SKU-1", "quantity": 1, "unit_price": 1.5, "ts": now}]
    assert api.post("/v1/sales", json=floats, headers=WRITE).status_code == 422
    # Nothing about the buyer: a field the API does not know is an error, not kept quiet.
    buyer = [{**events[0], "customer_id": "alice@example.com"}]
    refused = api.post("/v1/sales", json=buyer, headers=WRITE)
    assert refused.status_code == 422
    assert "customer_id" in refused.json()["detail"]


def test_an_item_stored_around_the_api_is_named_not_a_500(
    api: httpx.Client, clean_redis: str
) -> None:
    # A script, or an older version, wrote a field this version does not know: the API
    # answered 500 on the item's routes, and a sales batch lost every SKU's sales.
    _put(api, "GOOD")
    _put(api, "BROKEN")
    store_item_with_unknown_field(clean_redis, "BROKEN")
    now = datetime.now(UTC).isoformat()
    sales = [
        {"sku": "GOOD", "quantity": 2, "unit_price": "49.99", "ts": now},
        {"sku": "BROKEN", "quantity": 1, "unit_price": "49.99", "ts": now},
    ]
    recorded = api.post("/v1/sales", json=sales, headers=WRITE)
    assert recorded.status_code == 200, recorded.text
    assert recorded.json()["accepted"] == 1
    [rejected] = recorded.json()["rejected"]
    assert rejected["index"] == 1
    assert "the stored item BROKEN does not validate (colour: " in rejected["message"]
    assert rejected["message"].endswith("PUT /v1/items/BROKEN to replace it")
    demand = api.get("/v1/items/GOOD/demand", headers=auth(READ_KEY)).json()
    assert [bucket["units"] for bucket in demand["buckets"]] == [2]
    for method, path, body in (
        ("GET", "/v1/items/BROKEN", None),
        ("PUT", "/v1/items/BROKEN/inventory", {"inventory": 3}),
        ("GET", "/v1/items/BROKEN/demand", None),
    ):
        answer = api.request(method, path, json=body, headers=auth(WRITE_KEY))
        assert answer.status_code == 409, (path, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert "colour" in answer.json()["detail"]
    repriced = api.post("/v1/admin/reprice", json={"skus": ["GOOD", "BROKEN"]}, headers=ADMIN)
    assert repriced.json() == {"marked_dirty": 1, "unknown": [], "invalid": ["BROKEN"]}
    # The runbook's fix: PUT the item again.
    _put(api, "BROKEN")
    assert api.get("/v1/items/BROKEN", headers=auth(READ_KEY)).status_code == 200


def test_demand_shows_the_signals_and_the_buckets(api: httpx.Client) -> None:
    _put(api)
    assert api.put("/v1/items/SKU-1/inventory", json={"inventory": 20}, headers=WRITE).is_success
    now = datetime.now(UTC)
    sales = [("a", 3, "1.00", now - timedelta(days=1))]
    sales += [("b", 1, "0.05", now), ("c", 1, "0.20", now), ("c", 1, "0.20", now)]
    events = [
        {"id": id_, "sku": "SKU-1", "quantity": units, "unit_price": price, "ts": at.isoformat()}
        for id_, units, price, at in sales
    ]
    assert api.post("/v1/sales", json=events, headers=WRITE).json()["duplicates"] == [3]

    before = today_share(datetime.now(UTC))
    response = api.get("/v1/items/SKU-1/demand", headers=auth(READ_KEY))
    after = today_share(datetime.now(UTC))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["currency"], body["resolution"]) == ("USD", "day")
    # On sale since yesterday: 5 units over yesterday and the hours begun today (an hour
    # may begin during the request), in either window.
    days = {5 / (1 + before), 5 / (1 + after)}
    assert any(body["velocity_7d"] == pytest.approx(v) for v in days)
    assert any(body["velocity_28d"] == pytest.approx(v) for v in days)
    assert body["velocity_ratio"] == pytest.approx(1.0)
    assert body["sell_through"] == pytest.approx(5 / 25)
    assert body["days_of_supply"] > 0
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    # Money as exact strings; 0.25 over 2 units is 0.125, rounded half up to 0.13.
    assert body["buckets"] == [
        {
            "start": (day_start - timedelta(days=1)).isoformat().replace("+00:00", "Z"),
            "units": 3,
            "currency": "USD",
            "revenue": "3.00",
            "average_price": "1.00",
            "inventory": None,
        },
        {
            "start": day_start.isoformat().replace("+00:00", "Z"),
            "units": 2,
            "currency": "USD",
            "revenue": "0.25",
            "average_price": "0.13",
            "inventory": 20,
        },
    ]

    hours = api.get("/v1/items/SKU-1/demand?resolution=hour", headers=auth(READ_KEY)).json()
    assert [(b["units"], b["revenue"]) for b in hours["buckets"]] == [(3, "3.00"), (2, "0.25")]
    assert hours["buckets"][-1]["start"].startswith(now.strftime("%Y-%m-%dT%H:00:00"))
    assert hours["velocity_7d"] == body["velocity_7d"]  # the signals read the day buckets

    bad = api.get("/v1/items/SKU-1/demand?resolution=week", headers=auth(READ_KEY))
    assert bad.status_code == 422
    missing = api.get("/v1/items/NONE/demand", headers=auth(READ_KEY))
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert api.get("/v1/items/SKU-1/demand").status_code == 401


def test_demand_buckets_say_the_currency_their_revenue_was_recorded_in(api: httpx.Client) -> None:
    _put(api, currency="USD")
    now = datetime.now(UTC)
    two_days_ago, yesterday = now - timedelta(days=2), now - timedelta(days=1)

    def sell(id_: str, price: str, at: datetime) -> None:
        event = {"id": id_, "sku": "SKU-1", "quantity": 1, "unit_price": price}
        event["ts"] = at.isoformat()
        assert api.post("/v1/sales", json=[event], headers=WRITE).json()["accepted"] == 1

    sell("usd-1", "10.00", two_days_ago)
    sell("usd-2", "10.00", now)
    _put(api, currency="EUR")
    sell("eur-1", "9.00", now)  # today now holds dollars and euros
    sell("eur-2", "9.00", yesterday)  # a late event: yesterday had no dollars, so euros
    sell("eur-3", "9.00", two_days_ago)  # a late event in a day of dollars

    body = api.get("/v1/items/SKU-1/demand", headers=auth(READ_KEY)).json()
    assert body["currency"] == "EUR"
    assert [(b["units"], b["currency"], b["revenue"]) for b in body["buckets"]] == [
        (2, None, None),  # two days ago: dollars, then a late sale in euros
        (1, "EUR", "9.00"),  # yesterday: only a late sale, in euros
        (2, None, None),  # today: the change fell within it
    ]


def test_observations_are_gated_and_listed(api: httpx.Client) -> None:
    _put(api)
    now = datetime.now(UTC)

    def observation(**changes: object) -> dict[str, object]:
        return {
            "sku": "SKU-1",
            "competitor": "megamart",
            "price": "45.00",
            "currency": "USD",
            "observed_at": now.isoformat(),
            "url": "https://megamart.example/p/1",
            **changes,
        }

    batch = [
        observation(),
        observation(competitor="old", observed_at=(now - timedelta(days=8)).isoformat()),
        observation(competitor="euro", currency="EUR"),
        observation(competitor="future", observed_at=(now + timedelta(hours=1)).isoformat()),
        observation(competitor="zero", price="0"),
        observation(sku="UNKNOWN"),
        observation(competitor="yen", currency="JPY", price="45.5"),
    ]
    response = api.post("/v1/observations", json=batch, headers=WRITE)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["quarantined"], body["rejected"]) == (1, 4, 2)
    statuses = [(r["competitor"], r["status"]) for r in body["results"]]
    assert statuses[0] == ("megamart", "accepted")
    listed = api.get("/v1/items/SKU-1/competitors", headers=auth(READ_KEY)).json()["offers"]
    by_name = {offer["competitor"]: offer for offer in listed}
    assert by_name["megamart"]["status"] == "accepted"
    assert by_name["megamart"]["price"] == "45.00"
    assert by_name["old"]["reason"] == "older than 7 days"
    assert by_name["old"]["age_seconds"] >= 8 * 86400
    assert "EUR" in by_name["euro"]["reason"]
    assert api.get("/v1/items/NONE/competitors", headers=auth(READ_KEY)).status_code == 404


class TestTheMarketGate:
    """With the competitors declared: one of them is our own outlet."""

    @pytest.fixture
    def rules_dir(self, tmp_path: Path) -> Path:
        folder = tmp_path / "rules"
        folder.mkdir()
        (folder / "rules.yaml").write_text(RULES)
        (folder / "competitors.yaml").write_text(COMPETITORS)
        return folder

    def test_observations_pass_the_crawlers_market_gate(self, api: httpx.Client) -> None:
        _put(api)
        now = datetime.now(UTC)

        def post(competitor: str, price: str) -> dict[str, object]:
            entry = {
                "sku": "SKU-1",
                "competitor": competitor,
                "price": price,
                "currency": "USD",
                "observed_at": now.isoformat(),
            }
            response = api.post("/v1/observations", json=[entry], headers=WRITE)
            assert response.status_code == 200, response.text
            result: dict[str, object] = response.json()["results"][0]
            return result

        assert post("megamart", "45.00")["status"] == "accepted"
        held = post("megamart", "4.50")  # a sudden -90%
        assert held["status"] == "quarantined"
        assert str(held["reason"]).startswith("outlier: ")
        listed = api.get("/v1/items/SKU-1/competitors", headers=auth(READ_KEY)).json()["offers"]
        [megamart] = [offer for offer in listed if offer["competitor"] == "megamart"]
        assert (megamart["price"], megamart["last_accepted_price"]) == ("4.50", "45.00")
        assert post("megamart", "4.50")["status"] == "accepted"  # confirmed
        own = post("our_outlet", "44.00")
        assert own["status"] == "quarantined"
        assert "own" in str(own["reason"])

    def test_every_observation_received_can_be_read_back_page_by_page(
        self, api: httpx.Client
    ) -> None:
        _put(api)
        now = datetime.now(UTC)
        sent = [("megamart", "45.00"), ("megamart", "4.50"), ("acme", "44.00")]
        sent += [("megamart", "4.50")]
        for competitor, price in sent:
            entry = {"sku": "SKU-1", "competitor": competitor, "price": price, "currency": "USD"}
            entry["observed_at"] = now.isoformat()
            assert api.post("/v1/observations", json=[entry], headers=WRITE).is_success

        url = "/v1/items/SKU-1/competitors/history"
        body = api.get(url, headers=auth(READ_KEY)).json()
        seen = [(o["competitor"], o["price"], o["status"]) for o in body["observations"]]
        assert seen == [
            ("megamart", "4.50", "accepted"),  # confirmed
            ("acme", "44.00", "accepted"),
            ("megamart", "4.50", "quarantined"),
            ("megamart", "45.00", "accepted"),
        ]
        assert body["next_cursor"] is None
        assert body["observations"][2]["reason"].startswith("outlier: ")
        assert body["observations"][0]["source"] == "feed"

        first = api.get(url, params={"competitor": "megamart", "limit": 2}, headers=auth(READ_KEY))
        page = first.json()
        assert [o["price"] for o in page["observations"]] == ["4.50", "4.50"]
        rest = api.get(
            url,
            params={"competitor": "megamart", "limit": 2, "cursor": page["next_cursor"]},
            headers=auth(READ_KEY),
        ).json()
        assert [o["price"] for o in rest["observations"]] == ["45.00"]
        assert rest["next_cursor"] is None

        later = (now + timedelta(minutes=5)).isoformat()
        empty = api.get(url, params={"since": later}, headers=auth(READ_KEY)).json()
        assert empty["observations"] == []
        unknown = api.get("/v1/items/NO-SUCH/competitors/history", headers=auth(READ_KEY))
        assert unknown.status_code == 404
        assert unknown.headers["content-type"] == "application/problem+json"
        for cursor in ("abc", f"{2**64}-0"):
            bad = api.get(url, params={"cursor": cursor}, headers=auth(READ_KEY))
            assert bad.status_code == 422
        first_ever = api.get(url, params={"cursor": "0-0"}, headers=auth(READ_KEY)).json()
        assert first_ever["observations"] == []
        naive = api.get(url, params={"since": "2026-11-27T00:00:00"}, headers=auth(READ_KEY))
        assert naive.status_code == 422
