"""Benchmark price lookups: throughput and p99 against a trivial endpoint, freshness, batch
lookups and the schedule cache's memory.

    python bench/lookup.py [--items 100000] [--rounds 3] [--seconds 8] [--memory-items 1000000]

Everything runs on 127.0.0.1 against a dedicated ``redis-server`` child on a Unix socket
(no persistence), started and stopped by the script; the machine's shared Redis is never
touched. The servers are child processes of this script (``--serve``), each one uvicorn
worker with uvloop and httptools and no access log:

- ``api``: the real app (``create_app``) with public reads, the repository's ``rules/``;
- ``trivial``: a FastAPI app whose ``GET /v1/prices/{sku}`` returns
  ``{"sku": sku, "price": "19.99"}``: the ceiling of the same stack.

Steps:

1. ``--items`` schedules are published through ``Store.publish_many``.
2. Cold: a fresh API process is loaded by wrk over random SKUs for a few seconds (every
   first lookup of a SKU misses the cache and reads Redis).
3. Warm: every SKU is looked up once (batch lookups), then wrk runs against the trivial app
   and the API in alternation, ``--rounds`` times each, same settings (50 connections,
   random SKUs from a list, one wrk thread so the server keeps a core). The best round of
   each is compared; every round is printed.
4. Batch lookup: ``POST /v1/prices/lookup`` with 1,000 random SKUs, p50 and p99.
5. Freshness: two API processes; a publisher writes new prices for random SKUs with
   ``Store.publish`` and a poller asks both APIs until both show it. The time is measured
   from just before the publish call (an upper bound of the commit time) to the poll that
   saw it on the second API.
6. Memory: the RSS growth of the warm API process per cached item; then schedule strings
   for ``--memory-items`` SKUs in all (no audit records: lookups do not read them) and a
   fresh API process that caches every one of them through batch lookups: its RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from pricing_service.engine.decision import Decision, InputUsed, Step  # noqa: E402
from pricing_service.store.store import (  # noqa: E402
    PublishRequest,
    Store,
    encode_schedule,
)

GOAL_THROUGHPUT_RATIO = 0.90
GOAL_P99_RATIO = 1.25
GOAL_FRESHNESS_P99_MS = 100.0
GOAL_BATCH_P50_MS = 20.0
MEMORY_BUDGET_BYTES = 2 * 2**30
CONNECTIONS = 50
RULES_DIR = REPO_ROOT / "rules"
RULESET_VERSION = "bench"

WRK_SCRIPT = """
local skus = {}
for line in io.lines(os.getenv("BENCH_SKUS")) do skus[#skus + 1] = line end
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/v1/prices/" .. skus[math.random(#skus)])
end
done = function(summary, latency, requests)
  io.write(string.format(
    "RESULT {\\"requests\\":%d,\\"duration_us\\":%d,\\"p50_us\\":%d,\\"p99_us\\":%d," ..
    "\\"status_errors\\":%d,\\"socket_errors\\":%d}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
"""


# -- the servers (run as children of this script) ------------------------------------------


def trivial_app() -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/v1/prices/{sku}")
    async def price(sku: str) -> dict[str, str]:
        return {"sku": sku, "price": "19.99"}

    return app


def serve(kind: str, port: int, redis_url: str) -> None:
    import uvicorn

    if kind == "trivial":
        app = trivial_app()
    else:
        from pricing_service.api.app import create_app
        from pricing_service.settings import Settings

        settings = Settings(
            redis_url=redis_url,
            public_reads=True,
            rules_dir=RULES_DIR,
            access_log=False,
            api_keys=None,
            api_keys_file=None,
        )
        app = create_app(settings)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
        workers=1,
    )


# -- seeding --------------------------------------------------------------------------------


def sku_name(index: int) -> str:
    return f"SKU-{index:07d}"


def bench_decisions(sku: str, cents: int, now: datetime | None = None) -> list[Decision]:
    """One window at ``cents``, explained like a cost-plus decision."""
    price = Decimal(cents) / 100
    moment = (now or datetime.now(UTC)).replace(microsecond=0)
    return [
        Decision(
            sku=sku,
            segment="",
            currency="USD",
            price=price,
            valid_from=moment - timedelta(minutes=1),
            valid_until=None,
            rule_id="default",
            ruleset_version=RULESET_VERSION,
            strategy="cost_plus",
            steps=(Step("strategy", "cost_plus", None, price, "cost plus 35.00%"),),
            guardrails_fired=(),
            inputs=(InputUsed("cost", str(price * 100 / 135), "catalogue"),),
        )
    ]


async def seed(url: str, count: int) -> None:
    store = Store.from_url(url, retention=timedelta(days=35), socket_timeout=60.0)
    now = datetime.now(UTC)
    try:
        for start in range(0, count, 10_000):
            requests = [
                PublishRequest(sku_name(n), "", bench_decisions(sku_name(n), 1000 + n % 9000), "f")
                for n in range(start, min(count, start + 10_000))
            ]
            await store.publish_many(requests, now=now)
    finally:
        await store.close()


def seed_schedules_only(url: str, first: int, count: int) -> None:
    """Schedule strings alone for SKUs ``first`` to ``count`` (no audit records), written
    with raw pipelined SETs: enough for lookups, and quick for a million SKUs."""
    import redis

    from pricing_service.store import keys

    body = encode_schedule(bench_decisions(sku_name(0), 1999), "USD", RULESET_VERSION)
    client = redis.Redis.from_url(url)
    try:
        pipe = client.pipeline(transaction=False)
        for index in range(first, count):
            pipe.set(keys.schedule(sku_name(index), ""), f"1-0 f 0 - {body}\n")
            if len(pipe) >= 10_000:
                pipe.execute()
        pipe.execute()
    finally:
        client.close()


# -- load -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def run_wrk(port: int, seconds: float, skus_file: Path, script: Path) -> WrkResult:
    command = [
        "wrk",
        "-t1",
        f"-c{CONNECTIONS}",
        f"-d{seconds:.0f}s",
        "--latency",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}",
    ]
    env = {**os.environ, "BENCH_SKUS": str(skus_file)}
    output = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    data = json.loads(line.removeprefix("RESULT "))
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        errors=data["status_errors"] + data["socket_errors"],
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Server:
    """A ``--serve`` child process of this script."""

    def __init__(self, kind: str, redis_url: str) -> None:
        self.kind = kind
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", kind, str(self.port), redis_url],
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{self.port}/v1/prices/SKU-0000000", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{kind} server did not start")

    @property
    def rss(self) -> int:
        return int(psutil.Process(self.process.pid).memory_info().rss)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def warm(port: int, count: int) -> float:
    """Look every SKU up once through batch lookups; returns the seconds it took."""
    start = time.perf_counter()
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        for first in range(0, count, 1000):
            skus = [sku_name(n) for n in range(first, min(count, first + 1000))]
            response = client.post("/v1/prices/lookup", json={"skus": skus})
            response.raise_for_status()
    return time.perf_counter() - start


def batch_latencies(port: int, count: int, calls: int) -> list[float]:
    rng = random.Random(11)
    latencies = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        for _ in range(calls):
            body = {"skus": [sku_name(rng.randrange(count)) for _ in range(1000)]}
            start = time.perf_counter()
            response = client.post("/v1/prices/lookup", json=body)
            latencies.append((time.perf_counter() - start) * 1000)
            response.raise_for_status()
            assert all(r["found"] for r in response.json()["results"])
    return latencies


async def freshness(url: str, ports: Sequence[int], count: int, samples: int) -> list[float]:
    """Milliseconds from just before each publish to visible on every API."""
    store = Store.from_url(url, retention=timedelta(days=35))
    rng = random.Random(5)
    clients = [httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") for port in ports]
    delays: list[float] = []

    async def visible(client: httpx.AsyncClient, sku: str, price: str) -> None:
        while True:
            response = await client.get(f"/v1/prices/{sku}")
            if response.status_code == 200 and response.json()["price"] == price:
                return
            await asyncio.sleep(0.001)

    async def one(index: int) -> None:
        sku = sku_name(rng.randrange(count))
        cents = 100_000 + index  # a price no seeded schedule has
        decisions = bench_decisions(sku, cents)
        # Both APIs cache the SKU first, so the change must reach them through the stream.
        for client in clients:
            await client.get(f"/v1/prices/{sku}")
        start = time.perf_counter()
        await store.publish(sku, "", decisions, fingerprint_value=f"fresh-{index}", now=start_now)
        await asyncio.gather(*(visible(c, sku, str(decisions[0].price)) for c in clients))
        delays.append((time.perf_counter() - start) * 1000)

    start_now = datetime.now(UTC)
    try:
        # A few publishes in flight at a time, like a repricer working through a batch.
        for first in range(0, samples, 4):
            await asyncio.gather(*(one(i) for i in range(first, min(samples, first + 4))))
            await asyncio.sleep(0.01)
    finally:
        for client in clients:
            await client.aclose()
        await store.close()
    return delays


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--memory-items", type=int, default=1_000_000)
    parser.add_argument("--serve", nargs=3, metavar=("KIND", "PORT", "REDIS_URL"))
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), args.serve[2])
        return 0
    if shutil.which("wrk") is None:
        print("wrk is missing: install it (apt-get install wrk); no lookup figures without it")
        print("GOAL lookup throughput >= 0.90 x trivial: MISSED (not measured: wrk missing)")
        return 2
    return run(args.items, args.rounds, args.seconds, args.memory_items)


def run(count: int, rounds: int, seconds: float, memory_items: int) -> int:
    from pricing_service.store.embedded import EmbeddedRedis

    print("Lookup benchmark (bench/lookup.py)")
    print(
        f"python {platform.python_version()}, cpus {os.cpu_count()}, {count:,} items, "
        f"wrk -t1 -c{CONNECTIONS} -d{seconds:.0f}s, {rounds} alternated rounds"
    )
    print(f"machine at start: {_load()}")
    lines: list[str] = []
    with tempfile.TemporaryDirectory(prefix="lookup-bench-") as scratch:
        folder = Path(scratch)
        skus_file = folder / "skus.txt"
        rng = random.Random(3)
        skus_file.write_text("\n".join(sku_name(rng.randrange(count)) for _ in range(200_000)))
        script = folder / "random_skus.lua"
        script.write_text(WRK_SCRIPT)
        redis_server = EmbeddedRedis(folder / "redis", persistent=False)
        url = redis_server.start()
        servers: list[Server] = []
        try:
            started = time.perf_counter()
            asyncio.run(seed(url, count))
            print(f"{count:,} schedules published in {time.perf_counter() - started:.1f} s")

            api = Server("api", url)
            servers.append(api)
            trivial = Server("trivial", url)
            servers.append(trivial)
            cold = run_wrk(api.port, min(seconds, 5), skus_file, script)
            print(
                f"cold API (cache filling as it goes): {cold.per_second:,.0f} req/s, "
                f"p50 {cold.p50_ms:.2f} ms, p99 {cold.p99_ms:.2f} ms, errors {cold.errors}"
            )
            rss_before = api.rss
            warm_seconds = warm(api.port, count)
            rss_after = api.rss
            print(f"warmed {count:,} SKUs through batch lookups in {warm_seconds:.1f} s")
            per_item = (rss_after - rss_before) / count
            run_wrk(trivial.port, 2, skus_file, script)  # warm-up of both stacks
            run_wrk(api.port, 2, skus_file, script)
            results: dict[str, list[WrkResult]] = {"trivial": [], "api": []}
            print(
                f"\n{'round':>5}  {'endpoint':<8} {'req/s':>9} {'p50 ms':>7} {'p99 ms':>7} errors"
            )
            for number in range(1, rounds + 1):
                for name, server in (("trivial", trivial), ("api", api)):
                    result = run_wrk(server.port, seconds, skus_file, script)
                    results[name].append(result)
                    print(
                        f"{number:>5}  {name:<8} {result.per_second:>9,.0f} "
                        f"{result.p50_ms:>7.2f} {result.p99_ms:>7.2f} {result.errors:>6}"
                    )
            best_trivial = max(results["trivial"], key=lambda r: r.per_second)
            best_api = max(results["api"], key=lambda r: r.per_second)
            ratio = best_api.per_second / best_trivial.per_second
            median_ratio = statistics.median(
                a.per_second / t.per_second
                for a, t in zip(results["api"], results["trivial"], strict=True)
            )
            p99_trivial = min(r.p99_ms for r in results["trivial"])
            p99_api = min(r.p99_ms for r in results["api"])

            batch = batch_latencies(api.port, count, 200)
            print(
                f"batch lookup of 1,000 SKUs, 200 calls: p50 {percentile(batch, 0.5):.1f} ms, "
                f"p99 {percentile(batch, 0.99):.1f} ms"
            )
            trivial.stop()
            servers.remove(trivial)
            second = Server("api", url)
            servers.append(second)
            delays = asyncio.run(freshness(url, [api.port, second.port], count, 400))
            print(
                f"freshness, 2 API processes, {len(delays)} publishes: p50 "
                f"{percentile(delays, 0.5):.1f} ms, p99 {percentile(delays, 0.99):.1f} ms, "
                f"max {max(delays):.1f} ms"
            )
            for server in servers:
                server.stop()
            servers.clear()

            # Memory: a fresh API process caching ``memory_items`` schedules.
            seed_schedules_only(url, count, memory_items)
            fresh = Server("api", url)
            servers.append(fresh)
            empty_rss = fresh.rss
            warm(fresh.port, memory_items)
            full_rss = fresh.rss
            full_per_item = (full_rss - empty_rss) / memory_items
            print(
                f"memory: API RSS {empty_rss / 2**20:,.0f} MiB started, "
                f"{full_rss / 2**20:,.0f} MiB with {memory_items:,} cached schedules "
                f"({full_per_item:,.0f} B/item)"
            )
        finally:
            for server in servers:
                server.stop()
            redis_server.stop()

    print(f"\nat the end: {_load()}")
    print(
        f"best rounds: trivial {best_trivial.per_second:,.0f} req/s p99 {best_trivial.p99_ms:.2f} "
        f"ms; API {best_api.per_second:,.0f} req/s p99 {best_api.p99_ms:.2f} ms; "
        f"ratio of bests {ratio:.3f}, median ratio of rounds {median_ratio:.3f}"
    )
    print(
        f"cache memory: the warm API's RSS grew {(rss_after - rss_before) / 2**20:,.1f} MiB for "
        f"{count:,} cached SKUs ({per_item:,.0f} B/item); a fresh API process caching "
        f"{memory_items:,} schedules: RSS {full_rss / 2**20:,.0f} MiB ({full_per_item:,.0f} "
        f"B/item over {empty_rss / 2**20:,.0f} MiB at start)"
    )
    lines.append(
        _goal(
            ratio >= GOAL_THROUGHPUT_RATIO,
            f"lookup throughput >= 0.90 x trivial: {{}} ({ratio:.3f}: API "
            f"{best_api.per_second:,.0f} vs trivial {best_trivial.per_second:,.0f} req/s, "
            f"best of {rounds} alternated rounds; median ratio {median_ratio:.3f})",
        )
    )
    lines.append(
        _goal(
            p99_api <= GOAL_P99_RATIO * p99_trivial,
            f"lookup p99 <= 1.25 x trivial p99: {{}} ({p99_api:.2f} ms vs "
            f"{p99_trivial:.2f} ms = {p99_api / p99_trivial:.2f}x, best p99 of the rounds)",
        )
    )
    lines.append(
        _goal(
            percentile(delays, 0.99) <= GOAL_FRESHNESS_P99_MS,
            f"freshness p99 <= 100 ms on 2 API processes: {{}} "
            f"({percentile(delays, 0.99):.1f} ms, p50 {percentile(delays, 0.5):.1f} ms)",
        )
    )
    lines.append(
        _goal(
            percentile(batch, 0.5) <= GOAL_BATCH_P50_MS,
            f"batch lookup of 1,000 SKUs p50 <= 20 ms: {{}} ({percentile(batch, 0.5):.1f} ms)",
        )
    )
    lines.append(
        _goal(
            full_rss <= MEMORY_BUDGET_BYTES,
            f"API process with {memory_items:,} cached items <= 2 GiB RSS: {{}} "
            f"({full_rss / 2**20:,.0f} MiB, {full_per_item:,.0f} B/item)",
        )
    )
    for line in lines:
        print(line)
    return 0


def _goal(met: bool, template: str) -> str:
    return "GOAL " + template.format("MET" if met else "MISSED")


if __name__ == "__main__":
    sys.exit(main())
