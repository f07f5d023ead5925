"""Real processes for the reliability tests: a Redis of their own that they stop and
start again (persistent, so its data survives), the API in a real uvicorn, and the
``pricing`` command in subprocesses."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from pricing_service.api import create_app
from pricing_service.engine.inputs import ItemFacts
from pricing_service.repricer.full import current_instant
from pricing_service.repricer.pricer import Pricer
from pricing_service.settings import Settings
from pricing_service.store import keys
from pricing_service.store.embedded import EmbeddedRedis
from pricing_service.store.store import Store
from tests.api.conftest import API_KEYS
from tests.repricer.helpers import compile_rules, item, write_rules
from tests.servers import ThreadedServers

#: The ``pricing`` entry point of the environment running the tests.
PRICING_COMMAND = Path(sys.executable).with_name("pricing")


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis", persistent=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_client(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    return write_rules(tmp_path / "rules")


ServeApi = Callable[..., httpx.Client]


@pytest.fixture
def serve_api(redis_server: EmbeddedRedis, rules_dir: Path, tmp_path: Path) -> Iterator[ServeApi]:
    """Starts the API with settings overrides; returns a client for it."""
    servers = ThreadedServers()

    def serve(**overrides: Any) -> httpx.Client:
        settings = Settings(
            **{
                "redis_url": redis_server.url,
                "rules_dir": rules_dir,
                "data_dir": tmp_path / "data",
                "api_keys": API_KEYS,
                "public_reads": True,
                **overrides,
            }
        )
        return servers.start(create_app(settings))

    yield serve
    servers.stop_all()


def price_catalogue(redis_url: str, rules_dir: Path, list_prices: dict[str, str]) -> None:
    """Store items with these list prices and publish their prices, as the repricer does."""

    async def run() -> None:
        store = Store.from_url(redis_url, retention=timedelta(days=35))
        try:
            await store.put_items([item(sku, price) for sku, price in list_prices.items()])
            pricer = Pricer(store, boundary_lead_seconds=60)
            await pricer.price(compile_rules(rules_dir), sorted(list_prices), current_instant())
        finally:
            await store.close()

    asyncio.run(run())


def store_catalogue(client: redis.Redis, items: Sequence[ItemFacts]) -> None:
    """Items in the catalogue, queued for nothing (as if loaded before any repricer)."""
    with client.pipeline(transaction=False) as pipe:
        for facts in items:
            pipe.set(keys.item(facts.sku), facts.model_dump_json(exclude_defaults=True))
            pipe.sadd(keys.SKU_INDEX, facts.sku)
        pipe.execute()


def stop_all(processes: Sequence[subprocess.Popen[bytes]], timeout: float = 30.0) -> None:
    """SIGTERM whichever of ``processes`` still run, then SIGKILL any that outlive
    ``timeout``. SIGTERM first: ``pricing serve --workers N`` stops its workers on it, where
    SIGKILL would leave them running, orphaned."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def start_pricing(
    arguments: Sequence[str], redis_url: str, rules_dir: Path, log: Path, **env: str
) -> subprocess.Popen[bytes]:
    """``pricing ARGUMENTS...`` in a subprocess, its output in ``log``."""
    environment = {
        **os.environ,
        "REDIS_URL": redis_url,
        "PRICING_RULES_DIR": str(rules_dir),
        "PRICING_REPRICER_METRICS_PORT": "0",
        **env,
    }
    with log.open("ab") as output:
        return subprocess.Popen(
            [str(PRICING_COMMAND), *arguments],
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
