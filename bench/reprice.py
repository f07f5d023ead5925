"""Benchmark the full reprice end to end: load inputs from Redis, price, publish with audit.

    python bench/reprice.py [--items 100000 [1000000]] [--processes 1 2] [--windowed]
                            [--profile] [--seed 7] [--selling SHARE]

A dedicated ``redis-server`` child (no persistence, Unix socket) is started for the run and
stopped at the end; the machine's shared Redis is never touched. For each size and each
number of processes the script seeds the catalogue afresh (items, competitor offers, some
sales; ``--selling`` gives a share of the SKUs a full sales history) with raw pipelines,
then times ``reprice_all`` (``reprice_all_in_processes`` for more than one process) twice:

- *first*: nothing published yet, so every SKU gets a new schedule and audit record;
- *repeat*: the same inputs again, so every SKU's fingerprint matches and nothing is
  written (the steady state of a periodic full reprice), except where the first reprice
  moved the price in force.

Redis memory per stored decision is the growth of ``used_memory`` over the first reprice
(of the first process count) divided by the schedules it published. In the same run,
``redis-benchmark -P 64 -t set`` against the same server gives the store's own ceiling,
printed next to the reprice rate.

How long the first reprice keeps Redis from its other clients is printed twice: from
Redis's side (the mean per command, and SLOWLOG's calls over 2 ms), and from a client's
(a PING every 2 ms from another process: the delay a lookup or a write would see).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import multiprocessing
import os
import platform
import pstats
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis
from redis.cluster import RedisCluster

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from pricing_service.engine.compiled import CompiledRuleset  # noqa: E402
from pricing_service.engine.decision import Decision, InputUsed, Step  # noqa: E402
from pricing_service.repricer.full import reprice_all  # noqa: E402
from pricing_service.repricer.parallel import reprice_all_in_processes  # noqa: E402
from pricing_service.repricer.pricer import Pricer, RepriceCounts  # noqa: E402
from pricing_service.repricer.worker import read_ruleset  # noqa: E402
from pricing_service.settings import Settings  # noqa: E402
from pricing_service.store import keys  # noqa: E402
from pricing_service.store.embedded import EmbeddedRedis  # noqa: E402
from pricing_service.store.store import PublishRequest, Store  # noqa: E402

GOAL_DECISIONS_PER_SECOND = 100_000
GOAL_BYTES_PER_DECISION = 400
#: The reprice instant: whole seconds, as ``current_instant`` gives.
NOW = datetime.now(UTC).replace(microsecond=0)
SEED_PIPELINE = 5_000

CATEGORIES = ("electronics", "appliances", "books", "garden", "toys", "home", "beauty")
BRANDS = ("acme", "boreal", "cobalt", "ember", "fjord", "lumen")
COMPETITORS = ("megamart", "shopright", "bargainhub", "our_outlet")

#: One segment, no time windows: every schedule has one window, the common case.
#: Competitor rules per category with fallbacks, cost-plus by default, the usual guardrails.
BENCH_RULES = """
timezone: America/New_York
horizon: 7d
competitors:
  megamart: { name: MegaMart }
  shopright: { name: ShopRight }
  bargainhub: { name: BargainHub }
  our_outlet: { name: Our outlet, ours: true }
guardrails:
  min_margin: "8%"
  enforce_map: true
  max_change: "15%"
  rounding: { ending: ".99" }
default:
  description: Cost plus 35%.
  owner: bench@example.com
  strategy: { cost_plus: "35%" }
  fallback:
    - list_price: true
rules:
  - id: electronics-beat-lowest
    description: Beat the lowest offer by 1%.
    owner: bench@example.com
    priority: 30
    match: { categories: [electronics] }
    strategy:
      competitor: { reference: lowest, action: beat, by: "1%", max_age: 2d }
    fallback:
      - cost_plus: "25%"
  - id: appliances-median
    description: Match the median offer.
    owner: bench@example.com
    priority: 20
    match: { categories: [appliances, home] }
    strategy:
      competitor: { reference: median, max_age: 3d }
    fallback:
      - list_price: true
  - id: books-discount
    description: Ten percent off the list price.
    owner: bench@example.com
    priority: 10
    match: { categories: [books] }
    strategy: { discount: "10%" }
"""


#: ``--windowed``: the default rule also raises prices on weekday evenings, so the SKUs it
#: prices (about half) get a schedule of about eleven windows over the 7-day horizon.
WINDOWED_RULES = BENCH_RULES.replace(
    """  fallback:
    - list_price: true
rules:""",
    """  fallback:
    - list_price: true
  adjustments:
    - id: weekday-evening
      description: Weekday evenings, +3%.
      when: { days: [mon, tue, wed, thu, fri], hours: "18:00-21:00" }
      change: "+3%"
rules:""",
)


@dataclass(frozen=True, slots=True)
class Run:
    items: int
    label: str
    seconds: float
    counts: RepriceCounts

    @property
    def per_second(self) -> float:
        return self.items / self.seconds


def bench_rules(scratch: Path, text: str = BENCH_RULES) -> tuple[Path, CompiledRuleset]:
    """``text`` written as the rules folder ``scratch/rules``, and the ruleset compiled
    from it; exits if it does not load."""
    rules_dir = scratch / "rules"
    rules_dir.mkdir()
    (rules_dir / "rules.yaml").write_text(text)
    loaded, diagnostics = read_ruleset(rules_dir)
    if loaded is None:
        raise SystemExit(f"bench ruleset does not load: {diagnostics}")
    return rules_dir, loaded.compiled


#: Days of sales a selling SKU has with ``--selling``: the default retention.
SELLING_DAYS: int = Settings.model_fields["retention_days"].default


def seed_catalogue(
    client: redis.Redis | RedisCluster, count: int, seed: int, selling: float | None = None
) -> None:
    """Items with 0-3 competitor offers and, for one in five, units sold on every third
    day of four weeks. With ``selling``, that share of the SKUs instead has what a SKU
    that sells every day accumulates: :data:`SELLING_DAYS` days of units, revenue and an
    inventory level (the default keeps the catalogue every earlier figure was measured
    on)."""
    rng = random.Random(seed)
    received = NOW.isoformat()
    pipe = client.pipeline(transaction=False)
    for index in range(count):
        sku = f"SKU-{index:07d}"
        cost = rng.randint(200, 50_000)
        list_price = cost * rng.randint(130, 200) // 100
        item: dict[str, Any] = {
            "sku": sku,
            "currency": "USD",
            "cost": f"{cost / 100:.2f}",
            "list_price": f"{list_price / 100:.2f}",
            "category": rng.choice(CATEGORIES),
            "brand": rng.choice(BRANDS),
            "inventory": rng.randint(0, 500),
            "current_price": f"{list_price * 9 // 1000:.2f}" if rng.random() < 0.5 else None,
        }
        if rng.random() < 0.2:
            item["map_price"] = f"{cost * 115 // 10_000:.2f}"
        pipe.set(keys.item(sku), json.dumps({k: v for k, v in item.items() if v is not None}))
        pipe.sadd(keys.SKU_INDEX, sku)
        offers: dict[Any, Any] = {}
        for competitor in rng.sample(COMPETITORS, rng.randint(0, 3)):
            observed = NOW - timedelta(hours=rng.uniform(0, 60))
            observation = {
                "competitor": competitor,
                "price": f"{list_price * rng.randint(80, 110) // 10_000:.2f}",
                "currency": "USD",
                "observed_at": observed.isoformat(),
                "in_stock": rng.random() < 0.9,
            }
            offers[competitor] = json.dumps(
                {"observation": observation, "status": "accepted", "received_at": received}
            )
        if offers:
            pipe.hset(keys.offers(sku), mapping=offers)
        sales: dict[Any, Any] = {}
        if selling is None and rng.random() < 0.2:
            for days_ago in range(0, 28, 3):
                day = (NOW - timedelta(days=days_ago)).strftime("%Y%m%d")
                sales[f"u:{day}"] = rng.randint(1, 20)
        elif selling is not None and rng.random() < selling:
            for days_ago in range(SELLING_DAYS):
                day = (NOW - timedelta(days=days_ago)).strftime("%Y%m%d")
                units = rng.randint(0, 20)
                sales[f"u:{day}"] = units
                sales[f"r:{day}"] = units * list_price
                sales[f"i:{day}"] = rng.randint(0, 500)
        if sales:
            pipe.hset(keys.sales(sku), mapping=sales)
        if len(pipe) >= SEED_PIPELINE:
            pipe.execute()
    pipe.execute()


def used_memory(client: redis.Redis) -> int:
    info: Any = client.info("memory")
    return int(info["used_memory"])


async def timed_reprice(
    url: str,
    rules_dir: Path,
    compiled: CompiledRuleset,
    label: str,
    items: int,
    profile: bool,
    processes: int = 1,
) -> Run:
    store = Store.from_url(url, retention=timedelta(days=35), socket_timeout=60.0)
    pricer = Pricer(store, boundary_lead_seconds=60)
    profiler = cProfile.Profile() if profile else None
    settings = Settings(redis_socket_timeout=60.0, boundary_lead_seconds=60, retention_days=35)
    try:
        start = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        if processes > 1:
            counts = await reprice_all_in_processes(
                url, settings, rules_dir, compiled, NOW, processes
            )
        else:
            counts = await reprice_all(pricer, compiled, NOW)
        if profiler is not None:
            profiler.disable()
        seconds = time.perf_counter() - start
    finally:
        await store.close()
    if profiler is not None:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
        print(f"\nprofile of the {label} reprice, {items:,} items (by own time):")
        print(text.getvalue())
    return Run(items=items, label=label, seconds=seconds, counts=counts)


def redis_cpu_seconds(client: redis.Redis) -> float:
    """CPU seconds of Redis's main thread so far (INFO cpu), where it runs every command
    and reads and writes every client's socket: the store's own share of a reprice,
    whatever the client costs. (INFO commandstats would count a command a script calls
    twice: in the script's time and its own.)"""
    info: Any = client.info("cpu")
    return float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"])


#: Calls at least this long (µs) are counted by :func:`blocking_calls`.
SLOW_CALL_US = 2_000


def blocking_calls(client: redis.Redis) -> str:
    """How long single calls kept Redis from its other clients since the last RESETSTAT
    and SLOWLOG RESET: the longest mean per command (INFO commandstats), and the longest
    call and the number of calls over :data:`SLOW_CALL_US` (SLOWLOG)."""
    stats: Any = client.info("commandstats")
    ranked = sorted(stats.items(), key=lambda item: -float(item[1]["usec_per_call"]))[:2]
    means = ", ".join(
        f"{name.removeprefix('cmdstat_')} {float(entry['usec_per_call']) / 1000:.1f} ms"
        for name, entry in ranked
    )
    slow: Any = client.slowlog_get(100_000)
    longest = max(slow, key=lambda entry: entry["duration"], default=None)
    worst = "none" if longest is None else f"{longest['duration'] / 1000:.1f} ms"
    if longest is not None:
        worst += f" ({longest['command'].split()[0].decode()})"
    return (
        f"mean per call {means}; longest call {worst}, "
        f"{len(slow)} calls over {SLOW_CALL_US / 1000:g} ms"
    )


#: Seconds between two PINGs of :func:`ping_probe`.
PING_INTERVAL = 0.002


def _ping_until_told(url: str, stop: Any, results: Any) -> None:
    """A client other than the repricer: PING every :data:`PING_INTERVAL` seconds until
    ``stop`` is set, then send back each round trip's seconds."""
    client = redis.Redis.from_url(url)
    timings: list[float] = []
    try:
        while not stop.is_set():
            start = time.perf_counter()
            client.ping()
            timings.append(time.perf_counter() - start)
            time.sleep(PING_INTERVAL)
    finally:
        client.close()
        results.send(timings)


@contextmanager
def ping_probe(url: str) -> Iterator[list[str]]:
    """What another client of the same Redis sees while the block runs: the round trip of
    a PING from its own process, every :data:`PING_INTERVAL` seconds. The list it yields
    holds the summary once the block ends. On 2 cores the probe also waits for a core, so
    this is a client's whole delay, Redis's share and the machine's."""
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_ping_until_told, args=(url, stop, send), daemon=True)
    process.start()
    summary: list[str] = []
    try:
        yield summary
    finally:
        stop.set()
        timings = sorted(receive.recv())
        process.join()
    if timings:

        def at(share: float) -> str:
            return f"{timings[min(len(timings) - 1, int(share * len(timings)))] * 1000:.1f}"

        summary.append(
            f"p50 {at(0.5)} ms, p99 {at(0.99)} ms, p99.9 {at(0.999)} ms, "
            f"max {timings[-1] * 1000:.1f} ms ({len(timings):,} PINGs)"
        )
    else:
        summary.append("none sent: the block ended before the probe's process started")


def redis_benchmark_ceiling(socket: Path) -> tuple[float, str]:
    """SET requests/s from ``redis-benchmark -P 64 -t set -n 1000000 -q`` on ``socket``."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return 0.0, "redis-benchmark not found: install redis-tools"
    command = [binary, "-s", str(socket), "-P", "64", "-t", "set", "-n", "1000000", "-q"]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    line = output.strip().splitlines()[-1] if output.strip() else ""
    # "SET: 1234567.00 requests per second, p50=0.415 msec" (after carriage-return updates)
    text = line.split("\r")[-1].strip()
    try:
        rate = float(text.split(":", 1)[1].split("requests")[0])
    except (IndexError, ValueError):
        return 0.0, f"could not parse redis-benchmark output: {text!r}"
    return rate, text


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


@dataclass(frozen=True, slots=True)
class SizeResult:
    items: int
    runs: list[Run]
    memory_growth: int  # used_memory growth over the first reprice
    key_bytes: dict[str, float]  # MEMORY USAGE per key kind, mean over a sample of SKUs
    store_rate: float  # Store.publish_many alone, schedules/s
    store_bytes: float  # used_memory growth per schedule published by publish_many alone
    ceiling: float  # redis-benchmark SET/s
    ceiling_text: str

    @property
    def bytes_per_decision(self) -> float:
        return self.memory_growth / max(1, self.runs[0].counts.published)


def key_memory(client: redis.Redis, count: int, sample: int = 1_000) -> dict[str, float]:
    """Mean ``MEMORY USAGE`` (key, value and overhead) per kind of key a publish writes."""
    kinds: dict[str, Callable[[str], str]] = {
        "schedule with its current audit record and moves": lambda sku: keys.schedule(sku, ""),
        "history list (superseded records)": keys.audit,
    }
    step = max(1, count // sample)
    skus = [f"SKU-{index:07d}" for index in range(0, count, step)]
    means = {}
    for kind, key in kinds.items():
        sizes = [client.memory_usage(key(sku), samples=0) or 0 for sku in skus]
        means[kind] = sum(sizes) / len(sizes)
    return means


def synthetic_requests(count: int) -> list[PublishRequest]:
    """One-window schedules with a two-step explanation, for the store-only figure."""
    requests = []
    for index in range(count):
        sku = f"STORE-{index:07d}"
        price = Decimal(1000 + index % 90_000) / 100
        decision = Decision(
            sku=sku,
            segment="",
            currency="USD",
            price=price,
            valid_from=NOW,
            valid_until=None,
            rule_id="default",
            ruleset_version="bench",
            strategy="cost_plus",
            steps=(
                Step("strategy", "cost_plus", None, price, "cost plus 35.00%"),
                Step("rounding", "rounding", price, price, "price ending / price point"),
            ),
            guardrails_fired=(),
            inputs=(InputUsed("cost", str(price * 100 / 135), "catalogue"),),
            changed=True,
        )
        requests.append(PublishRequest(sku, "", [decision], f"store-{index}"))
    return requests


async def store_only(url: str, count: int) -> float:
    """Schedules/s of ``Store.publish_many`` on prepared requests: the store's own part."""
    requests = synthetic_requests(count)
    store = Store.from_url(url, retention=timedelta(days=35), socket_timeout=60.0)
    try:
        start = time.perf_counter()
        for first in range(0, count, 10_000):
            await store.publish_many(requests[first : first + 10_000], now=NOW)
        return count / (time.perf_counter() - start)
    finally:
        await store.close()


async def bench_size(
    server: EmbeddedRedis,
    rules_dir: Path,
    compiled: CompiledRuleset,
    count: int,
    seed: int,
    profile: bool,
    processes: Sequence[int],
    selling: float | None = None,
) -> SizeResult:
    client = redis.Redis.from_url(server.url)
    runs: list[Run] = []
    memory_growth = 0
    key_bytes: dict[str, float] = {}
    try:
        for workers in processes:
            client.flushall()  # our own server, started by this script
            started = time.perf_counter()
            seed_catalogue(client, count, seed, selling)
            print(f"\n{count:,} items seeded in {time.perf_counter() - started:.1f} s")
            before = used_memory(client)
            before_info: Any = client.info("memory")
            client.config_set("slowlog-log-slower-than", SLOW_CALL_US)
            client.config_set("slowlog-max-len", 100_000)
            client.slowlog_reset()
            client.config_resetstat()
            label = f"first/{workers}p"
            cpu_before = redis_cpu_seconds(client)
            with ping_probe(server.url) as pings:
                first = await timed_reprice(
                    server.url, rules_dir, compiled, label, count, profile and workers == 1, workers
                )
            if not memory_growth:
                memory_growth = used_memory(client) - before
                key_bytes = key_memory(client, count)
                info: Any = client.info("memory")
                growth = {
                    name: int(info.get(name, 0)) - int(before_info.get(name, 0))
                    for name in (
                        "used_memory",
                        "used_memory_dataset",
                        "mem_clients_normal",
                        "used_memory_vm_eval",
                    )
                }
                print("  memory growth over it (INFO memory, B):", growth)
            print(f"{label}: {first.seconds:.1f} s, {first.counts.as_dict()}")
            redis_cpu = redis_cpu_seconds(client) - cpu_before
            print(f"  Redis's own time: {redis_cpu / count * 1e6:.1f} µs of CPU per SKU")
            print(f"  Redis busy for other clients: {blocking_calls(client)}")
            print(f"  a PING every {PING_INTERVAL * 1000:g} ms from another process: {pings[0]}")
            label = f"repeat/{workers}p"
            repeat = await timed_reprice(
                server.url, rules_dir, compiled, label, count, False, workers
            )
            print(f"{label}: {repeat.seconds:.1f} s, {repeat.counts.as_dict()}")
            runs += [first, repeat]
        store_count = min(count, 100_000)
        before_store = used_memory(client)
        store_rate = await store_only(server.url, store_count)
        store_bytes = (used_memory(client) - before_store) / store_count
        ceiling, ceiling_text = redis_benchmark_ceiling(server.socket)
    finally:
        client.close()
    return SizeResult(
        items=count,
        runs=runs,
        memory_growth=memory_growth,
        key_bytes=key_bytes,
        store_rate=store_rate,
        store_bytes=store_bytes,
        ceiling=ceiling,
        ceiling_text=ceiling_text,
    )


def share_of_skus(text: str) -> float:
    """An argparse type: a share from 0 to 1."""
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, not {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, nargs="+", default=[100_000])
    parser.add_argument("--profile", action="store_true", help="cProfile the first reprice")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--windowed", action="store_true", help="rules with weekday-evening windows"
    )
    parser.add_argument(
        "--selling",
        type=share_of_skus,
        default=None,
        metavar="SHARE",
        help=f"this share of the SKUs sells every day: {SELLING_DAYS} days of units, revenue "
        "and inventory in its sales hash, about 105 fields (default: one in five SKUs with "
        "10 days of units; a selling catalogue takes far more Redis memory: about 5 GB more "
        "per 1,000,000 selling SKUs)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        nargs="+",
        default=[1, 2],
        help="worker processes per run (reprice --all --processes); each gets a fresh store",
    )
    args = parser.parse_args(argv)
    print("Full reprice benchmark (bench/reprice.py)")
    print(f"python {platform.python_version()}, cpus {os.cpu_count()}, seed {args.seed}")
    if args.selling is not None:
        print(f"sales: {args.selling:.0%} of the SKUs sell every day ({SELLING_DAYS} days)")
    print(f"machine at start: {_load()}")
    results: list[SizeResult] = []
    with tempfile.TemporaryDirectory(prefix="reprice-bench-") as scratch:
        rules_dir, compiled = bench_rules(
            Path(scratch), WINDOWED_RULES if args.windowed else BENCH_RULES
        )
        server = EmbeddedRedis(Path(scratch) / "redis", persistent=False)
        server.start()
        try:
            for count in args.items:
                size = bench_size(
                    server,
                    rules_dir,
                    compiled,
                    count,
                    args.seed,
                    args.profile,
                    args.processes,
                    args.selling,
                )
                results.append(asyncio.run(size))
        finally:
            server.stop()

    print(f"\nat the end: {_load()}")
    header = (
        f"{'items':>9}  {'run':<10} {'seconds':>8} {'decisions/s':>12} {'published':>10} "
        f"{'x SET ceiling':>13}"
    )
    print(header)
    print("-" * len(header))
    for result in results:
        for run in result.runs:
            share = run.per_second / result.ceiling if result.ceiling else float("nan")
            print(
                f"{result.items:>9,}  {run.label:<10} {run.seconds:>8.2f} "
                f"{run.per_second:>12,.0f} {run.counts.published:>10,} {share:>13.4f}"
            )
    print(
        "first: nothing published before; repeat: the same inputs again (fingerprints match "
        "except where the first reprice moved the price in force). x SET ceiling: over "
        "redis-benchmark SET requests/s on the same server in the same run."
    )
    for result in results:
        print(f"\n{result.items:,} items:")
        print(f"  redis-benchmark -P 64 -t set -n 1000000 -q: {result.ceiling_text}")
        print(
            f"  store only (Store.publish_many of prepared schedules): "
            f"{result.store_rate:,.0f} schedules/s, {result.store_bytes:,.0f} B each"
        )
        print(
            f"  redis memory: {result.bytes_per_decision:,.0f} B per stored decision "
            f"({result.memory_growth / 2**20:,.1f} MiB over the first reprice)"
        )
        print(
            "  MEMORY USAGE per key (mean of a sample): "
            + ", ".join(f"{kind} {size:,.0f} B" for kind, size in result.key_bytes.items())
        )
    largest = results[-1]
    first = max(
        (run for run in largest.runs if run.label.startswith("first")), key=lambda r: r.per_second
    )
    verdict = "MET" if first.per_second >= GOAL_DECISIONS_PER_SECOND else "MISSED"
    print(
        f"GOAL full reprice >= 100,000 decisions/s end to end: {verdict} "
        f"({first.per_second:,.0f}/s over {largest.items:,} items, {first.label}, audit "
        f"included; store alone {largest.store_rate:,.0f}/s; "
        f"redis-benchmark SET {largest.ceiling:,.0f}/s)"
    )
    verdict = "MET" if largest.bytes_per_decision <= GOAL_BYTES_PER_DECISION else "MISSED"
    print(
        f"GOAL redis memory <= 400 B per stored decision: {verdict} "
        f"({largest.bytes_per_decision:,.0f} B)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
