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
import gc
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from pricing_service.engine.compiled import CompiledRuleset
from pricing_service.engine.segments import priced_segments
from pricing_service.repricer.columnar import ChunkPlan, plan_chunk
from pricing_service.repricer.inputs import read_chunk
from pricing_service.repricer.pricer import (
    Pricer,
    RepriceCounts,
    observe_outcomes,
)
from pricing_service.store import keys

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
    frozen: bool


async def _plan_chunk(
    pricer: Pricer, compiled: CompiledRuleset, skus: Sequence[str], now: datetime
) -> _PlannedChunk:
    segments = priced_segments(compiled)
    store = pricer.store
    read_at = await store.read_clock()
    raw_rows = await read_chunk(store, skus, [str(segment) for segment in segments], now)
    frozen = await store.is_frozen()

    def plan() -> ChunkPlan:
        with _collector.paused():
            return plan_chunk(
                compiled,
                skus,
                raw_rows,
                segments,
                now,
                read_at=read_at,
                boundary_lead_seconds=pricer.boundary_lead_seconds,
            )

    # Pricing a chunk takes a second or so of CPU: off the event loop.
    return _PlannedChunk(await asyncio.to_thread(plan), frozen)


class _CollectorPause:
    """Keeps the cyclic garbage collector off while chunks are planned.

    Planning a chunk builds hundreds of thousands of short-lived objects that reference
    counting frees, and every collection they set off walks every object alive: a fifth
    to a quarter of the planning time (``bench/plan.py``). The collector is process-wide,
    so pauses from several threads nest, and it is back on, if it was on, when the last
    one ends; a reference cycle made meanwhile is collected then.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = 0
        self._resume = False

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        with self._lock:
            if self._count == 0:
                self._resume = gc.isenabled()
                gc.disable()
            self._count += 1
        try:
            yield
        finally:
            with self._lock:
                self._count -= 1
                if self._count == 0 and self._resume:
                    gc.enable()


_collector = _CollectorPause()


async def _publish_chunk(
    pricer: Pricer, compiled: CompiledRuleset, planned: _PlannedChunk, now: datetime
) -> RepriceCounts:
    plan = planned.plan
    counts = RepriceCounts()
    observe_outcomes(plan.unchanged, counts)
    boundaries = {keys.boundary_member(o.sku, o.segment): o.due for o in plan.unchanged}
    boundaries.update(
        await pricer.publish(plan.prepared, plan.outcomes, now, planned.frozen, counts)
    )
    for segment in priced_segments(compiled):
        for sku in plan.deleted:
            boundaries[keys.boundary_member(sku, str(segment))] = None
    if plan.single:
        counts.add(await pricer.price(compiled, plan.single, now))
    await pricer.store.set_boundaries(boundaries)
    return counts
