"""SIGTERM: the API answers the request in progress, and the repricer and crawler workers
exit 0 with every job either acknowledged with its result written, or still pending for
another worker (released at once when the grace period ran out). None is lost."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from datetime import timedelta
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
import redis

from crawlers import keys as crawl_keys
from crawlers.demo_site import DemoSiteServer
from crawlers.fetch import Fetcher
from crawlers.outcome import Outcome
from crawlers.settings import CrawlerSettings
from crawlers.worker import CrawlWorker
from pricing_service.engine.segments import priced_segments
from pricing_service.rules.loader import load_ruleset
from pricing_service.shutdown import RELEASED_IDLE_MS
from pricing_service.store import keys
from pricing_service.store.store import Store
from tests.observability.conftest import (
    EXIT_TIMEOUT_SECONDS,
    StartPricing,
    crawl_rules,
    free_port,
    get_when_up,
    queue_crawls,
    stop,
)
from tests.reliability.conftest import price_catalogue, store_catalogue, wait_for
from tests.repricer.helpers import compile_rules, item

#: The crawl queue with the default single partition.
CRAWL_QUEUE = crawl_keys.CrawlQueue(0)


def _refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def test_the_api_answers_the_request_in_progress_when_stopped(
    start: StartPricing, clean_redis: str, rules_dir: Path
) -> None:
    price_catalogue(clean_redis, rules_dir, {"SKU-1": "10.00"})
    port = free_port()
    server = start(["serve", "--port", str(port)], "serve.log", PRICING_PUBLIC_READS="true")
    get_when_up(f"http://127.0.0.1:{port}/readyz")
    body = json.dumps({"skus": ["SKU-1"]}).encode()
    head = (
        b"POST /v1/prices/lookup HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"X-Request-ID: in-progress\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    with socket.create_connection(("127.0.0.1", port), timeout=EXIT_TIMEOUT_SECONDS) as client:
        client.sendall(head + body[:5])  # the request has started: its body is on the way
        time.sleep(0.5)  # for the server to read its head (a margin, not a measurement)
        server.send_signal(signal.SIGTERM)
        wait_for(lambda: _refuses_connections(port), "the server to stop listening")
        client.sendall(body[5:])
        response = client.makefile("rb").read()  # until the server closes the connection
    assert response.startswith(b"HTTP/1.1 200 "), response
    assert b"\r\nx-request-id: in-progress\r\n" in response
    assert b'"SKU-1"' in response
    assert server.wait(timeout=EXIT_TIMEOUT_SECONDS) == 0


# -- the repricer --------------------------------------------------------------------------


def _unfinished_skus(client: redis.Redis) -> set[str]:
    """SKUs with a queue entry not acknowledged: pending, or not delivered yet."""
    [group] = client.xinfo_groups(keys.DIRTY_STREAM)
    pending: Any = client.xpending_range(keys.DIRTY_STREAM, keys.DIRTY_GROUP, "-", "+", 100_000)
    pending_ids = {entry["message_id"] for entry in pending}
    last_delivered = _stream_id(group["last-delivered-id"])
    return {
        fields[b"sku"].decode()
        for entry_id, fields in client.xrange(keys.DIRTY_STREAM)
        if entry_id in pending_ids or _stream_id(entry_id) > last_delivered
    }


def _stream_id(entry_id: bytes) -> tuple[int, int]:
    milliseconds, sequence = entry_id.split(b"-")
    return int(milliseconds), int(sequence)


def _assert_priced_or_queued(client: redis.Redis, skus: list[str], rules_dir: Path) -> None:
    segments = [str(segment) for segment in priced_segments(compile_rules(rules_dir))]
    unfinished = _unfinished_skus(client)
    with client.pipeline(transaction=False) as pipe:
        for sku in skus:
            for segment in segments:
                pipe.exists(keys.schedule(sku, segment))
        replies = iter(pipe.execute())
    for sku in skus:
        priced = all([next(replies) for _ in segments])  # noqa: C419 (consume them all)
        assert priced or sku in unfinished, f"{sku} was lost: not priced and not queued"


def _queue_drained(client: redis.Redis) -> bool:
    return all(g["pending"] == 0 and g["lag"] == 0 for g in client.xinfo_groups(keys.DIRTY_STREAM))


@pytest.mark.parametrize(
    ("batch", "grace"),
    [("25", "20"), ("1500", "0")],
    ids=["finishes-its-batch", "no-grace"],
)
def test_a_stopped_repricer_loses_no_entry(
    start: StartPricing,
    clean_redis: str,
    rules_dir: Path,
    tmp_path: Path,
    batch: str,
    grace: str,
) -> None:
    client = redis.Redis.from_url(clean_redis)
    skus = [f"SKU-{index:05d}" for index in range(1500)]
    store_catalogue(client, [item(sku) for sku in skus])
    # Its first ruleset load queues every SKU.
    settings = {"PRICING_REPRICER_BATCH": batch, "PRICING_SHUTDOWN_GRACE_SECONDS": grace}
    first = start(["repricer"], "first.log", PRICING_REPRICER_NAME="first", **settings)
    wait_for(lambda: client.xlen(keys.CHANGES_STREAM) > 0, "the first publish", timeout=60)
    assert stop(first) == 0
    _assert_priced_or_queued(client, skus, rules_dir)
    pending: Any = client.xpending_range(keys.DIRTY_STREAM, keys.DIRTY_GROUP, "-", "+", 100_000)
    if grace == "20":
        assert not pending, "the batch in hand was not finished"
    else:  # cancelled: what it still held is released (or was finished regardless)
        assert all(entry["time_since_delivered"] >= RELEASED_IDLE_MS for entry in pending)
    # Waiting an hour before it takes over another repricer's entries, the next one only
    # drains the queue if nothing was left pending unreleased.
    second = start(
        ["repricer"],
        "second.log",
        PRICING_REPRICER_NAME="second",
        PRICING_CLAIM_IDLE_SECONDS="3600",
    )
    log = tmp_path / "second.log"
    wait_for(lambda: b"running on" in log.read_bytes(), "the second repricer to start", timeout=60)
    wait_for(lambda: _queue_drained(client), "the second repricer to finish", timeout=120)
    assert stop(second) == 0
    _assert_priced_or_queued(client, skus, rules_dir)
    assert not _unfinished_skus(client)
    client.close()


# -- the crawler ---------------------------------------------------------------------------


def _jobs(client: redis.Redis) -> dict[str, str]:
    """Every queued job's id by its stream entry id."""
    return {
        entry_id.decode(): fields[b"job"].decode()
        for entry_id, fields in client.xrange(CRAWL_QUEUE.jobs)
    }


def _outcomes(client: redis.Redis) -> list[str]:
    return [fields[b"job"].decode() for _, fields in client.xrange(CRAWL_QUEUE.outcomes)]


def _stop_crawler_at_work(
    start: StartPricing,
    redis_url: str,
    site: DemoSiteServer,
    tmp_path: Path,
    *,
    skus: list[str],
    page: str,
    grace: str,
    busy: int,
) -> tuple[redis.Redis, dict[str, str]]:
    """Queue a job per SKU for ``page``, start a crawler, SIGTERM it once ``busy`` pages
    are being fetched, and check it exits 0; a client and the jobs queued."""
    queue_crawls(redis_url, site, skus, page)
    client = redis.Redis.from_url(redis_url)
    queued = _jobs(client)
    rules = crawl_rules(tmp_path / "crawl-rules")
    crawler = start(
        ["crawl", "--rules", str(rules), "--concurrency", "4", "--metrics-port", "0"],
        "crawl.log",
        PRICING_CRAWL_ALLOWED_PRIVATE_NETWORKS='["127.0.0.0/8"]',
        PRICING_SHUTDOWN_GRACE_SECONDS=grace,
    )
    wait_for(lambda: len(site.state.hits("/slow/")) >= busy, "jobs in progress")
    assert stop(crawler) == 0
    # An operator reading the log sees it stop, not only start.
    assert b"stopped" in (tmp_path / "crawl.log").read_bytes().splitlines()[-1]
    return client, queued


def test_a_stopped_crawler_finishes_its_jobs_in_hand(
    start: StartPricing, clean_redis: str, site: DemoSiteServer, tmp_path: Path
) -> None:
    skus = [f"K-{number}" for number in range(12)]
    client, queued = _stop_crawler_at_work(
        start, clean_redis, site, tmp_path, skus=skus, page="/slow/0.5/", grace="20", busy=2
    )
    pending: Any = client.xpending(CRAWL_QUEUE.jobs, crawl_keys.JOBS_GROUP)
    assert pending["pending"] == 0, "a job in hand was neither finished nor released"
    done = _outcomes(client)
    assert done, "no job was in progress"
    assert len(done) == len(set(done))
    # Finished jobs are acknowledged and removed; the others are still queued.
    assert set(_jobs(client).values()) == set(queued.values()) - set(done)
    client.close()


async def _finish_released_jobs(redis_url: str, rules: Path, count: int) -> None:
    """A worker that claims only released jobs (its claim timeout is an hour) runs them."""
    settings = CrawlerSettings(
        _env_file=None,
        allowed_private_networks=[ip_network("127.0.0.0/8")],
        claim_idle_seconds=3600,
    )
    competitors = dict(load_ruleset(rules).competitors)
    store = Store.from_url(redis_url, retention=timedelta(days=35))
    worker = CrawlWorker(
        store,
        Fetcher(settings, store.redis, competitors),
        competitors,
        settings,
        consumer="survivor",
        concurrency=count,
    )
    try:
        batch = await worker.next_batch(count)
        assert len(batch) == count
        await asyncio.gather(*(worker.handle(*message) for message in batch))
    finally:
        await worker.fetcher.close()
        await store.close()


def test_a_crawler_stopped_past_its_grace_releases_its_jobs(
    start: StartPricing, clean_redis: str, site: DemoSiteServer, tmp_path: Path
) -> None:
    skus = [f"S-{number}" for number in range(4)]
    client, queued = _stop_crawler_at_work(
        start, clean_redis, site, tmp_path, skus=skus, page="/slow/4/", grace="0.2", busy=4
    )
    assert not _outcomes(client)
    pending: Any = client.xpending_range(CRAWL_QUEUE.jobs, crawl_keys.JOBS_GROUP, "-", "+", 100)
    assert {entry["message_id"].decode() for entry in pending} == set(queued)
    for entry in pending:
        assert entry["time_since_delivered"] >= RELEASED_IDLE_MS
        assert entry["times_delivered"] == 1

    asyncio.run(_finish_released_jobs(clean_redis, tmp_path / "crawl-rules", len(skus)))
    assert sorted(_outcomes(client)) == sorted(queued.values())
    for job in queued.values():
        recorded = client.get(crawl_keys.outcome(job))
        assert recorded is not None
        assert json.loads(recorded)["outcome"] == Outcome.ACCEPTED
    client.close()
