"""Redis stopped in the middle of a run under load: stale lookups for a bounded time,
503s for the rest, and recovery without restarting the API once Redis is back."""

from __future__ import annotations

import random
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from pricing_service.store import keys
from pricing_service.store.embedded import EmbeddedRedis
from tests.api.conftest import WRITE_KEY, auth
from tests.reliability.conftest import ServeApi, price_catalogue, wait_for

PROBLEM = "application/problem+json"
STALE_SERVE_SECONDS = 2.0
CACHED = [f"SKU-{i}" for i in range(10)]
NOT_CACHED = [f"SKU-{i}" for i in range(10, 20)]
#: An upper bound on the load, so that a stuck test still ends.
MAX_LOAD_REQUESTS = 100_000


@dataclass
class LookupLoad:
    """Lookups of cached SKUs from a thread, one after another, until stopped."""

    base_url: str
    stop: threading.Event = field(default_factory=threading.Event)
    responses: list[httpx.Response] = field(default_factory=list)

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            for count in range(MAX_LOAD_REQUESTS):
                if self.stop.is_set():
                    return
                if count % 10:
                    response = client.get(f"/v1/prices/{random.choice(CACHED)}")
                else:
                    response = client.post("/v1/prices/lookup", json={"skus": CACHED})
                self.responses.append(response)


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM
    assert int(response.headers["retry-after"]) > 0
    body = response.json()
    assert body["status"] == 503
    assert body["type"] == "urn:pricing:problem:store-unavailable"


def _is_stale(response: httpx.Response) -> bool:
    return response.status_code == 200 and response.headers.get("pricing-stale") == "true"


def _metric(api: httpx.Client, name: str) -> float:
    for line in api.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


def _price(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    price: str = response.json()["price"]
    return price


def _publish_while_the_api_cannot_see(server: EmbeddedRedis, rules_dir: Path, tmp: Path) -> None:
    """Change a price and trim the changes stream on a copy of the stopped Redis's data,
    then put the copy in its place: changes the API's cache never hears about, like
    writes it missed during a network partition."""
    aof = server.data_dir / "appendonlydir"
    elsewhere = EmbeddedRedis(tmp / "elsewhere", persistent=True)
    shutil.copytree(aof, elsewhere.data_dir / "appendonlydir")
    elsewhere.start()
    try:
        price_catalogue(elsewhere.url, rules_dir, {"SKU-0": "70.00"})
        client = redis.Redis.from_url(elsewhere.url)
        try:
            client.xtrim(keys.CHANGES_STREAM, maxlen=0)
        finally:
            client.close()
    finally:
        elsewhere.stop()
    shutil.rmtree(aof)
    shutil.copytree(elsewhere.data_dir / "appendonlydir", aof)


def test_lookups_ride_out_a_redis_outage_and_everything_recovers(
    serve_api: ServeApi, redis_server: EmbeddedRedis, rules_dir: Path, tmp_path: Path
) -> None:
    price_catalogue(redis_server.url, rules_dir, dict.fromkeys(CACHED + NOT_CACHED, "50.00"))
    api = serve_api(stale_serve_seconds=STALE_SERVE_SECONDS)
    warm = api.post("/v1/prices/lookup", json={"skus": CACHED})
    assert all(result["found"] for result in warm.json()["results"])
    assert "pricing-stale" not in warm.headers

    load = LookupLoad(str(api.base_url))
    loader = threading.Thread(target=load.run, daemon=True)
    loader.start()
    try:
        wait_for(lambda: len(load.responses) >= 20, "lookups under load")
        redis_server.stop()

        # Reads: cached prices keep coming, marked stale, in the body and the headers.
        wait_for(lambda: _is_stale(api.get("/v1/prices/SKU-0")), "a stale answer")
        single = api.get("/v1/prices/SKU-1")
        batch = api.post("/v1/prices/lookup", json={"skus": CACHED})
        for response in (single, batch):
            assert _is_stale(response), response.text
            assert int(response.headers["age"]) >= 0
        assert single.json()["stale"] is True
        assert single.json()["price"] == "50.00"
        assert all(result["price"]["stale"] for result in batch.json()["results"])
        # What is not cached cannot be answered: a lookup of it is a 503, and a batch
        # answers what it can (a listing page keeps its other prices).
        _assert_unavailable(api.get(f"/v1/prices/{NOT_CACHED[0]}"))
        mixed = api.post("/v1/prices/lookup", json={"skus": ["SKU-0", NOT_CACHED[1]]})
        assert mixed.status_code == 200, mixed.text
        assert _is_stale(mixed)
        cached, uncached = mixed.json()["results"]
        assert (cached["found"], cached["price"]["stale"]) == (True, True)
        assert (uncached["found"], uncached["error"]) == (
            False,
            "not cached, and the price store is unreachable: retry",
        )
        _assert_unavailable(api.post("/v1/prices/lookup", json={"skus": NOT_CACHED[:2]}))
        assert _metric(api, "pricing_schedule_cache_staleness_seconds") > 0
        assert api.get("/readyz").json()["status"] == "stale"  # kept in rotation
        assert _metric(api, "pricing_redis_last_contact_age_seconds") > 0

        # Writes: refused with a retryable problem.
        writer = auth(WRITE_KEY)
        new_item = {"currency": "USD", "list_price": "9.99"}
        _assert_unavailable(api.put("/v1/items/NEW-1", json=new_item, headers=writer))
        _assert_unavailable(
            api.put("/v1/items/SKU-0/inventory", json={"inventory": 5}, headers=writer)
        )
        sale = {"sku": "SKU-0", "quantity": 1, "unit_price": "50.00", "ts": "2026-01-01T00:00:00Z"}
        _assert_unavailable(api.post("/v1/sales", json=[sale], headers=writer))

        _publish_while_the_api_cannot_see(redis_server, rules_dir, tmp_path)

        # Past stale_serve_seconds, cached prices are no longer served.
        wait_for(
            lambda: api.get("/v1/prices/SKU-1").status_code == 503,
            "stale answers to end",
            timeout=STALE_SERVE_SECONDS + 10,
        )
        _assert_unavailable(api.get("/v1/prices/SKU-1"))
        _assert_unavailable(api.post("/v1/prices/lookup", json={"skus": CACHED}))
        assert api.get("/readyz").status_code == 503

        redis_server.start()

        # Back without a restart: fresh answers, and none from before the outage.
        def fresh() -> bool:
            response = api.get("/v1/prices/SKU-0")
            return response.status_code == 200 and response.json()["stale"] is False

        wait_for(fresh, "fresh answers after Redis is back")
        assert "pricing-stale" not in api.get("/v1/prices/SKU-0").headers
        assert api.get("/readyz").json()["status"] == "ready"
        assert _price(api.get("/v1/prices/SKU-0")) == "70.00"  # the change it never heard of
        created = api.put("/v1/items/NEW-1", json=new_item, headers=writer)
        assert created.status_code == 201, created.text
        assert _price(api.get("/v1/prices/SKU-2")) == "50.00"  # cached again
        price_catalogue(redis_server.url, rules_dir, {"SKU-2": "80.00"})
        wait_for(lambda: _price(api.get("/v1/prices/SKU-2")) == "80.00", "a new publish to show")
        assert _metric(api, "pricing_schedule_cache_staleness_seconds") == 0
        wait_for(lambda: len(load.responses) >= 20 + 10, "lookups after recovery")
    finally:
        load.stop.set()
        loader.join(timeout=20)

    # Under load, every answer was a price (stale ones marked so) or a retryable 503.
    statuses = {response.status_code for response in load.responses}
    assert statuses <= {200, 503}, statuses
    for response in load.responses:
        if response.status_code == 503:
            _assert_unavailable(response)
        elif response.headers.get("pricing-stale") == "true":
            assert "age" in response.headers
        else:
            assert 'stale":true' not in response.text
    assert any(_is_stale(response) for response in load.responses)
    assert 503 in statuses
    assert not _is_stale(load.responses[-1])
