"""A repricer started while Redis is unreachable (a pod restarted during an outage) waits
for it instead of exiting, and prices once it is back."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
import redis

from pricing_service.store import keys
from pricing_service.store.embedded import EmbeddedRedis
from tests.observability.conftest import free_port, get_when_up
from tests.reliability.conftest import (
    PRICING_COMMAND,
    start_pricing,
    stop_all,
    store_catalogue,
    wait_for,
)
from tests.repricer.helpers import item

pytestmark = pytest.mark.skipif(
    not PRICING_COMMAND.exists(), reason="the pricing command is not installed"
)


def test_a_repricer_started_during_an_outage_waits_for_redis(
    rules_dir: Path, tmp_path: Path
) -> None:
    server = EmbeddedRedis(tmp_path / "redis", persistent=True)
    server.start()  # a catalogue in place, then the outage
    client = redis.Redis.from_url(server.url)
    store_catalogue(client, [item("SKU-1")])
    client.close()
    server.stop()
    port = free_port()
    log = tmp_path / "repricer.log"
    repricer = start_pricing(
        ["repricer"], server.url, rules_dir, log, PRICING_REPRICER_METRICS_PORT=str(port)
    )
    try:
        # Its metrics answer while it waits, so the outage shows on the dashboards.
        metrics = get_when_up(f"http://127.0.0.1:{port}/metrics").text
        wait_for(
            lambda: (
                'operation="repricer_start"' in httpx.get(f"http://127.0.0.1:{port}/metrics").text
            ),
            "a counted failed start",
        )
        time.sleep(1)
        assert repricer.poll() is None, log.read_text()
        assert "pricing_redis_errors_total" in metrics
        server.start()
        client = redis.Redis.from_url(server.url)
        try:
            # Its first ruleset load queues the whole catalogue.
            wait_for(lambda: client.exists(keys.schedule("SKU-1", "")) == 1, "a price", 30)
        finally:
            client.close()
    finally:
        stop_all([repricer])
        server.stop()
    assert repricer.returncode == 0, log.read_text()
    assert "repricer start:" in log.read_text()
