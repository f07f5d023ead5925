"""Scripts on a cluster: redis-py sends none to a cluster pipeline, and a restarted shard
forgets them; the store loads them again and writes anyway."""

from __future__ import annotations

import pytest
from redis.cluster import RedisCluster as SyncRedisCluster

from pricing_service.engine.inputs import ItemFacts
from pricing_service.repricer.inputs import input_keys
from pricing_service.store import keys
from pricing_service.store.store import PUBLISH_PIPELINE, Store

pytestmark = pytest.mark.anyio


async def test_writes_go_through_after_every_shard_lost_its_scripts(
    store: Store, clean_cluster: str
) -> None:
    await store.put_items([ItemFacts(sku="A", currency="USD", inventory=3)])
    client = SyncRedisCluster.from_url(clean_cluster)
    try:
        client.script_flush()  # what a restarted shard looks like
    finally:
        client.close()
    assert await store.put_items([ItemFacts(sku="B", currency="USD", inventory=4)]) == [True]
    updated = await store.set_inventory("A", 9)
    assert updated is not None
    assert updated.inventory == 9
    assert await store.delete_item("B")


async def test_read_inputs_spans_several_pipelines_in_order(store: Store) -> None:
    skus = [f"SKU-{n}" for n in range(PUBLISH_PIPELINE + 3)]
    for sku in skus:
        await store.redis.set(keys.item(sku), sku)
    await store.redis.hset(keys.offers(skus[-1]), "rival", "{}")
    rows = await store.read_inputs([input_keys(sku, ["", "app"]) for sku in skus])
    assert [row[0] for row in rows] == [sku.encode() for sku in skus]
    assert rows[-1] == [skus[-1].encode(), [b"rival", b"{}"], None, [], None, None, None]
