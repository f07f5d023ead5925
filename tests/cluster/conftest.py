"""A real local Redis Cluster of 3 masters, from the same redis-server binary the other
tests use; ``TEST_REDIS_CLUSTER_URL`` points the tests at an existing cluster instead
(wiped before each test). Not ``REDIS_CLUSTER_URL``: the service's settings read that one,
and would take every other test's app to the cluster."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.cluster import RedisCluster as SyncRedisCluster

from pricing_service.store.embedded import EmbeddedCluster
from pricing_service.store.store import Store
from tests.crawlers.conftest import competitors, crawler_settings, fetcher, site  # noqa: F401


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("TEST_REDIS_CLUSTER_URL")
    if configured:
        yield configured
        return
    cluster = EmbeddedCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture
def clean_cluster(redis_cluster_url: str) -> str:
    client = SyncRedisCluster.from_url(redis_cluster_url)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_cluster_url


@pytest.fixture
async def store(clean_cluster: str) -> AsyncIterator[Store]:
    """The store tests' store, on the cluster."""
    instance = Store.from_url(clean_cluster, retention=timedelta(days=35), cluster=True)
    assert instance.cluster
    try:
        yield instance
    finally:
        await instance.close()


@pytest.fixture
async def redis_client(clean_cluster: str) -> AsyncIterator[aioredis.Redis]:
    """The crawler tests' client, on the cluster."""
    client = RedisCluster.from_url(clean_cluster)
    try:
        yield client  # type: ignore[misc]  # the cluster client takes the same commands
    finally:
        await client.aclose()
