"""The store on one Redis and on a local Redis Cluster of 3 masters, in the same run.

    python bench/cluster.py [--schedules 20000] [--rounds 3]

Per process, what the deployment guide needs to say when shards pay: publishing
prepared schedules (`Store.publish_many`, the repricer's write path, audit included),
reading them back in batches of 1,000 (`Store.get_schedules`, the API's cache misses),
item writes through the queue (`Store.put_items`: data, index and work-queue entries) and
the full reprice end to end (`reprice_all` over the catalogue `bench/reprice.py` seeds:
on one Redis its fast lane reads and publishes with one script call per 50 SKUs, on a
cluster with pipelines of per-SKU script calls, every SKU being its own hash slot).
Both servers are started here from the same redis-server, without persistence; the two
set-ups alternate over the rounds and the best round of each is reported. On a 2-core
machine the 3 shards share the cores with the benchmark itself, so the figures show what
the cluster client costs a process, not what more machines would add.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))

import redis  # noqa: E402
from redis.cluster import RedisCluster  # noqa: E402
from reprice import NOW, bench_rules, seed_catalogue, synthetic_requests  # noqa: E402

from pricing_service.engine.compiled import CompiledRuleset  # noqa: E402
from pricing_service.engine.inputs import ItemFacts  # noqa: E402
from pricing_service.repricer.full import reprice_all  # noqa: E402
from pricing_service.repricer.pricer import Pricer  # noqa: E402
from pricing_service.store.embedded import EmbeddedCluster, EmbeddedRedis  # noqa: E402
from pricing_service.store.store import Store  # noqa: E402

CHUNK = 1_000


async def _timed(work: Callable[[], Awaitable[object]], count: int) -> float:
    started = time.perf_counter()
    await work()
    return count / (time.perf_counter() - started)


async def measure(
    store: Store, url: str, count: int, compiled: CompiledRuleset
) -> dict[str, float]:
    """Operations per second of each path on ``store`` (emptied first; ``url`` is its
    Redis, for the catalogue the full reprice prices)."""
    await store.redis.flushall()
    requests = synthetic_requests(count)
    pairs = [(request.sku, request.segment) for request in requests]
    items = [ItemFacts(sku=f"ITEM-{n:07d}", currency="USD", inventory=5) for n in range(count)]

    async def publish() -> None:
        for start in range(0, count, CHUNK):
            await store.publish_many(requests[start : start + CHUNK], now=NOW)

    async def read() -> None:
        for start in range(0, count, CHUNK):
            found = await store.get_schedules(pairs[start : start + CHUNK])
            assert all(schedule is not None for schedule in found)

    async def write_items() -> None:
        for start in range(0, count, CHUNK):
            await store.put_items(items[start : start + CHUNK])

    async def reprice() -> None:
        counts = await reprice_all(Pricer(store, boundary_lead_seconds=60), compiled, NOW)
        assert counts.published == count, counts.as_dict()

    rates = {
        "publish_many schedules/s": await _timed(publish, count),
        "get_schedules schedules/s": await _timed(read, count),
        "put_items items/s": await _timed(write_items, count),
    }
    await store.redis.flushall()
    seeder = RedisCluster.from_url(url) if store.cluster else redis.Redis.from_url(url)
    try:
        seed_catalogue(seeder, count, seed=7)
    finally:
        seeder.close()
    rates["reprice_all decisions/s"] = await _timed(reprice, count)
    return rates


async def run_round(
    url: str, cluster: bool, count: int, compiled: CompiledRuleset
) -> dict[str, float]:
    store = Store.from_url(url, retention=timedelta(days=35), socket_timeout=60.0, cluster=cluster)
    try:
        return await measure(store, url, count, compiled)
    finally:
        await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedules", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    if arguments.schedules < 1 or arguments.rounds < 1:
        parser.error("--schedules and --rounds must be at least 1")
    print("Store on one Redis and on a 3-master Redis Cluster (bench/cluster.py)")
    print(f"python {platform.python_version()}, cpus {os.cpu_count()}")
    print(f"machine at start: load average {os.getloadavg()[0]:.2f} (1 min)")
    best: dict[str, dict[str, float]] = {"one Redis": {}, "cluster, 3 masters": {}}
    with tempfile.TemporaryDirectory(prefix="cluster-bench-") as scratch:
        _, compiled = bench_rules(Path(scratch))
        single = EmbeddedRedis(Path(scratch) / "single", persistent=False)
        cluster = EmbeddedCluster(Path(scratch) / "cluster")
        single_url = single.start()
        cluster.start()
        try:
            for round_number in range(1, arguments.rounds + 1):
                for name, url, clustered in (
                    ("one Redis", single_url, False),
                    ("cluster, 3 masters", cluster.url, True),
                ):
                    rates = asyncio.run(run_round(url, clustered, arguments.schedules, compiled))
                    shown = ", ".join(f"{path} {rate:,.0f}" for path, rate in rates.items())
                    print(f"round {round_number}, {name}: {shown}")
                    for path, rate in rates.items():
                        best[name][path] = max(best[name].get(path, 0.0), rate)
        finally:
            cluster.stop()
            single.stop()
    print(f"\nbest of {arguments.rounds} rounds, {arguments.schedules:,} per path:")
    for path in best["one Redis"]:
        one, many = best["one Redis"][path], best["cluster, 3 masters"][path]
        print(f"  {path:<28} one Redis {one:>9,.0f}   cluster {many:>9,.0f}   x {many / one:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
