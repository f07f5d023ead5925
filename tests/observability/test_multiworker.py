"""``pricing serve --workers 2``: one /metrics for both workers, whose counts add up, JSON
logs with request ids, and a clean exit on SIGTERM."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.observability.conftest import (
    StartPricing,
    check_with_promtool,
    free_port,
    get_when_up,
    only_this_roles_gauges,
    stop,
)
from tests.reliability.conftest import price_catalogue

ROUTE = "/v1/prices/{sku}"
BATCH = 100


def _requests_per_process(metrics_dir: Path) -> dict[int, float]:
    """Price lookups each worker has counted, from its own files."""
    counted: dict[int, float] = {}
    for path in metrics_dir.glob("histogram_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        for metric in MultiProcessCollector.merge([str(path)], accumulate=True):  # type: ignore[no-untyped-call]
            for sample in metric.samples:
                if sample.name.endswith("_count") and sample.labels.get("route") == ROUTE:
                    counted[pid] = counted.get(pid, 0.0) + sample.value
    return counted


def _lookup(base: str, number: int) -> None:
    # A connection each, so that the kernel hands them to either worker.
    response = httpx.get(
        f"{base}/v1/prices/SKU-1",
        headers={"X-Request-ID": f"lookup-{number}", "Connection": "close"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"] == f"lookup-{number}"


def _total(exposition: str, family: str, **labels: str) -> float:
    return sum(
        sample.value
        for metric in text_string_to_metric_families(exposition)
        for sample in metric.samples
        if sample.name == family and labels.items() <= sample.labels.items()
    )


def test_two_workers_share_one_metrics_exposition(
    start: StartPricing, clean_redis: str, rules_dir: Path, tmp_path: Path
) -> None:
    price_catalogue(clean_redis, rules_dir, {"SKU-1": "10.00"})
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"left over by an earlier run")
    port = free_port()
    server = start(
        ["serve", "--workers", "2", "--port", str(port)],
        "serve.log",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        PRICING_PUBLIC_READS="true",
        PRICING_ACCESS_LOG="true",
    )
    base = f"http://127.0.0.1:{port}"
    get_when_up(f"{base}/readyz")
    sent = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        while len(_requests_per_process(metrics_dir)) < 2 and sent < 30 * BATCH:
            list(pool.map(lambda number: _lookup(base, number), range(sent, sent + BATCH)))
            sent += BATCH
    per_process = _requests_per_process(metrics_dir)
    assert len(per_process) == 2, f"all {sent} lookups went to one worker"
    assert sum(per_process.values()) == sent

    scraped = httpx.get(f"{base}/metrics", timeout=10)
    assert scraped.status_code == 200
    exposition = scraped.text
    assert _total(exposition, "pricing_http_request_duration_seconds_count", route=ROUTE) == sent
    assert _total(exposition, "pricing_lookups_total") == sent
    # Each worker's gauge combined into one series (not one per process, labelled by pid).
    [entries] = [
        sample
        for metric in text_string_to_metric_families(exposition)
        for sample in metric.samples
        if sample.name == "pricing_schedule_cache_entries"
    ]
    assert entries.labels == {}
    check_with_promtool(scraped.content)
    only_this_roles_gauges(scraped.content, "api")

    assert stop(server) == 0
    lines = (tmp_path / "serve.log").read_text().splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    access = {
        record["request_id"]
        for record in records
        if record["logger"] == "pricing_service.access" and record["path"] == "/v1/prices/SKU-1"
    }
    assert access == {f"lookup-{number}" for number in range(sent)}
