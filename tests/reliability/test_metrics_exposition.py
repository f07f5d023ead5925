"""The API's /metrics, with the schedule cache's metrics in it, passes ``promtool check
metrics`` (Prometheus's own linter) when promtool is installed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pricing_service.store.embedded import EmbeddedRedis
from tests.reliability.conftest import ServeApi, price_catalogue

CACHE_METRICS = (
    "pricing_schedule_cache_hits_total",
    "pricing_schedule_cache_misses_total",
    "pricing_schedule_cache_entries",
    "pricing_schedule_cache_staleness_seconds",
    "pricing_redis_last_contact_age_seconds",
)


def test_the_metrics_exposition_passes_promtool(
    serve_api: ServeApi, redis_server: EmbeddedRedis, rules_dir: Path
) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not on PATH")
    price_catalogue(redis_server.url, rules_dir, {"SKU-1": "10.00"})
    api = serve_api()
    for _ in range(2):  # a miss, then a hit
        assert api.get("/v1/prices/SKU-1").status_code == 200
    assert api.get("/v1/prices/NOPE").status_code == 404
    exposition = api.get("/metrics")
    assert exposition.status_code == 200
    for name in CACHE_METRICS:
        assert f"\n{name} " in exposition.text, name
    checked = subprocess.run(
        [promtool, "check", "metrics"],
        input=exposition.content,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, (checked.stdout + checked.stderr).decode()
