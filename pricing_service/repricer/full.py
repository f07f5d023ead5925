"""``reprice --all`` and ``reprice SKU...``: price the catalogue now, outside the queue.

The full reprice runs the catalogue in chunks through the vectorised path, which prices
the window in force for a whole chunk at once. A SKU whose result matches its published
schedule (same fingerprint) needs nothing more. The others, and every SKU whose schedule
has more than one window within the horizon, get their schedule and explanation from the
single path, which is what gets published. Items with a manual override in force go
straight to the single path: the vectorised path has no overrides. A chunk's schedules
are published together through the store's pipelined bulk path.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from pricing_service import metrics
from pricing_service.engine.batch import (
    HELD_NAMES,
    MISSING,
    BatchDecisions,
    BatchInputs,
    decide_batch,
    encode_batch,
)
from pricing_service.engine.compiled import GUARDRAIL_NAMES, CompiledRuleset
from pricing_service.engine.decision import Decision
from pricing_service.engine.inputs import PricingInputs, Segment
from pricing_service.engine.segments import priced_segments
from pricing_service.money import from_minor
from pricing_service.repricer.inputs import LoadedInputs, fingerprint_json, load_segments
from pricing_service.repricer.pricer import Pricer, RepriceCounts, next_boundary
from pricing_service.store import keys
from pricing_service.store.store import (
    PublishRequest,
    fingerprint,
)

logger = logging.getLogger(__name__)

CHUNK_SIZE = 10_000


def current_instant() -> datetime:
    """Now, to the second: decisions start on whole seconds, so fingerprints agree."""
    return datetime.now(UTC).replace(microsecond=0)


async def reprice_skus(
    pricer: Pricer, compiled: CompiledRuleset, skus: Sequence[str], now: datetime | None = None
) -> RepriceCounts:
    """Price the given SKUs now (single path) and publish."""
    unique = sorted(set(skus))
    return await pricer.price(compiled, unique, now or current_instant())


async def reprice_all(
    pricer: Pricer,
    compiled: CompiledRuleset,
    now: datetime | None = None,
    *,
    chunk_size: int = CHUNK_SIZE,
    on_progress: Callable[[int], None] | None = None,
) -> RepriceCounts:
    """Price every SKU in the catalogue and publish; ``on_progress`` gets each chunk's size."""
    moment = now or current_instant()
    counts = RepriceCounts()
    async for chunk in pricer.store.iter_skus(batch=chunk_size):
        counts.add(await _price_chunk(pricer, compiled, chunk, moment))
        if on_progress is not None:
            on_progress(len(chunk))
    return counts


async def _price_chunk(
    pricer: Pricer, compiled: CompiledRuleset, skus: Sequence[str], now: datetime
) -> RepriceCounts:
    segments = priced_segments(compiled)
    read_at = await pricer.store.read_clock()
    loaded = await load_segments(pricer.store, compiled, skus, now, [str(s) for s in segments])
    frozen = await pricer.store.is_frozen()
    horizon_end = int(now.timestamp() + compiled.horizon.total_seconds())
    counts = RepriceCounts()
    boundaries: dict[str, int | None] = {}
    pending: list[tuple[PricingInputs, Segment, list[Decision]]] = []
    for segment in segments:
        entries = loaded[str(segment)]
        by_currency: dict[str, list[str]] = defaultdict(list)
        for sku, entry in entries.items():
            if entry.inputs.override is None:
                by_currency[entry.inputs.item.currency].append(sku)
        batch_prices: dict[str, Decision] = {}
        for group in by_currency.values():
            batch_prices.update(_first_windows(compiled, entries, group, segment, now))
        for sku, entry in entries.items():
            from_batch = batch_prices.get(sku)
            if (
                from_batch is not None
                and _single_window(from_batch, horizon_end)
                and _matches_published(compiled, entry, segment, from_batch)
            ):
                pricer.observe(from_batch, counts)
                continue
            decisions = pricer.compute(compiled, sku, entry.inputs, segment, now, counts)
            if decisions is None:
                continue
            if from_batch is not None and from_batch.price != decisions[0].price:
                logger.error(
                    "engine paths disagree on %s (segment %r): batch %s, single %s",
                    sku,
                    str(segment),
                    from_batch.price,
                    decisions[0].price,
                )
            pending.append((entry.inputs, segment, decisions))
    await _publish_pending(pricer, compiled, pending, now, frozen, counts, boundaries, read_at)
    await pricer.store.set_boundaries(boundaries)
    return counts


async def _publish_pending(
    pricer: Pricer,
    compiled: CompiledRuleset,
    pending: Sequence[tuple[PricingInputs, Segment, list[Decision]]],
    now: datetime,
    frozen: bool,
    counts: RepriceCounts,
    boundaries: dict[str, int | None],
    read_at: int,
) -> None:
    """What :meth:`Pricer.publish` does for one schedule, for a whole chunk: one
    pipelined round trip per :data:`PUBLISH_PIPELINE` schedules instead of two per SKU."""
    for _, _, decisions in pending:
        pricer.observe(decisions[0], counts)
    if frozen:
        counts.frozen += len(pending)
        metrics.PUBLISHES.labels(outcome="frozen").inc(len(pending))
        return
    requests = [
        PublishRequest(
            sku=inputs.item.sku,
            segment=str(segment),
            decisions=decisions,
            fingerprint_value=fingerprint(
                compiled.version, str(segment), fingerprint_json(inputs), decisions
            ),
            read_at=read_at,
        )
        for inputs, segment, decisions in pending
    ]
    results = await pricer.store.publish_many(requests, now=now)
    for request, result in zip(requests, results, strict=True):
        if result.written:
            counts.published += 1
            metrics.PUBLISHES.labels(outcome="written").inc()
            if request.decisions[0].changed:
                metrics.PRICE_CHANGES.inc()
        else:
            metrics.PUBLISHES.labels(outcome="unchanged").inc()
        boundaries[keys.boundary_member(request.sku, request.segment)] = next_boundary(
            request.decisions, now, pricer.boundary_lead_seconds
        )


def _first_windows(
    compiled: CompiledRuleset,
    entries: dict[str, LoadedInputs],
    skus: list[str],
    segment: Segment,
    now: datetime,
) -> dict[str, Decision]:
    """The window in force for ``skus`` (one currency), from the vectorised path."""
    columns = encode_batch(compiled, [entries[sku].inputs for sku in skus], now)
    result = decide_batch(compiled, columns, now, segment=segment)
    return {
        sku: _batch_decision(compiled, columns, result, index, now)
        for index, sku in enumerate(skus)
    }


def _batch_decision(
    compiled: CompiledRuleset,
    columns: BatchInputs,
    result: BatchDecisions,
    index: int,
    now: datetime,
) -> Decision:
    """One row of the vectorised result as a decision without an explanation: enough to
    compare with the published schedule and to count, never published itself."""
    currency = result.currency
    price, until = int(result.price[index]), int(result.valid_until[index])
    fired = int(result.guardrails_fired[index])
    return Decision(
        sku=result.skus[index],
        segment="",
        currency=currency,
        price=None if price == MISSING else from_minor(price, currency),
        valid_from=now,
        valid_until=None if until == MISSING else datetime.fromtimestamp(until, tz=UTC),
        rule_id=compiled.rules[int(result.rule_index[index])].id,
        ruleset_version=compiled.version,
        strategy=str(result.summary(index, compiled)["strategy"]),
        steps=(),
        guardrails_fired=tuple(n for i, n in enumerate(GUARDRAIL_NAMES) if fired >> i & 1),
        inputs=(),
        held_by=HELD_NAMES.get(int(result.held[index])),
        changed=price != MISSING and price != int(columns.current[index]),
    )


def _single_window(decision: Decision, horizon_end: int) -> bool:
    """Would the schedule hold this one window? (The single path stops at the first
    window without a price or reaching past the horizon.)"""
    return (
        decision.price is None
        or decision.valid_until is None
        or decision.valid_until.timestamp() >= horizon_end
    )


def _matches_published(
    compiled: CompiledRuleset, entry: LoadedInputs, segment: Segment, decision: Decision
) -> bool:
    published = entry.published
    if published is None:
        return False
    mark = fingerprint(compiled.version, str(segment), fingerprint_json(entry.inputs), [decision])
    return mark == published.fingerprint
