"""``reprice --all`` and ``reprice SKU...``: price the catalogue now, outside the queue.

The full reprice runs the catalogue in chunks. Each chunk goes through the fast lane
(:mod:`~pricing_service.repricer.columnar`): one script call reads its inputs, the
vectorised engine prices every SKU's schedule window by window, each decision is
explained from the engine's columns word for word as the single path would, and the
chunk is published in bulk. A SKU whose fingerprint matches its published schedule needs
nothing more. The SKUs the fast lane leaves (an override in force, a rule with
exploration, a guardrail conflict) are priced by the single path and published in bulk.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pricing_service import metrics
from pricing_service.engine.compiled import CompiledRuleset
from pricing_service.engine.decision import Decision
from pricing_service.engine.inputs import Segment
from pricing_service.engine.segments import priced_segments
from pricing_service.repricer.columnar import ChunkPlan, plan_chunk, read_chunk
from pricing_service.repricer.inputs import LoadedInputs, load_segments
from pricing_service.repricer.pricer import (
    Pricer,
    RepriceCounts,
    next_boundary,
    observe_outcomes,
)
from pricing_service.store import keys
from pricing_service.store.store import PublishRequest, fingerprint

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


@dataclass(frozen=True, slots=True)
class Share:
    """Which part of the catalogue a process reprices: the SKUs whose partition
    (:func:`keys.sku_partition` over ``count``) is ``index``."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"share {self.index} of {self.count} does not exist")


async def reprice_all(
    pricer: Pricer,
    compiled: CompiledRuleset,
    now: datetime | None = None,
    *,
    chunk_size: int = CHUNK_SIZE,
    on_progress: Callable[[int], None] | None = None,
    share: Share | None = None,
) -> RepriceCounts:
    """Price every SKU in the catalogue (or its ``share``) and publish; ``on_progress``
    gets the number of SKUs of each chunk done."""
    moment = now or current_instant()
    counts = RepriceCounts()
    # A chunk is published while the next one is read and priced: Redis runs the one
    # chunk's scripts while this process prices the other.
    publishing: asyncio.Task[RepriceCounts] | None = None
    publishing_size = 0
    try:
        async for listed in pricer.store.iter_skus(batch=chunk_size):
            chunk = listed
            if share is not None and share.count > 1:
                chunk = [s for s in listed if keys.sku_partition(s, share.count) == share.index]
            planned = await _plan_chunk(pricer, compiled, chunk, moment)
            if publishing is not None:
                counts.add(await publishing)
                if on_progress is not None:
                    on_progress(publishing_size)
            publishing = asyncio.create_task(_publish_chunk(pricer, compiled, planned, moment))
            publishing_size = len(chunk)
        if publishing is not None:
            counts.add(await publishing)
            if on_progress is not None:
                on_progress(publishing_size)
    except BaseException:
        if publishing is not None and not publishing.done():
            publishing.cancel()  # what it published stands; a rerun finishes the rest
            with contextlib.suppress(BaseException):
                await publishing
        raise
    return counts


async def price_chunk(
    pricer: Pricer, compiled: CompiledRuleset, skus: Sequence[str], now: datetime
) -> RepriceCounts:
    """Price ``skus`` in every canonical segment through the fast lane (the rest through
    the single path) and publish: what the repricer does with each batch from its queue."""
    planned = await _plan_chunk(pricer, compiled, skus, now)
    return await _publish_chunk(pricer, compiled, planned, now)


@dataclass(frozen=True, slots=True)
class _PlannedChunk:
    plan: ChunkPlan
    read_at: int
    frozen: bool


async def _plan_chunk(
    pricer: Pricer, compiled: CompiledRuleset, skus: Sequence[str], now: datetime
) -> _PlannedChunk:
    segments = priced_segments(compiled)
    store = pricer.store
    read_at = await store.read_clock()
    raw_rows = await read_chunk(store, skus, [str(segment) for segment in segments])
    frozen = await store.is_frozen()
    # Pricing a chunk takes a second or so of CPU: off the event loop.
    plan = await asyncio.to_thread(
        plan_chunk,
        compiled,
        skus,
        raw_rows,
        segments,
        now,
        read_at=read_at,
        boundary_lead_seconds=pricer.boundary_lead_seconds,
    )
    return _PlannedChunk(plan, read_at, frozen)


async def _publish_chunk(
    pricer: Pricer, compiled: CompiledRuleset, planned: _PlannedChunk, now: datetime
) -> RepriceCounts:
    plan, read_at, frozen = planned.plan, planned.read_at, planned.frozen
    store = pricer.store
    counts = RepriceCounts()
    boundaries: dict[str, int | None] = {}
    observe_outcomes(plan.unchanged, counts)
    observe_outcomes(plan.outcomes, counts)
    if frozen:
        counts.frozen += len(plan.prepared)
        metrics.PUBLISHES.labels(outcome="frozen").inc(len(plan.prepared))
    elif plan.prepared:
        results = await store.publish_prepared(plan.prepared, now=now)
        written = sum(1 for result in results if result.written)
        moved = sum(
            1
            for result, outcome in zip(results, plan.outcomes, strict=True)
            if result.written and outcome.changed
        )
        counts.published += written
        metrics.PUBLISHES.labels(outcome="written").inc(written)
        metrics.PUBLISHES.labels(outcome="unchanged").inc(len(results) - written)
        metrics.PRICE_CHANGES.inc(moved)
    for prepared, outcome in zip(plan.prepared, plan.outcomes, strict=True):
        boundaries[keys.boundary_member(prepared.sku, prepared.segment)] = outcome.due
    for outcome in plan.unchanged:
        boundaries[keys.boundary_member(outcome.sku, outcome.segment)] = outcome.due
    for segment in priced_segments(compiled):
        for sku in plan.deleted:
            boundaries[keys.boundary_member(sku, str(segment))] = None
    if plan.single:
        counts.add(await _price_single(pricer, compiled, plan.single, now, frozen, read_at))
    await store.set_boundaries(boundaries)
    return counts


async def _price_single(
    pricer: Pricer,
    compiled: CompiledRuleset,
    skus: Sequence[str],
    now: datetime,
    frozen: bool,
    read_at: int,
) -> RepriceCounts:
    """The SKUs the fast lane left: priced by the single path, published in bulk."""
    segments = priced_segments(compiled)
    loaded = await load_segments(pricer.store, compiled, skus, now, [str(s) for s in segments])
    counts = RepriceCounts()
    boundaries: dict[str, int | None] = {}
    pending: list[tuple[LoadedInputs, Segment, list[Decision]]] = []
    for segment in segments:
        for sku, entry in loaded[str(segment)].items():
            decisions = pricer.compute(compiled, sku, entry.inputs, segment, now, counts)
            if decisions is not None:
                pending.append((entry, segment, decisions))
    for _, _, decisions in pending:
        pricer.observe(decisions[0], counts)
    if frozen:
        counts.frozen += len(pending)
        metrics.PUBLISHES.labels(outcome="frozen").inc(len(pending))
        return counts
    requests = [
        PublishRequest(
            sku=entry.inputs.item.sku,
            segment=str(segment),
            decisions=decisions,
            fingerprint_value=fingerprint(compiled.version, str(segment), entry.digest, decisions),
            read_at=read_at,
        )
        for entry, segment, decisions in pending
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
    await pricer.store.set_boundaries(boundaries)
    return counts
