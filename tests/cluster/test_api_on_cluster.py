"""The API served from a Redis Cluster of 3 masters: writes through the API, prices
published by the repricer's code, lookups (single, batch, history, decision) and the
cache's freshness through the changes stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from redis import Redis as SyncRedis

from pricing_service.api.app import create_app
from pricing_service.engine import CompiledRuleset
from pricing_service.repricer.full import reprice_skus
from pricing_service.repricer.pricer import Pricer
from pricing_service.rules.loader import load_ruleset
from pricing_service.settings import Settings
from pricing_service.store.embedded import MASTERS, EmbeddedCluster
from pricing_service.store.store import Store
from tests.api.conftest import ADMIN_KEY, API_KEYS, READ_KEY, RULES, WRITE_KEY, auth
from tests.servers import ThreadedServers

SKUS = [f"SKU-{n}" for n in range(12)]  # spread over the three shards


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "rules.yaml").write_text(RULES)
    (folder / "competitors.yaml").write_text(
        "competitors:\n  megamart:\n    name: MegaMart\n    domains: [megamart.example]\n"
    )
    return folder


@pytest.fixture
def api(clean_cluster: str, rules_dir: Path, tmp_path: Path) -> Iterator[httpx.Client]:
    settings = Settings(
        redis_cluster_url=clean_cluster,
        rules_dir=rules_dir,
        data_dir=tmp_path / "data",
        api_keys=API_KEYS,
    )
    servers = ThreadedServers()
    try:
        yield servers.start(create_app(settings))
    finally:
        servers.stop_all()


def _reprice(cluster_url: str, rules_dir: Path, skus: list[str], partitions: int = 1) -> int:
    async def run() -> int:
        store = Store.from_url(
            cluster_url, retention=timedelta(days=35), cluster=True, queue_partitions=partitions
        )
        try:
            compiled = CompiledRuleset(load_ruleset(rules_dir))
            counts = await reprice_skus(
                Pricer(store, boundary_lead_seconds=60), compiled, skus, datetime.now(UTC)
            )
            return counts.published
        finally:
            await store.close()

    return asyncio.run(run())


def _eventually(check: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not within the time limit"
        time.sleep(0.05)


def test_the_api_writes_prices_and_explains_on_a_cluster(
    api: httpx.Client, clean_cluster: str, rules_dir: Path
) -> None:
    write, read = auth(WRITE_KEY), auth(READ_KEY)
    items = [{"sku": sku, "currency": "USD", "list_price": "50.00", "inventory": 5} for sku in SKUS]
    bulk = api.post("/v1/items/bulk", json=items, headers=write)
    assert bulk.status_code == 200, bulk.text
    now = datetime.now(UTC).isoformat()
    sales = [{"sku": sku, "quantity": 1, "unit_price": "50.00", "ts": now} for sku in SKUS]
    assert api.post("/v1/sales", json=sales, headers=write).json()["accepted"] == len(SKUS)
    assert _reprice(clean_cluster, rules_dir, SKUS) == 2 * len(SKUS)  # default and app

    prices = {sku: api.get(f"/v1/prices/{sku}", headers=read).json() for sku in SKUS}
    assert {body["price"] for body in prices.values()} <= {"50.00", "40.00"}
    batch = api.post("/v1/prices/lookup", json={"skus": SKUS}, headers=read)
    assert batch.status_code == 200, batch.text
    found = [result["price"]["price"] for result in batch.json()["results"]]
    assert found == [prices[sku]["price"] for sku in SKUS]
    decision = api.get(f"/v1/decisions/{prices['SKU-3']['decision_id']}", headers=read)
    assert decision.status_code == 200, decision.text
    assert api.get("/v1/prices/SKU-3/history", headers=read).status_code == 200
    listing = {"url": "https://megamart.example/p/3", "frequency": "6h"}
    assert api.put("/v1/listings/SKU-3/megamart", json=listing, headers=write).status_code == 201
    assert len(api.get("/v1/items/SKU-3/listings", headers=read).json()) == 1
    assert api.delete("/v1/listings/SKU-3/megamart", headers=write).status_code == 204
    observation = {
        "sku": "SKU-3",
        "competitor": "megamart",
        "price": "45.00",
        "currency": "USD",
        "observed_at": now,
    }
    observed = api.post("/v1/observations", json=[observation], headers=write).json()
    assert observed["accepted"] == 1
    override = {"price": "44.00", "until": "2099-01-01T00:00:00Z", "reason": "launch"}
    assert api.put("/v1/overrides/SKU-4", json=override, headers=auth(ADMIN_KEY)).status_code == 200
    assert api.delete("/v1/overrides/SKU-4", headers=auth(ADMIN_KEY)).status_code == 204

    # A new list price, repriced: every API cache hears of it through the changes stream.
    changed = {"sku": "SKU-7", "currency": "USD", "list_price": "60.00"}
    assert api.put("/v1/items/SKU-7", json=changed, headers=write).status_code == 200
    assert _reprice(clean_cluster, rules_dir, ["SKU-7"]) == 2
    _eventually(
        lambda: api.get("/v1/prices/SKU-7", headers=read).json()["price"] in ("60.00", "48.00")
    )
    assert api.delete("/v1/items/SKU-7", headers=write).status_code == 204
    _eventually(lambda: api.get("/v1/prices/SKU-7", headers=read).status_code == 404)


def test_an_unreachable_cluster_answers_503_problems(rules_dir: Path, tmp_path: Path) -> None:
    settings = Settings(
        redis_cluster_url="redis://127.0.0.1:1",  # nothing listens there
        rules_dir=rules_dir,
        data_dir=tmp_path / "data",
        api_keys=API_KEYS,
    )
    servers = ThreadedServers()
    try:
        api = servers.start(create_app(settings))
        lookup = api.get("/v1/prices/SKU-1", headers=auth(READ_KEY))
        write = api.put("/v1/items/SKU-1", json={"currency": "USD"}, headers=auth(WRITE_KEY))
    finally:
        servers.stop_all()
    for response in (lookup, write):
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
    assert write.headers["retry-after"]


def test_a_shard_down_answers_503_problems_not_500(rules_dir: Path, tmp_path: Path) -> None:
    """A master killed: once the others see it fail they answer CLUSTERDOWN, for their own
    slots too; the API says the store is unavailable, as it does when Redis is."""
    cluster = EmbeddedCluster(tmp_path / "cluster", node_timeout_ms=500)
    cluster.start()
    servers = ThreadedServers()
    try:
        settings = Settings(
            redis_cluster_url=cluster.url,
            rules_dir=rules_dir,
            data_dir=tmp_path / "data",
            api_keys=API_KEYS,
        )
        api = servers.start(create_app(settings))
        item = {"currency": "USD", "cost": "10.00"}
        assert api.put("/v1/items/SKU-1", json=item, headers=auth(WRITE_KEY)).status_code == 201
        cluster.kill_node(MASTERS - 1)
        survivor = SyncRedis(host="127.0.0.1", port=cluster.ports[0])
        _eventually(lambda: survivor.cluster("INFO")["cluster_state"] == "fail", timeout=20)
        survivor.close()
        write = api.put("/v1/items/SKU-1", json=item, headers=auth(WRITE_KEY))
        lookup = api.get("/v1/prices/SKU-2", headers=auth(READ_KEY))
    finally:
        servers.stop_all()
        cluster.stop()
    for response in (write, lookup):
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["type"].endswith("store-unavailable")
    assert write.headers["retry-after"]


def test_caches_follow_changes_partitioned_over_the_shards(
    clean_cluster: str, rules_dir: Path, tmp_path: Path
) -> None:
    """With 3 partitions the changes streams live on different shards: the cache keeps an
    XREAD in flight on each, and hears of every SKU's new price."""
    settings = Settings(
        redis_cluster_url=clean_cluster,
        rules_dir=rules_dir,
        data_dir=tmp_path / "data",
        api_keys=API_KEYS,
        queue_partitions=3,
    )
    servers = ThreadedServers()
    try:
        api = servers.start(create_app(settings))
        write, read = auth(WRITE_KEY), auth(READ_KEY)
        items = [{"sku": sku, "currency": "USD", "list_price": "50.00"} for sku in SKUS]
        assert api.post("/v1/items/bulk", json=items, headers=write).status_code == 200
        assert _reprice(clean_cluster, rules_dir, SKUS, partitions=3) == 2 * len(SKUS)
        for sku in SKUS:  # cached from here on
            assert api.get(f"/v1/prices/{sku}", headers=read).json()["price"] in ("50.00", "40.00")
        items = [{**body, "list_price": "60.00"} for body in items]
        assert api.post("/v1/items/bulk", json=items, headers=write).status_code == 200
        assert _reprice(clean_cluster, rules_dir, SKUS, partitions=3) == 2 * len(SKUS)
        _eventually(
            lambda: all(
                api.get(f"/v1/prices/{sku}", headers=read).json()["price"] in ("60.00", "48.00")
                for sku in SKUS
            )
        )
    finally:
        servers.stop_all()
