"""Benchmark the elasticity fit: 100,000 items x 56 days, items fitted per second.

    python bench/elasticity.py [--items 100000] [--days 56] [--repeats 3] [--seed 7]
                               [--refit-items 10000]

One core (BLAS/OpenMP threads pinned to 1 before numpy loads). The rows are generated with
numpy (constant-elasticity demand with day-of-week effects and Poisson noise), so only
:func:`fit_elasticities` is timed. The baseline, run in the same process on the same
columns, is one plain numpy pass: log price and log units summed per item with
``np.bincount``, the least any per-item regression must do; the ratio stays meaningful on
a noisy machine. Each figure is the best of ``--repeats``. The recovery of the true
elasticities is printed too, so a fast wrong fit would show.

With ``--refit-items N`` it also times the whole refit (``pricing elasticity fit``) on N
SKUs with 34 days of day buckets each in a dedicated ``redis-server`` child (Unix socket,
no persistence): reading items, buckets and the previous estimates, the fit, and writing
the estimates. Its baseline, in the same run, is one pipelined ``HGETALL`` of the same
bucket hashes, the least any refit must read.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402  (numpy must see the thread settings above)
import asyncio  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from decimal import Decimal  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from pricing_service.demand.buckets import day_bucket  # noqa: E402
from pricing_service.elasticity.fit import ElasticityFit, fit_elasticities  # noqa: E402
from pricing_service.elasticity.refit import refit  # noqa: E402
from pricing_service.engine.inputs import ItemFacts  # noqa: E402
from pricing_service.store import keys  # noqa: E402
from pricing_service.store.embedded import EmbeddedRedis  # noqa: E402
from pricing_service.store.store import Store  # noqa: E402

REFIT_DAYS = 34
SEED_CHUNK = 1_000


def _best(work: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=56)
    parser.add_argument("--categories", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--refit-items", type=int, default=0, help="also time a refit in Redis")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    n, days = args.items, args.days
    truth = rng.uniform(-3.0, -1.2, n)
    category = rng.integers(0, args.categories, n).astype(np.int64)
    item = np.repeat(np.arange(n, dtype=np.int64), days)
    dow = (np.tile(np.arange(days, dtype=np.int64), n) + rng.integers(0, 7, n)[item]) % 7
    price = 20.0 * np.exp(rng.normal(0, 0.1, item.size))
    day_effect = np.array([0.0, -0.1, -0.1, 0.0, 0.15, 0.4, 0.3])
    mean = np.exp(
        rng.uniform(1.5, 4.0, n)[item] + day_effect[dow] + truth[item] * np.log(price / 20)
    )
    units = rng.poisson(mean).astype(np.float64)
    print(f"{n:,} items x {days} days = {item.size:,} rows, {args.categories} categories")

    def baseline() -> None:
        usable = units > 0
        np.bincount(item[usable], weights=np.log(price[usable]), minlength=n)
        np.bincount(item[usable], weights=np.log(units[usable]), minlength=n)

    def fit(counts: bool) -> ElasticityFit:
        return fit_elasticities(item, price, units, dow, category, n, units_are_counts=counts)

    base_seconds = _best(baseline, args.repeats)
    print(f"baseline (numpy pass)   {base_seconds:8.3f} s")
    # Weighted by units, as the refit fits sales counts; unweighted (plain log-log least
    # squares) for comparison.
    for label, counts in (("fit_elasticities", True), ("  unweighted", False)):
        seconds = _best(partial(fit, counts), args.repeats)
        result = fit(counts)
        error, raw_error = result.elasticity - truth, result.raw_elasticity - truth
        print(f"{label:22s}  {seconds:8.3f} s  {n / seconds:12,.0f} items/s")
        print(f"{'':22s}  {seconds / base_seconds:8.1f} x baseline")
        print(
            f"{'':22s}  recovery: RMSE pooled {np.sqrt(np.nanmean(error**2)):.3f}, "
            f"raw {np.sqrt(np.nanmean(raw_error**2)):.3f}; mean raw error "
            f"{np.nanmean(raw_error):+.3f}; |error| < 2 SE for "
            f"{np.nanmean(np.abs(error) < 2 * result.standard_error):.1%}"
        )
    if args.refit_items:
        refit_bench(args.refit_items, args.seed)


async def _seed(store: Store, n: int, seed: int) -> None:
    """N items in 20 categories, each with REFIT_DAYS day buckets written directly."""
    rng = np.random.default_rng(seed)
    today = datetime.now(UTC)
    days = [day_bucket(today - timedelta(days=back)) for back in range(1, REFIT_DAYS + 1)]
    for start in range(0, n, SEED_CHUNK):
        skus = [f"SKU-{i}" for i in range(start, min(n, start + SEED_CHUNK))]
        items = [
            ItemFacts(sku=sku, currency="USD", list_price=Decimal("20.00"), category=f"c{i % 20}")
            for i, sku in enumerate(skus, start)
        ]
        await store.put_items(items)
        async with store.redis.pipeline(transaction=False) as pipe:
            for sku in skus:
                cents = np.round(2000 * np.exp(rng.normal(0, 0.1, REFIT_DAYS))).astype(int)
                units = rng.poisson(30 * (cents / 2000) ** rng.uniform(-3, -1.2))
                fields: dict[str, int] = {}
                for day, price, sold in zip(days, cents, units, strict=True):
                    fields[f"u:{day}"] = int(sold)
                    fields[f"r:{day}"] = int(sold * price)
                pipe.hset(keys.sales(sku), mapping=fields)  # type: ignore[arg-type]
            await pipe.execute()
    await store.redis.delete(keys.DIRTY_STREAM)


async def _refit_bench(url: str, n: int, seed: int) -> None:
    store = Store.from_url(url, retention=timedelta(days=35), socket_timeout=60.0)
    try:
        await _seed(store, n, seed)
        skus = [sku async for chunk in store.iter_skus() for sku in chunk]
        started = time.perf_counter()
        for start in range(0, len(skus), 10_000):
            await store.sales_buckets(skus[start : start + 10_000])
        read_seconds = time.perf_counter() - started
        first = await refit(store)
        again = await refit(store)
    finally:
        await store.close()
    print(f"refit of {n:,} SKUs x {REFIT_DAYS} days in Redis:")
    print(f"baseline (HGETALL pass)  {read_seconds:8.3f} s")
    for name, summary in (("first fit", first), ("unchanged refit", again)):
        print(
            f"{name:<24} {summary.seconds:8.3f} s  {n / summary.seconds:12,.0f} items/s  "
            f"{summary.seconds / read_seconds:5.1f} x baseline  ({summary.changed:,} changed)"
        )


def refit_bench(n: int, seed: int) -> None:
    with tempfile.TemporaryDirectory(prefix="elasticity-bench-") as scratch:
        server = EmbeddedRedis(Path(scratch) / "redis", persistent=False)
        url = server.start()
        try:
            asyncio.run(_refit_bench(url, n, seed))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
