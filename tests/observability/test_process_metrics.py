"""Every role's /metrics passes ``promtool check metrics``: the repricer, the crawl
scheduler and a crawler worker, each scraped on its own port as a real process that then
exits 0 on SIGTERM (the API's are checked by test_multiworker and
tests/reliability/test_metrics_exposition)."""

from __future__ import annotations

from pathlib import Path

import redis

from crawlers.demo_site import DemoSiteServer
from tests.observability.conftest import (
    StartPricing,
    check_with_promtool,
    crawl_rules,
    free_port,
    get_when_up,
    only_this_roles_gauges,
    queue_crawls,
    stop,
)
from tests.reliability.conftest import store_catalogue, wait_for
from tests.repricer.helpers import item


def _scrape_when(port: int, metric_line: str) -> bytes:
    """The exposition on ``port`` once it holds a line starting with ``metric_line``."""
    url = f"http://127.0.0.1:{port}/metrics"
    exposition = [get_when_up(url).text]

    def holds() -> bool:
        exposition.append(get_when_up(url).text)
        return any(line.startswith(metric_line) for line in exposition[-1].splitlines())

    wait_for(holds, f"{metric_line} on :{port}", timeout=30)
    return exposition[-1].encode()


def test_the_repricers_metrics_pass_promtool(start: StartPricing, clean_redis: str) -> None:
    client = redis.Redis.from_url(clean_redis)
    store_catalogue(client, [item("SKU-1")])
    client.close()
    port = free_port()
    repricer = start(["repricer", "--metrics-port", str(port)], "repricer.log")
    _scrape_when(port, "pricing_repricer_lag_seconds_count 1")
    exposition = _scrape_when(port, "pricing_dirty_queue_length ")
    assert stop(repricer) == 0
    check_with_promtool(exposition)
    only_this_roles_gauges(exposition, "repricer")


def test_the_schedulers_metrics_pass_promtool(start: StartPricing) -> None:
    port = free_port()
    scheduler = start(["scheduler", "--metrics-port", str(port), "--tick", "0.1"], "scheduler.log")
    exposition = _scrape_when(port, "pricing_crawl_queue_depth 0")
    assert stop(scheduler) == 0
    check_with_promtool(exposition)
    only_this_roles_gauges(exposition, "scheduler")


def test_a_crawler_workers_metrics_pass_promtool(
    start: StartPricing, clean_redis: str, site: DemoSiteServer, tmp_path: Path
) -> None:
    queue_crawls(clean_redis, site, ["SKU-1"], "/jsonld/")
    port = free_port()
    crawler = start(
        [
            "crawl",
            "--rules",
            str(crawl_rules(tmp_path / "crawl-rules")),
            "--metrics-port",
            str(port),
        ],
        "crawl.log",
        PRICING_CRAWL_ALLOWED_PRIVATE_NETWORKS='["127.0.0.0/8"]',
    )
    exposition = _scrape_when(port, 'pricing_crawl_fetches_total{competitor="demo"')
    assert stop(crawler) == 0
    check_with_promtool(exposition)
    only_this_roles_gauges(exposition, "crawler")
