"""Scale-out on one Redis: 2 API processes, 2 repricers and 2 crawler workers (and the
scheduler) as real processes, with the work queue, the changes stream and the crawl queue
each in 2 partitions, under lookups and catalogue writes. No decision is lost or
duplicated, every lookup answered is in the audit trail, and each role shares its work."""

from __future__ import annotations

import asyncio
import itertools
import random
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import redis
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from crawlers import keys as crawl_keys
from crawlers.demo_site import DemoSiteServer
from crawlers.listings import Listing, put_listings
from pricing_service.repricer.full import current_instant, reprice_all
from pricing_service.repricer.pricer import Pricer
from pricing_service.store import keys
from pricing_service.store.embedded import EmbeddedRedis
from pricing_service.store.store import Store, parse_decision_id
from tests.api.conftest import API_KEYS, WRITE_KEY
from tests.reliability.conftest import (
    PRICING_COMMAND,
    start_pricing,
    stop_all,
    store_catalogue,
    wait_for,
)
from tests.repricer.helpers import compile_rules, item, write_rules

#: The crawl queue with the default single partition.
#: Both queues (and the changes stream) in partitions, as a scaled-out deployment runs.
PARTITIONS = 2
CRAWL_QUEUES = crawl_keys.queues(PARTITIONS)

pytestmark = pytest.mark.skipif(
    not PRICING_COMMAND.exists(), reason="the pricing command is not installed"
)

RULES = """
timezone: UTC
horizon: 1d
competitors:
  demo:
    name: Demo competitor
    domains: ["127.0.0.1"]
    requests_per_second: 500
    concurrency: 32
default:
  description: List price.
  owner: test@example.com
  strategy:
    list_price: true
rules:
  - id: match-demo
    description: Match the demo competitor while its price is fresh.
    owner: test@example.com
    priority: 10
    strategy:
      competitor:
        reference: lowest
        action: match
        max_age: 1h
    fallback:
      - list_price: true
"""
SKUS = [f"SCALE-{index:04d}" for index in range(150)]
LOAD_SECONDS = 8.0


def _free_ports(count: int) -> list[int]:
    """``count`` different free ports: held open together while chosen, as one at a time
    the system may hand the same port out twice (an API and a metrics server then race
    for it, and the loser's requests land on the winner)."""
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


@dataclass(frozen=True)
class Seen:
    """A price a lookup answered."""

    sku: str
    price: str
    decision_id: str


class Load:
    """Lookups spread over both APIs, and list price changes through them, on threads."""

    def __init__(self, api_urls: list[str]) -> None:
        self.api_urls = api_urls
        self.seen: list[Seen] = []
        self.writes = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._read, args=(seed,), daemon=True) for seed in (1, 2)
        ] + [threading.Thread(target=self._write, daemon=True)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _read(self, seed: int) -> None:
        rng = random.Random(seed)
        clients = [httpx.Client(base_url=url, timeout=10) for url in self.api_urls]
        try:
            while not self._stop.is_set():
                sku = rng.choice(SKUS)
                response = rng.choice(clients).get(f"/v1/prices/{sku}")
                if response.status_code == 200:
                    body = response.json()
                    self.seen.append(Seen(sku, body["price"], body["decision_id"]))
                elif response.status_code != 404:  # 404: not priced yet
                    self.errors.append(f"GET {sku}: {response.status_code} {response.text}")
        finally:
            for client in clients:
                client.close()

    def _write(self) -> None:
        rng = random.Random(3)
        headers = {"Authorization": f"Bearer {WRITE_KEY}"}
        clients = [httpx.Client(base_url=url, timeout=10) for url in self.api_urls]
        try:
            while not self._stop.is_set():
                sku = rng.choice(SKUS)
                price = Decimal(rng.randrange(4000, 6000)) / 100
                body = item(sku, str(price)).model_dump(mode="json", exclude_defaults=True)
                response = rng.choice(clients).put(f"/v1/items/{sku}", json=body, headers=headers)
                if response.status_code in (200, 201):
                    self.writes += 1
                else:
                    self.errors.append(f"PUT {sku}: {response.status_code} {response.text}")
                time.sleep(0.02)
        finally:
            for client in clients:
                client.close()


def _counter_total(port: int, name: str) -> float:
    """The sum of a counter over its labels, scraped from a process's /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == name
        for sample in family.samples
        if sample.name == f"{name}_total"
    )


def _dirty_queue_drained(client: redis.Redis) -> bool:
    for stream in keys.dirty_streams(PARTITIONS):
        groups = client.xinfo_groups(stream)
        if not groups or any(g["pending"] or g["lag"] for g in groups):
            return False
    return True


def _crawls_done(client: redis.Redis, listings: int) -> bool:
    """Every listing crawled at least once, and no job queued or in flight."""
    outcomes = sum(client.xlen(queue.outcomes) for queue in CRAWL_QUEUES)
    in_flight = sum(client.hlen(queue.in_flight) for queue in CRAWL_QUEUES)
    return outcomes >= listings and in_flight == 0


def _stop(processes: list[subprocess.Popen[bytes]], log: Path) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        assert process.wait(timeout=30) == 0, log.read_text()[-3000:]


def _wait_for_http(url: str) -> None:
    def up() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, f"the API at {url}", timeout=60)


async def _check_trail(url: str, rules_dir: Path, seen: list[Seen]) -> None:
    store = Store.from_url(url, retention=timedelta(days=35), queue_partitions=PARTITIONS)
    try:
        # Nothing lost: every SKU's stored decision is the one its latest inputs give, so
        # pricing everything again publishes nothing.
        pricer = Pricer(store, boundary_lead_seconds=60)
        counts = await reprice_all(pricer, compile_rules(rules_dir), current_instant())
        assert counts.published == 0, counts
        for sku in SKUS:
            schedule = await store.get_schedule(sku, "")
            assert schedule is not None, f"{sku} has no price"
            records, cursor = await store.history(sku, limit=1000)
            assert cursor is None
            # Nothing duplicated: two records in a row never come from the same inputs.
            prints = [record.fingerprint for record in records]
            assert all(a != b for a, b in itertools.pairwise(prints)), (sku, prints)
        # Every answer a storefront got is in the audit trail, with that price.
        for answer in seen:
            parsed = parse_decision_id(answer.decision_id)
            assert parsed is not None
            assert parsed[0] == answer.sku
            record = await store.get_audit(answer.sku, parsed[1])
            assert record is not None, answer
            assert record.decisions[parsed[2]]["price"] == answer.price, answer
    finally:
        await store.close()


async def _store_listings(url: str, site_url: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        await put_listings(
            client,
            [
                Listing(
                    sku=sku,
                    competitor="demo",
                    url=f"{site_url}/jsonld/{sku}",
                    frequency=timedelta(minutes=1),
                )
                for sku in SKUS
            ],
            partitions=PARTITIONS,
        )
    finally:
        await client.aclose()


def test_two_of_each_role_share_the_work_and_lose_or_duplicate_nothing(
    redis_server: EmbeddedRedis, redis_client: redis.Redis, tmp_path: Path
) -> None:
    rules_dir = write_rules(tmp_path / "rules", RULES)
    store_catalogue(redis_client, [item(sku) for sku in SKUS])
    log = tmp_path / "processes.log"
    env = {
        "PRICING_API_KEYS": API_KEYS,
        "PRICING_PUBLIC_READS": "true",
        "PRICING_ACCESS_LOG": "false",
        "PRICING_REPRICER_BATCH": "20",
        "PRICING_CRAWL_ALLOWED_PRIVATE_NETWORKS": '["127.0.0.0/8"]',
        "PRICING_QUEUE_PARTITIONS": str(PARTITIONS),
        "PRICING_CRAWL_QUEUE_PARTITIONS": str(PARTITIONS),
    }
    with DemoSiteServer() as site:
        asyncio.run(_store_listings(redis_server.url, site.url))
        ports = _free_ports(6)
        api_ports, repricer_ports, crawler_ports = ports[:2], ports[2:4], ports[4:]
        apis = [
            start_pricing(
                ["serve", "--host", "127.0.0.1", "--port", str(port)],
                redis_server.url,
                rules_dir,
                log,
                **env,
            )
            for port in api_ports
        ]
        repricers = [
            start_pricing(
                ["repricer"],
                redis_server.url,
                rules_dir,
                log,
                **env,
                PRICING_REPRICER_NAME=f"repricer-{index}",
                PRICING_REPRICER_METRICS_PORT=str(port),
            )
            for index, port in enumerate(repricer_ports)
        ]
        crawl = [
            start_pricing(
                ["crawl", "--concurrency", "4", "--metrics-port", str(port)],
                redis_server.url,
                rules_dir,
                log,
                **env,
            )
            for port in crawler_ports
        ]
        scheduler = start_pricing(
            ["scheduler", "--tick", "0.2", "--metrics-port", "0"],
            redis_server.url,
            rules_dir,
            log,
            **env,
        )
        api_urls = [f"http://127.0.0.1:{port}" for port in api_ports]
        try:
            for url in api_urls:
                _wait_for_http(url)
            with Load(api_urls) as load:
                time.sleep(LOAD_SECONDS)
            wait_for(lambda: _crawls_done(redis_client, len(SKUS)), "every listing crawled", 120)
            fetches = [_counter_total(p, "pricing_crawl_fetches") for p in crawler_ports]
            # No more offers: then the repricers catch up with everything queued.
            _stop([scheduler, *crawl], log)
            wait_for(lambda: _dirty_queue_drained(redis_client), "the repricers", timeout=120)
            work = {
                "repricer": [_counter_total(p, "pricing_publishes") for p in repricer_ports],
                "api": [_counter_total(p, "pricing_lookups") for p in api_ports],
                "crawler": fetches,
            }
        finally:
            stop_all([*apis, *repricers, *crawl, scheduler])
    assert not load.errors, load.errors[:5]
    assert load.writes > 50, load.writes
    assert len(load.seen) > 200, len(load.seen)
    # Each process of each role did part of the work.
    assert all(count > 0 for count in work["repricer"]), work
    assert all(count > 0 for count in work["api"]), work
    assert all(count > 0 for count in work["crawler"]), work
    asyncio.run(_check_trail(redis_server.url, rules_dir, load.seen))
