"""Price SKUs in every canonical segment and publish their schedules.

Each schedule is published with a fingerprint of the ruleset version, the segment, the
inputs and the decisions, so publishing the same thing twice (two repricers, a retried
batch) writes one audit record. While prices are frozen nothing is published. After each
SKU the boundary index is pointed at its next window change, so the repricer comes back
ahead of it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

from pricing_service import metrics
from pricing_service.engine.batch import HELD_NAMES
from pricing_service.engine.compiled import CompiledRuleset
from pricing_service.engine.decision import Decision
from pricing_service.engine.inputs import PricingInputs, Segment
from pricing_service.engine.schedule import schedule
from pricing_service.engine.segments import priced_segments
from pricing_service.repricer.inputs import load_segments
from pricing_service.store import keys
from pricing_service.store.store import PreparedPublish, PublishRequest, Store, fingerprint

logger = logging.getLogger(__name__)
# Every kind's series exists from the start, at 0: a first trip is then an increase that
# rate() and increase() see, not a new series they miss.
for _kind in HELD_NAMES.values():
    metrics.LOOP_BREAKER_TRIPS.labels(kind=_kind)
for _reason in ("inputs", "engine"):
    metrics.PRICING_FAILURES.labels(reason=_reason)


@dataclass(slots=True)
class RepriceCounts:
    """Outcomes, one per schedule (a SKU in one segment)."""

    priced: int = 0  # the first window has a price...
    changed: int = 0  # ...different from the price in force
    unchanged: int = 0  # ...equal to it
    unpriced: int = 0  # no strategy applied and there was no price to keep
    errors: int = 0  # the engine failed on this SKU's inputs, or they did not validate
    published: int = 0  # written with a new audit record (not an identical one)
    frozen: int = 0  # not published: prices are frozen

    def add(self, other: RepriceCounts) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def next_boundary(ends: Iterable[int | None], epoch: int, lead_seconds: int) -> int | None:
    """When to reprice next (epoch seconds): ``lead_seconds`` ahead of the first window
    change whose lead time is still to come, from each window's end in order (None: the
    window does not end). A change already inside its lead time is covered by the
    schedule just computed, which holds the window after it."""
    for end in ends:
        if end is None:
            return None
        due = end - lead_seconds
        if due > epoch:
            return due
    return None


# Not frozen, though never changed: a full reprice builds one or more per SKU, and a
# frozen dataclass costs about five times as much to build.
@dataclass(slots=True)
class Outcome:
    """What counting and metrics need of the decision for a schedule's window in force."""

    sku: str
    segment: str
    strategy: str
    guardrails_fired: Sequence[str]
    held_by: str | None
    priced: bool
    changed: bool
    due: int | None  # when to reprice next (see next_boundary)

    @classmethod
    def of(cls, decisions: Sequence[Decision], now: datetime, lead_seconds: int) -> Outcome:
        """The outcome of a schedule computed by the single path."""
        first = decisions[0]
        ends = (
            None if d.valid_until is None else int(d.valid_until.timestamp()) for d in decisions
        )
        return cls(
            sku=first.sku,
            segment=first.segment,
            strategy=first.strategy,
            guardrails_fired=first.guardrails_fired,
            held_by=first.held_by,
            priced=first.price is not None,
            changed=first.changed,
            due=next_boundary(ends, int(now.timestamp()), lead_seconds),
        )


def observe_outcomes(outcomes: Iterable[Outcome], counts: RepriceCounts) -> None:
    """Count decisions and observe their metrics, one increment per label value."""
    strategies: Counter[str] = Counter()
    clamps: Counter[str] = Counter()
    trips: Counter[str] = Counter()
    for outcome in outcomes:
        strategies[outcome.strategy] += 1
        clamps.update(outcome.guardrails_fired)
        if outcome.held_by is not None:
            trips[outcome.held_by] += 1
        if not outcome.priced:
            counts.unpriced += 1
        elif outcome.changed:
            counts.priced += 1
            counts.changed += 1
        else:
            counts.priced += 1
            counts.unchanged += 1
    for strategy, count in strategies.items():
        metrics.DECISIONS.labels(strategy=strategy).inc(count)
    for guardrail, count in clamps.items():
        metrics.GUARDRAIL_CLAMPS.labels(guardrail=guardrail).inc(count)
    for kind, count in trips.items():
        metrics.LOOP_BREAKER_TRIPS.labels(kind=kind).inc(count)


class Pricer:
    """Computes and publishes schedules; shared by the worker and ``reprice``."""

    def __init__(self, store: Store, *, boundary_lead_seconds: int) -> None:
        self.store = store
        self.boundary_lead_seconds = boundary_lead_seconds

    async def price(
        self, compiled: CompiledRuleset, skus: Sequence[str], now: datetime
    ) -> RepriceCounts:
        """Price ``skus`` with the single path in every canonical segment and publish."""
        segments = priced_segments(compiled)
        read_at = await self.store.read_clock()  # after the queue entries were taken
        rejected: list[str] = []
        loaded = await load_segments(
            self.store, compiled, skus, now, [str(s) for s in segments], rejected=rejected
        )
        frozen = await self.store.is_frozen()
        counts = RepriceCounts(errors=len(rejected) * len(segments))
        metrics.PRICING_FAILURES.labels(reason="inputs").inc(counts.errors)
        boundaries: dict[str, int | None] = {}
        prepared: list[PreparedPublish] = []
        outcomes: list[Outcome] = []
        for segment in segments:
            name = str(segment)
            entries = loaded[name]
            for sku, entry in entries.items():
                decisions = self.compute(compiled, sku, entry.inputs, segment, now, counts)
                if decisions is None:
                    continue
                mark = fingerprint(compiled.version, name, entry.digest, decisions)
                request = PublishRequest(sku, name, decisions, mark, read_at)
                prepared.append(Store.prepare_publish(request))
                outcomes.append(Outcome.of(decisions, now, self.boundary_lead_seconds))
            for sku in skus:
                if sku not in entries:  # deleted or rejected: nothing to come back for
                    boundaries[keys.boundary_member(sku, name)] = None
        boundaries.update(await self.publish(prepared, outcomes, now, frozen, counts))
        await self.store.set_boundaries(boundaries)
        return counts

    def compute(
        self,
        compiled: CompiledRuleset,
        sku: str,
        inputs: PricingInputs,
        segment: Segment,
        now: datetime,
        counts: RepriceCounts,
    ) -> list[Decision] | None:
        """The schedule, or None (logged and counted) when the engine fails on it."""
        try:
            return schedule(compiled, inputs, now, segment=segment)
        except Exception:
            # One item's bad data must not stop the others; it is retried on its next change.
            logger.exception("pricing %s (segment %r) failed", sku, str(segment))
            counts.errors += 1
            metrics.PRICING_FAILURES.labels(reason="engine").inc()
            return None

    async def publish(
        self,
        prepared: Sequence[PreparedPublish],
        outcomes: Sequence[Outcome],
        now: datetime,
        frozen: bool,
        counts: RepriceCounts,
    ) -> dict[str, int | None]:
        """Publish schedules (unless frozen), count them and observe their metrics;
        ``outcomes`` in the same order. Returns the boundaries of what was published."""
        observe_outcomes(outcomes, counts)
        if frozen:
            counts.frozen += len(prepared)
            metrics.PUBLISHES.labels(outcome="frozen").inc(len(prepared))
            return {}
        if not prepared:
            return {}
        results = await self.store.publish_prepared(prepared, now=now)
        written = [
            outcome for result, outcome in zip(results, outcomes, strict=True) if result.written
        ]
        counts.published += len(written)
        metrics.PUBLISHES.labels(outcome="written").inc(len(written))
        metrics.PUBLISHES.labels(outcome="unchanged").inc(len(results) - len(written))
        metrics.PRICE_CHANGES.inc(sum(1 for outcome in written if outcome.changed))
        return {keys.boundary_member(o.sku, o.segment): o.due for o in outcomes}
