"""Benchmark the full reprice's planning alone: ``plan_chunk`` on rows read beforehand.

    python bench/plan.py [--items 20000] [--rounds 5] [--collector on off] [--selling SHARE]

``plan_chunk`` is the fast lane's pure part (parse the stored inputs, price every window,
explain, encode the audit records). Here it runs with no Redis traffic and no other
process, so a change to it shows through the noise that hides it in ``bench/reprice.py``.
The script seeds the catalogue of ``bench/reprice.py`` into a ``redis-server`` child of
its own, reads every SKU's inputs once before any reprice (*first*) and once after one
(*repeat*: every SKU has a published schedule, most fingerprints match), then times
``plan_chunk`` over both in chunks of 10,000, best of ``--rounds``, with the cyclic
garbage collector on and off (a full reprice pauses it while planning).

For a count that repeats exactly whatever else the machine does, run it under callgrind
and compare the totals of two versions: ``valgrind --tool=callgrind python bench/plan.py
--items 3000 --rounds 1 --collector on``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "bench"))

import redis  # noqa: E402
from reprice import NOW, bench_rules, seed_catalogue, share_of_skus  # noqa: E402

from pricing_service.engine.compiled import CompiledRuleset  # noqa: E402
from pricing_service.engine.segments import priced_segments  # noqa: E402
from pricing_service.repricer.columnar import plan_chunk  # noqa: E402
from pricing_service.repricer.full import CHUNK_SIZE, reprice_all  # noqa: E402
from pricing_service.repricer.inputs import read_chunk  # noqa: E402
from pricing_service.repricer.pricer import Pricer  # noqa: E402
from pricing_service.store.embedded import EmbeddedRedis  # noqa: E402
from pricing_service.store.store import Store  # noqa: E402


async def read_rows(
    url: str, compiled: CompiledRuleset, count: int, selling: float | None = None
) -> tuple[list[str], list[list[Any]], list[list[Any]]]:
    """The SKUs, and their stored inputs before and after a first reprice."""
    client = redis.Redis.from_url(url)
    try:
        seed_catalogue(client, count, seed=7, selling=selling)
    finally:
        client.close()
    store = Store.from_url(url, retention=timedelta(days=35), socket_timeout=60.0)
    try:
        skus = [f"SKU-{index:07d}" for index in range(count)]
        segments = [str(segment) for segment in priced_segments(compiled)]
        first = await read_chunk(store, skus, segments, NOW)
        await reprice_all(Pricer(store, boundary_lead_seconds=60), compiled, NOW)
        repeat = await read_chunk(store, skus, segments, NOW)
    finally:
        await store.close()
    return skus, first, repeat


def best_seconds(
    compiled: CompiledRuleset, skus: Sequence[str], rows: Sequence[Sequence[Any]], rounds: int
) -> float:
    segments = priced_segments(compiled)
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for start in range(0, len(skus), CHUNK_SIZE):
            end = start + CHUNK_SIZE
            plan_chunk(
                compiled,
                skus[start:end],
                rows[start:end],
                segments,
                NOW,
                read_at=0,
                boundary_lead_seconds=60,
            )
        best = min(best, time.perf_counter() - started)
    return best


def positive(text: str) -> int:
    """An argparse type: a whole number above zero."""
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=positive, default=20_000)
    parser.add_argument("--rounds", type=positive, default=5)
    parser.add_argument("--collector", nargs="+", choices=["on", "off"], default=["on", "off"])
    parser.add_argument(
        "--selling",
        type=share_of_skus,
        default=None,
        metavar="SHARE",
        help="this share of the SKUs sells every day (as bench/reprice.py --selling)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="plan-bench-") as scratch:
        _, compiled = bench_rules(Path(scratch))
        server = EmbeddedRedis(Path(scratch) / "redis", persistent=False)
        server.start()
        try:
            skus, first, repeat = asyncio.run(
                read_rows(server.url, compiled, args.items, args.selling)
            )
        finally:
            server.stop()
    print(f"plan_chunk alone, {args.items:,} SKUs, best of {args.rounds} rounds")
    for collector in args.collector:
        if collector == "off":
            gc.disable()
        else:
            gc.enable()
        for label, rows in (("first", first), ("repeat", repeat)):
            seconds = best_seconds(compiled, skus, rows, args.rounds)
            per_sku = seconds / len(skus) * 1e6
            print(f"  collector {collector:<3}  {label:<6}  {per_sku:6.1f} µs per SKU")
    gc.enable()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
