"""``kill -9`` of a repricer in the middle of a full reprice: another one (or a rerun of
``pricing reprice --all``) finishes the work, every SKU gets its decisions, and none gets
a second one for the same inputs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import redis

from pricing_service.engine.segments import priced_segments
from pricing_service.store import keys
from pricing_service.store.embedded import EmbeddedRedis
from tests.reliability.conftest import PRICING_COMMAND, start_pricing, store_catalogue, wait_for
from tests.repricer.helpers import compile_rules, item

pytestmark = pytest.mark.skipif(
    not PRICING_COMMAND.exists(), reason="the pricing command is not installed"
)


def _segments(rules_dir: Path) -> list[str]:
    return [str(segment) for segment in priced_segments(compile_rules(rules_dir))]


def _kill_once_publishing(process: subprocess.Popen[bytes], client: redis.Redis) -> int:
    """SIGKILL ``process`` as soon as it has published something; how many it had."""
    wait_for(
        lambda: client.xlen(keys.CHANGES_STREAM) > 0 or process.poll() is not None,
        "the first publish",
        timeout=60,
    )
    process.kill()
    process.wait(timeout=10)
    return int(client.xlen(keys.CHANGES_STREAM))


def _assert_one_record_per_segment(
    client: redis.Redis, skus: list[str], segments: list[str]
) -> None:
    """Every SKU has a price in each segment, from exactly one audit record each: none
    superseded (a second decision would have moved the first to the history list)."""
    with client.pipeline(transaction=False) as pipe:
        for sku in skus:
            pipe.llen(keys.audit(sku))
            for segment in segments:
                pipe.exists(keys.schedule(sku, segment))
        replies = pipe.execute()
    width = 1 + len(segments)
    for index, sku in enumerate(skus):
        superseded, *schedules = replies[index * width : (index + 1) * width]
        assert all(schedules), f"{sku} has no price in some segment"
        assert superseded == 0, f"{sku} has {superseded} superseded audit records"


def _queue_drained(client: redis.Redis) -> bool:
    """Every queued SKU delivered and acknowledged (after its publish)."""
    groups = client.xinfo_groups(keys.DIRTY_STREAM)
    return all(group["pending"] == 0 and group["lag"] == 0 for group in groups)


def test_a_killed_repricers_full_reprice_is_finished_by_the_next(
    redis_server: EmbeddedRedis, redis_client: redis.Redis, rules_dir: Path, tmp_path: Path
) -> None:
    skus = [f"SKU-{index:05d}" for index in range(1500)]
    segments = _segments(rules_dir)
    store_catalogue(redis_client, [item(sku) for sku in skus])
    settings = {
        # Small batches, so the kill lands between many acknowledgements.
        "PRICING_REPRICER_BATCH": "25",
        # Entries the dead repricer held are taken over after this long.
        "PRICING_CLAIM_IDLE_SECONDS": "1",
    }
    log = tmp_path / "repricers.log"
    # Its first ruleset load queues every SKU: the full reprice of a rule change.
    first = start_pricing(
        ["repricer"], redis_server.url, rules_dir, log, PRICING_REPRICER_NAME="first", **settings
    )
    published = _kill_once_publishing(first, redis_client)
    assert first.returncode == -9, log.read_text()
    assert 0 < published < len(skus) * len(segments)

    second = start_pricing(
        ["repricer"], redis_server.url, rules_dir, log, PRICING_REPRICER_NAME="second", **settings
    )
    try:
        wait_for(lambda: _queue_drained(redis_client), "the second repricer to finish", timeout=60)
    finally:
        second.terminate()
        second.wait(timeout=10)
    _assert_one_record_per_segment(redis_client, skus, segments)


def test_reprice_all_killed_part_way_is_finished_by_running_it_again(
    redis_server: EmbeddedRedis, redis_client: redis.Redis, rules_dir: Path, tmp_path: Path
) -> None:
    # Enough SKUs that publishing them takes several round trips: the kill lands between.
    skus = [f"SKU-{index:05d}" for index in range(3000)]
    segments = _segments(rules_dir)
    store_catalogue(redis_client, [item(sku) for sku in skus])
    log = tmp_path / "reprice.log"
    first = start_pricing(["reprice", "--all"], redis_server.url, rules_dir, log)
    published = _kill_once_publishing(first, redis_client)
    assert first.returncode == -9, log.read_text()
    assert 0 < published < len(skus) * len(segments)

    again = start_pricing(["reprice", "--all"], redis_server.url, rules_dir, log)
    assert again.wait(timeout=120) == 0, log.read_text()
    _assert_one_record_per_segment(redis_client, skus, segments)
