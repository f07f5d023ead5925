"""Engine inputs read from the store, for many SKUs in few round trips.

The price in force comes from our own published schedule once there is one (the
catalogue's ``current_price`` is only the starting point), and so do the recent moves that
loop protection and the daily change limit look at.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from pricing_service.engine.compiled import CompiledRuleset
from pricing_service.engine.inputs import (
    CompetitorObservation,
    DemandStats,
    ElasticityEstimate,
    ItemFacts,
    PriceChange,
    PriceOverride,
    PricingInputs,
)
from pricing_service.store import keys
from pricing_service.store.store import (
    OfferStatus,
    Override,
    Schedule,
    Store,
    StoredElasticity,
)

#: Per-SKU reads that cannot be pipelined (demand, recent moves) run this many at a time,
#: well inside the connection pool.
READ_CONCURRENCY = 16

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class _Shared:
    """What does not depend on the segment."""

    item: ItemFacts
    observations: tuple[CompetitorObservation, ...]
    override: PriceOverride | None
    demand: DemandStats | None
    elasticity: ElasticityEstimate | None


@dataclass(frozen=True, slots=True)
class LoadedInputs:
    """One SKU's engine inputs for one segment, and the schedule published for it."""

    inputs: PricingInputs
    published: Schedule | None


async def load_inputs(
    store: Store,
    compiled: CompiledRuleset,
    skus: Sequence[str],
    now: datetime,
    segment: str = "",
) -> dict[str, PricingInputs]:
    """Engine inputs for ``skus`` in ``segment`` as of ``now``; unknown SKUs are left out."""
    loaded = await load_segments(store, compiled, skus, now, [segment])
    return {sku: entry.inputs for sku, entry in loaded[segment].items()}


async def load_segments(
    store: Store,
    compiled: CompiledRuleset,
    skus: Sequence[str],
    now: datetime,
    segments: Sequence[str],
) -> dict[str, dict[str, LoadedInputs]]:
    """Per segment, per SKU: the engine inputs and the published schedule. The catalogue,
    offers, override and demand are read once for all segments."""
    shared = await _load_shared(store, compiled, skus, now)
    found = list(shared)
    result: dict[str, dict[str, LoadedInputs]] = {}
    for segment in segments:
        schedules = await store.get_schedules([(sku, segment) for sku in found])
        moves = await _bounded(
            [
                store.recent_changes(sku, segment)
                for sku, published in zip(found, schedules, strict=True)
                if published is not None
            ]
        )
        with_schedule = [sku for sku, s in zip(found, schedules, strict=True) if s is not None]
        moves_by_sku = dict(zip(with_schedule, moves, strict=True))
        by_sku: dict[str, LoadedInputs] = {}
        for sku, published in zip(found, schedules, strict=True):
            facts = shared[sku]
            item = facts.item
            # A schedule in another currency predates a currency change: it says nothing.
            if published is not None and published.currency == item.currency:
                item = _with_published_price(item, published, moves_by_sku[sku], now)
            inputs = PricingInputs(
                item=item,
                observations=facts.observations,
                demand=facts.demand,
                elasticity=facts.elasticity,
                override=facts.override,
            )
            by_sku[sku] = LoadedInputs(inputs=inputs, published=published)
        result[segment] = by_sku
    return result


async def _load_shared(
    store: Store, compiled: CompiledRuleset, skus: Sequence[str], now: datetime
) -> dict[str, _Shared]:
    async with store.redis.pipeline(transaction=False) as pipe:
        for sku in skus:
            pipe.get(keys.item(sku))
            pipe.hgetall(keys.offers(sku))
            pipe.get(keys.override(sku))
            pipe.get(keys.elasticity(sku))
        raw: list[Any] = await pipe.execute()
    loaded: dict[str, tuple[ItemFacts, tuple[CompetitorObservation, ...], PriceOverride | None]]
    loaded = {}
    elasticities: dict[str, ElasticityEstimate | None] = {}
    for index, sku in enumerate(skus):
        raw_item, raw_offers, raw_override, raw_elasticity = raw[4 * index : 4 * index + 4]
        if raw_item is None:
            continue  # deleted since it was queued
        item = ItemFacts.model_validate_json(raw_item)
        loaded[sku] = (
            item,
            _accepted_offers(compiled, raw_offers),
            _active_override(raw_override, now),
        )
        elasticities[sku] = elasticity_estimate(raw_elasticity)
    demands = await _bounded(
        [store.demand(sku, now, item.inventory) for sku, (item, _, _) in loaded.items()]
    )
    return {
        sku: _Shared(
            item=item,
            observations=offers,
            override=override,
            demand=demand,
            elasticity=elasticities[sku],
        )
        for (sku, (item, offers, override)), demand in zip(loaded.items(), demands, strict=True)
    }


def elasticity_estimate(raw: bytes | None) -> ElasticityEstimate | None:
    """The engine's elasticity input from the stored estimate as read, if any."""
    return None if raw is None else StoredElasticity.model_validate_json(raw).estimate()


def _accepted_offers(
    compiled: CompiledRuleset, raw: dict[bytes, bytes]
) -> tuple[CompetitorObservation, ...]:
    """Accepted offers from competitors the ruleset knows, in competitor order: offers
    the engine would ignore stay out of the inputs, and so out of the fingerprint."""
    offers = (OfferStatus.model_validate_json(value) for value in raw.values())
    return tuple(
        sorted(
            (
                offer.observation
                for offer in offers
                if offer.status == "accepted"
                and offer.observation.competitor in compiled.known_competitors
            ),
            key=lambda observation: observation.competitor,
        )
    )


def _active_override(raw: bytes | None, now: datetime) -> PriceOverride | None:
    if raw is None:
        return None
    stored = Override.model_validate_json(raw)
    if stored.until <= now:
        return None
    return PriceOverride(
        price=stored.price, until=stored.until, reason=stored.reason, force=stored.force
    )


def _with_published_price(
    item: ItemFacts, published: Schedule, recorded: list[PriceChange], now: datetime
) -> ItemFacts:
    """The item as our own schedule left it: the price of the last window started by
    ``now``, and every change up to then (the store records first windows only, so later
    windows that have started are added here)."""
    epoch = int(now.timestamp())
    changes = list(recorded)
    in_force = None
    for window in published.windows:
        if window.valid_from > epoch:
            break
        if window.price is None:
            continue
        in_force = window
        if not changes or changes[-1].price != window.price:
            started = datetime.fromtimestamp(window.valid_from, tz=UTC)
            changes.append(PriceChange(at=started, price=window.price))
    if in_force is None:
        return item
    return item.model_copy(
        update={
            "current_price": in_force.price,
            "last_changed_at": changes[-1].at,
            "recent_changes": tuple(changes),
        }
    )


def fingerprint_json(inputs: PricingInputs) -> str:
    """The inputs as canonical JSON for the schedule fingerprint.

    Left out: the price in force and its history, which our own previous publish sets
    (otherwise every publish would change the next fingerprint and each SKU would be
    written twice; the decisions in the fingerprint still capture their effect), and the
    demand's ``as_of``, which is the time of reading, not a fact, and the elasticity's
    ``fitted_at``: a refit that finds the same estimate changes no price. Tags are sorted:
    set order differs between processes.
    """
    payload = inputs.model_dump(
        mode="json",
        exclude={
            "item": {"current_price", "last_changed_at", "recent_changes"},
            "demand": {"as_of"},
            "elasticity": {"fitted_at"},
        },
    )
    payload["item"]["tags"] = sorted(payload["item"].get("tags", []))
    return json.dumps(payload, sort_keys=True, separators=(",", ":"))


async def _bounded(reads: Sequence[Coroutine[Any, Any, _T]]) -> list[_T]:
    """Await ``reads`` concurrently, at most READ_CONCURRENCY at a time, in order."""
    semaphore = asyncio.Semaphore(READ_CONCURRENCY)

    async def limited(read: Coroutine[Any, Any, _T]) -> _T:
        async with semaphore:
            return await read

    return list(await asyncio.gather(*(limited(read) for read in reads)))
