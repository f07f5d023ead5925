"""Publishing schedules the way the repricer does, for the API tests to look up."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from pricing_service.engine import CompiledRuleset, ItemFacts, PricingInputs, Segment, schedule
from pricing_service.engine.segments import canonical_segment
from pricing_service.rules.loader import load_ruleset
from pricing_service.store.store import PublishResult, Store, fingerprint


def publish(
    redis_url: str,
    rules_dir: Path,
    item: ItemFacts,
    at: datetime,
    *,
    segment: str = "",
    tag: str = "",
    queue_partitions: int = 1,
) -> PublishResult:
    """Store ``item``, then compute and publish its schedule from ``at`` (sync, for tests
    that talk to the server from the test thread)."""

    async def run() -> PublishResult:
        compiled = CompiledRuleset(load_ruleset(rules_dir))
        stored = canonical_segment(compiled, Segment.parse(segment))
        decisions = schedule(compiled, PricingInputs(item=item), at, segment=stored)
        store = Store.from_url(
            redis_url, retention=timedelta(days=35), queue_partitions=queue_partitions
        )
        try:
            await store.put_items([item])
            mark = fingerprint(
                compiled.version, str(stored), item.model_dump_json() + tag, decisions
            )
            return await store.publish(
                item.sku, str(stored), decisions, fingerprint_value=mark, now=at
            )
        finally:
            await store.close()

    return asyncio.run(run())


def item(sku: str = "SKU-1", list_price: str = "50.00") -> ItemFacts:
    return ItemFacts(sku=sku, currency="USD", list_price=Decimal(list_price))
