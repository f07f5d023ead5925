"""Competitor listings through the API: the same validation as `pricing listings import`."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import redis

from crawlers import keys
from crawlers.listings import parse_listing
from pricing_service.rules.loader import load_ruleset
from tests.api.conftest import ADMIN_KEY, READ_KEY, RULES, WRITE_KEY, ServeApp, auth

#: The crawl queue with the default single partition.
QUEUE = keys.CrawlQueue(0)

WRITE, READ = auth(WRITE_KEY), auth(READ_KEY)
COMPETITORS = """\
competitors:
  megamart:
    name: MegaMart
    domains: [megamart.example]
  shopright:
    name: ShopRight
    domains: [shopright.example, www.shopright.example]
"""


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """The API tests' rules, with two competitors declared."""
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "rules.yaml").write_text(RULES)
    (folder / "competitors.yaml").write_text(COMPETITORS)
    return folder


def _put(
    api: httpx.Client, sku: str, competitor: str, url: str, frequency: object = "6h"
) -> httpx.Response:
    body = {"url": url, "frequency": frequency}
    return api.put(f"/v1/listings/{sku}/{competitor}", json=body, headers=WRITE)


def test_listing_round_trip(api: httpx.Client, clean_redis: str) -> None:
    created = _put(api, "SKU-1", "megamart", "https://megamart.example/p/1", "1d12h")
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["sku"], body["competitor"], body["url"]) == (
        "SKU-1",
        "megamart",
        "https://megamart.example/p/1",
    )
    assert (body["frequency"], body["every_seconds"]) == ("1d12h", 129_600)
    assert body["next_crawl_at"] is not None  # a new listing is due at once

    crawled = redis.Redis.from_url(clean_redis)  # as if crawled: next in a day
    crawled.zadd(QUEUE.due, {"SKU-1|megamart": time.time() + 86_400})
    crawled.close()
    slower = _put(api, "SKU-1", "megamart", "https://megamart.example/p/1", "2d")
    assert slower.status_code == 200, slower.text
    tomorrow = slower.json()["next_crawl_at"]
    assert tomorrow > body["next_crawl_at"]  # a longer period keeps the due time
    replaced = _put(api, "SKU-1", "megamart", "https://www.megamart.example/p/1b", "30m")
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["next_crawl_at"] < tomorrow  # a corrected URL is due at once
    shopright = _put(api, "SKU-1", "shopright", "https://www.shopright.example/p/9")
    assert shopright.status_code == 201, shopright.text

    listed = api.get("/v1/items/SKU-1/listings", headers=READ)
    assert listed.status_code == 200, listed.text
    assert [(x["competitor"], x["url"], x["frequency"]) for x in listed.json()] == [
        ("megamart", "https://www.megamart.example/p/1b", "30m"),
        ("shopright", "https://www.shopright.example/p/9", "6h"),
    ]

    assert api.delete("/v1/listings/SKU-1/megamart", headers=WRITE).status_code == 204
    missing = api.delete("/v1/listings/SKU-1/megamart", headers=WRITE)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    remaining = api.get("/v1/items/SKU-1/listings", headers=READ).json()
    assert [x["competitor"] for x in remaining] == ["shopright"]
    assert api.get("/v1/items/OTHER/listings", headers=READ).json() == []

    # What the scheduler reads: the listing hash and the due set.
    client = redis.Redis.from_url(clean_redis)
    try:
        assert client.hget(keys.listings("SKU-1"), "megamart") is None
        assert client.hget(keys.listings("SKU-1"), "shopright") is not None
        due = {member.decode() for member in client.zrange(QUEUE.due, 0, -1)}
        assert due == {"SKU-1|shopright"}
    finally:
        client.close()


def test_invalid_listings_are_422_with_the_import_messages(
    api: httpx.Client, rules_dir: Path
) -> None:
    competitors = load_ruleset(rules_dir).competitors
    cases = [
        ("nobody", "https://megamart.example/p/1", "6h"),  # unknown competitor
        ("megamart", "https://elsewhere.example/p/1", "6h"),  # off the competitor's domains
        ("megamart", "https://megamart.example.evil.test/p", "6h"),  # lookalike host
        ("megamart", "https://megamart.example/p/1", "often"),  # not a duration
        ("megamart", "https://megamart.example/p/1", "30s"),  # more than once a minute
        ("megamart", "ftp://megamart.example/p/1", "6h"),  # not http(s)
    ]
    for competitor, url, frequency in cases:
        response = _put(api, "SKU-1", competitor, url, frequency)
        assert response.status_code == 422, (competitor, url, frequency)
        assert response.headers["content-type"] == "application/problem+json"
        values = {"sku": "SKU-1", "competitor": competitor, "url": url, "frequency": frequency}
        expected = parse_listing(values, competitors)
        assert isinstance(expected, str)
        assert response.json()["detail"] == expected  # word for word what the CSV import says
    assert "unknown competitor 'nobody'" in _put(api, "S", "nobody", "https://x.example/").text
    for body in ({"url": "https://megamart.example/p/1"}, {"url": "x", "frequency": "6h", "a": 1}):
        response = api.put("/v1/listings/SKU-1/megamart", json=body, headers=WRITE)
        assert response.status_code == 422, body
        assert response.headers["content-type"] == "application/problem+json"
    assert _put(api, "SKU-1", "megamart", "https://megamart.example/p", 3600).status_code == 422
    assert api.get("/v1/items/SKU-1/listings", headers=READ).json() == []


def test_listings_need_a_write_key_to_change_and_a_read_key_to_see(api: httpx.Client) -> None:
    url = "/v1/listings/SKU-1/megamart"
    body = {"url": "https://megamart.example/p/1", "frequency": "6h"}
    assert api.put(url, json=body).status_code == 401
    assert api.put(url, json=body, headers=READ).status_code == 403
    assert api.delete(url, headers=READ).status_code == 403
    assert api.get("/v1/items/SKU-1/listings").status_code == 401
    assert api.put(url, json=body, headers=auth(ADMIN_KEY)).status_code == 201
    assert api.get("/v1/items/SKU-1/listings", headers=READ).status_code == 200
    assert api.delete(url, headers=READ).status_code == 403
    assert api.delete(url, headers=auth(ADMIN_KEY)).status_code == 204


def test_without_competitors_in_the_rules_every_listing_is_refused(
    serve_app: ServeApp, rules_dir: Path
) -> None:
    (rules_dir / "competitors.yaml").unlink()
    api = serve_app()
    response = _put(api, "SKU-1", "megamart", "https://megamart.example/p/1")
    assert response.status_code == 422
    assert response.json()["detail"] == "unknown competitor 'megamart' (known: none)"
