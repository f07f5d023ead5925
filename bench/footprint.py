"""Redis memory per SKU at steady state, by key family, for a stated activity profile.

usage: .venv/bin/python bench/footprint.py [--skus 200] [--competitors 5]
                                           [--crawls-per-day 24] [--sales-per-day 24]
                                           [--seed 7]

Capacity planning needs more than the bytes per stored decision (``bench/reprice.py``):
what a SKU's inputs cost once the service has run for a retention period. This writes a
sample of SKUs through the service's own write paths, on a Redis of its own:

- the item (``Store.put_items``);
- for each competitor, one crawl per ``--crawls-per-day`` slot: the job's outcome, the
  latest offer and the offer history, through the crawler's ``OutcomeRecorder.finish``;
  each crawl draws a new price (the worst case for packing the history into blocks),
  and the repricers' sweep moves old history entries into blocks between crawl rounds.
  Outcomes are kept ``PRICING_CRAWL_OUTCOME_RETENTION_SECONDS`` and the history for the
  retention, so the sample writes what each holds at steady state;
- ``--sales-per-day`` sales events a day over the retention, each with an id, through
  ``Store.record_sales``: day buckets, hour buckets (the last 7 days) and the event ids;
- ``--reprices-per-day`` new decisions a day over the retention, through the repricer's
  ``Pricer`` with the rules of ``--rules`` (the repository's by default), in every
  segment they price: each round gives every item a new cost, so every schedule is
  published with a new audit record, and the one it replaces joins the audit trail
  (kept for the retention). The repricers' sweep packing superseded records into blocks
  runs after each round, as it does hourly by default, unless ``--no-compaction``.

It prints ``MEMORY USAGE`` summed per key family and divided by the SKUs, and the total.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from crawlers.jobs import Job, OfferWrite, OutcomeRecorder  # noqa: E402
from crawlers.keys import CrawlQueue  # noqa: E402
from crawlers.outcome import Outcome  # noqa: E402
from crawlers.settings import CrawlerSettings  # noqa: E402
from pricing_service.engine.compiled import CompiledRuleset  # noqa: E402
from pricing_service.engine.inputs import CompetitorObservation, ItemFacts  # noqa: E402
from pricing_service.engine.segments import priced_segments  # noqa: E402
from pricing_service.repricer.pricer import Pricer  # noqa: E402
from pricing_service.repricer.worker import read_ruleset  # noqa: E402
from pricing_service.settings import Settings  # noqa: E402
from pricing_service.store.embedded import EmbeddedRedis  # noqa: E402
from pricing_service.store.store import OfferStatus, Sale, Store  # noqa: E402

#: Key families by the suffix after the SKU's hash tag (``p:{SKU}:<suffix>``).
FAMILIES = (
    ("item", "item"),
    ("offers", "offers (latest per competitor)"),
    ("offers:hist", "offer history (stream)"),
    ("offers:old", "offer history (blocks)"),
    ("crawl", "crawl outcomes"),
    ("sales", "sales day buckets"),
    ("sales:h", "sales hour buckets"),
    ("sales:ids", "sales event ids"),
    ("sched", "schedules (current decision)"),
    ("audit", "audit trail (superseded)"),
)


def _family(key: str) -> str:
    suffix = key.split("}:", 1)[1]
    if suffix.startswith("crawl:"):
        return "crawl"
    if suffix.startswith("sales:ids"):
        return "sales:ids"
    if suffix.startswith("sched:"):
        return "sched"
    return suffix


async def write_sample(
    store: Store,
    skus: int,
    competitors: int,
    crawls_per_day: int,
    sales_per_day: int,
    seed: int,
    compaction: bool,
) -> int:
    """Write the inputs; the offer-history blocks the sweeps wrote."""
    history_blocks = 0
    rng = random.Random(seed)
    now = datetime.now(UTC)
    retention_days = store.retention.days
    outcome_retention = CrawlerSettings().outcome_retention_seconds
    recorder = OutcomeRecorder(store, outcome_retention)
    queue = CrawlQueue(0)
    names = [f"competitor-{index}" for index in range(competitors)]
    crawl_every = timedelta(days=1) / crawls_per_day
    for number in range(skus):
        sku = f"SKU-{number:06d}"
        base = Decimal(rng.randint(1_000, 200_000)) / 100
        await store.put_items(
            [
                ItemFacts(
                    sku=sku,
                    currency="USD",
                    cost=(base * Decimal("0.6")).quantize(Decimal("0.01")),
                    list_price=base,
                    inventory=rng.randint(0, 500),
                    category="electronics",
                    brand="acme",
                )
            ]
        )
        history = retention_days * crawls_per_day
        for crawl in range(history):
            at = now - crawl_every * (history - 1 - crawl)
            for competitor in names:
                price = (base * Decimal(rng.uniform(0.9, 1.1))).quantize(Decimal("0.01"))
                offer = OfferStatus(
                    observation=CompetitorObservation(
                        competitor=competitor,
                        price=price,
                        currency="USD",
                        observed_at=at,
                        shipping=Decimal("4.99"),
                    ),
                    received_at=at,
                )
                write = OfferWrite(sku, offer, store.retention, dirty=False)
                job = Job.new(sku, competitor, at.timestamp(), queue)
                detail = {"price": str(price), "method": "json-ld", "consumer": "bench-1"}
                kept = at.timestamp() > now.timestamp() - outcome_retention
                if kept:  # the job's outcome key, for the days it lives
                    await recorder.finish(job, "0-1", Outcome.ACCEPTED, detail, write)
                else:  # older: only the offer history still holds it
                    await store.record_offers({sku: [offer]})
            if compaction:  # the repricers' sweep, between crawl rounds as it runs hourly
                history_blocks += await store.archive_offer_history([sku])
        events = [
            Sale(
                now - timedelta(days=day, seconds=rng.randint(0, 86_399)),
                1,
                base,
                f"order-{rng.getrandbits(48):012x}",
            )
            for day in range(retention_days - 1, -1, -1)
            for _ in range(sales_per_day)
        ]
        events = [sale if sale.at <= now else Sale(now, 1, base, sale.event_id) for sale in events]
        for start in range(0, len(events), 500):
            await store.record_sales({sku: ("USD", events[start : start + 500])})
    return history_blocks


async def reprice_sample(
    store: Store, compiled: CompiledRuleset, reprices: int, compaction: bool
) -> tuple[int, float]:
    """Reprice ``reprices`` times; the blocks the sweeps wrote and their seconds."""
    skus = [sku async for chunk in store.iter_skus() for sku in chunk]
    items = [item for item in await store.get_items(skus) if item is not None]
    pricer = Pricer(store, boundary_lead_seconds=60)
    blocks, sweeping = 0, 0.0
    for round_number in range(reprices):
        # A new cost: new inputs, so a new decision and audit record in every segment.
        step = Decimal(round_number % 50) / 100
        await store.put_items(
            [item.model_copy(update={"cost": (item.cost or Decimal(1)) + step}) for item in items]
        )
        await pricer.price(compiled, skus, datetime.now(UTC))
        if compaction:  # the repricers' sweep, once per reprice (hourly by default)
            started = time.perf_counter()
            blocks += (await store.compact_all()).audit_blocks
            sweeping += time.perf_counter() - started
    return blocks, sweeping


async def measure(store: Store) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    async for raw in store.redis.scan_iter(match="p:{*", count=1_000):
        key = raw.decode()
        size = await store.redis.memory_usage(key, samples=0)
        totals[_family(key)] += int(size or 0)
    return totals


async def run(args: argparse.Namespace, url: str) -> None:
    settings = Settings(redis_url=url)
    store = Store.from_url(url, retention=timedelta(days=settings.retention_days))
    started = time.perf_counter()
    compaction = not args.no_compaction
    history_blocks = await write_sample(
        store,
        args.skus,
        args.competitors,
        args.crawls_per_day,
        args.sales_per_day,
        args.seed,
        compaction,
    )
    print(f"wrote the inputs in {time.perf_counter() - started:.1f} s")
    if compaction:
        print(f"offer-history sweeps wrote {history_blocks} blocks")
    reprices = store.retention.days * args.reprices_per_day
    if reprices:
        loaded, diagnostics = read_ruleset(args.rules)
        if loaded is None:
            raise SystemExit(f"the rules in {args.rules} do not load: {diagnostics}")
        segments = len(priced_segments(loaded.compiled))
        print(f"repricing {reprices} times in {segments} segments (rules: {args.rules})")
        started = time.perf_counter()
        blocks, sweeping = await reprice_sample(store, loaded.compiled, reprices, compaction)
        print(f"repriced the sample in {time.perf_counter() - started:.1f} s")
        if compaction:
            per_block = f", {sweeping / blocks * 1000:.2f} ms a block" if blocks else ""
            print(
                f"sweeps: {reprices} of them wrote {blocks} audit blocks in {sweeping:.2f} s"
                f"{per_block}, {sweeping / reprices / args.skus * 1e6:.0f} us per SKU a sweep"
            )
    totals = await measure(store)
    await store.redis.aclose()
    total = sum(totals.values())
    print()
    print(f"{'key family':<32} {'bytes per SKU':>14}")
    for family, label in FAMILIES:
        print(f"{label:<32} {totals.pop(family, 0) / args.skus:>14,.0f}")
    for family, size in sorted(totals.items()):
        print(f"{family:<32} {size / args.skus:>14,.0f}")
    print(f"{'total':<32} {total / args.skus:>14,.0f}")


def _at_least(lowest: int) -> Callable[[str], int]:
    def integer(text: str) -> int:
        value = int(text)
        if value < lowest:
            raise argparse.ArgumentTypeError(f"must be at least {lowest}, not {text}")
        return value

    return integer


_positive = _at_least(1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--skus", type=_positive, default=200, help="SKUs in the sample")
    parser.add_argument("--competitors", type=_positive, default=5)
    parser.add_argument("--crawls-per-day", type=_positive, default=24, help="per competitor")
    parser.add_argument("--sales-per-day", type=_positive, default=24, help="per SKU")
    parser.add_argument(
        "--reprices-per-day", type=_at_least(0), default=24, help="new decisions a day (0: none)"
    )
    parser.add_argument("--rules", type=Path, default=REPO_ROOT / "rules", help="rules folder")
    parser.add_argument(
        "--no-compaction",
        action="store_true",
        help="without the sweep that packs superseded audit records and old offer-history "
        "entries into blocks",
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    print(
        f"profile: {args.skus} SKUs, {args.competitors} competitors crawled "
        f"{args.crawls_per_day} times a day, {args.sales_per_day} sales a day with ids, "
        f"{args.reprices_per_day} new decisions a day, "
        f"retention {Settings().retention_days} days"
    )
    with tempfile.TemporaryDirectory(prefix="footprint-bench-") as scratch:
        server = EmbeddedRedis(Path(scratch) / "redis", persistent=False)
        url = server.start()
        try:
            asyncio.run(run(args, url))
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
