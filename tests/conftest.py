"""Shared fixtures: a real Redis for every test that needs one.

``REDIS_URL`` when given (its database is WIPED before each test: point it at a scratch
database), else an embedded ``redis-server`` the tests start themselves.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis

from pricing_service.store.embedded import EmbeddedRedis
from pricing_service.store.store import Store


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("REDIS_URL")
    if configured:
        yield configured
        return
    server = EmbeddedRedis(Path(tmp_path_factory.mktemp("redis")), persistent=False)
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def clean_redis(redis_url: str) -> str:
    client = redis.Redis.from_url(redis_url)
    try:
        client.flushdb()
    finally:
        client.close()
    return redis_url


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def store(clean_redis: str) -> AsyncIterator[Store]:
    instance = Store.from_url(clean_redis, retention=timedelta(days=35))
    try:
        yield instance
    finally:
        await instance.close()
