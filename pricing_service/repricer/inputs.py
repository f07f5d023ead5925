"""Engine inputs read from the store, for many SKUs in few round trips.

The price in force comes from our own published schedule once there is one (the
catalogue's ``current_price`` is only the starting point), and so do the recent moves that
loop protection and the daily change limit look at.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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
    StoredSchedule,
    changes_from_moves,
    decode_schedule,
    demand_fields,
    demand_from_sales,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoadedInputs:
    """One SKU's engine inputs for one segment, and the schedule published for it."""

    inputs: PricingInputs
    published: Schedule | None
    digest: str  # of the raw inputs: see inputs_digest


@dataclass(frozen=True, slots=True)
class DigestParts:
    """One SKU's inputs as stored, for :func:`inputs_digest`."""

    item: bytes
    offers: Sequence[bytes]  # the offers in force, ordered by (competitor, value)
    override: bytes | None  # only while in force
    demand: DemandStats | None  # the signals computed from the sales hash
    elasticity: bytes | None


def inputs_digest(parts: DigestParts) -> str:
    """Identifies a SKU's pricing inputs for the schedule fingerprint, from the values as
    stored, so every path that prices the SKU agrees without building models.

    Sales enter as the demand signals computed from them, which is all the engine reads
    of them: a selling SKU's hash has about a hundred fields, and sorting and hashing
    them took longer than computing the signals. A sale that leaves every signal as it
    was changes no fingerprint.

    Left out: our own published schedule (its price in force and moves; otherwise every
    publish would change the next fingerprint and each SKU would be written twice: the
    decisions in the fingerprint still capture their effect), offers the engine does not
    use (quarantined, unknown competitors), an override no longer in force, and the
    elasticity's ``fitted_at``: a refit that finds the same estimate changes no price.
    """
    digest = hashlib.blake2b(parts.item, digest_size=16)
    for offer in parts.offers:
        digest.update(b"\0o" + offer)
    if parts.override is not None:
        digest.update(b"\0v" + parts.override)
    demand = parts.demand
    if demand is not None:
        # repr: a float's shortest text that reads back exactly, the same in any process
        digest.update(
            b"\0d%r,%r,%r,%r"
            % (demand.velocity_7d, demand.velocity_28d, demand.days_of_supply, demand.sell_through)
        )
    if parts.elasticity is not None:
        estimate = json.loads(parts.elasticity)
        estimate.pop("fitted_at", None)
        digest.update(b"\0e" + json.dumps(estimate, sort_keys=True).encode())
    return digest.hexdigest()


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
    *,
    rejected: list[str] | None = None,
) -> dict[str, dict[str, LoadedInputs]]:
    """Per segment, per SKU: the engine inputs and the published schedule, read by
    :func:`read_chunk` as the fast lane reads them. The catalogue, offers, override, sales
    and elasticity are read once for all segments; SKUs deleted since they were listed
    are left out.

    A stored value that does not validate (written around the service) raises, unless
    ``rejected`` is given: then the SKU is logged, appended to it and left out, so one
    SKU's bad data does not stop the others."""
    rows = await read_chunk(store, skus, segments, now)
    result: dict[str, dict[str, LoadedInputs]] = {segment: {} for segment in segments}
    for sku, row in zip(skus, rows, strict=True):
        raw_item, flat_offers, raw_override, flat_sales, raw_elasticity = row[:5]
        raw_offers, raw_sales = field_map(flat_offers), field_map(flat_sales)
        if raw_item is None:
            continue
        try:
            facts = ItemFacts.model_validate_json(raw_item)
            observations, in_force = _accepted_offers(compiled, raw_offers)
            override = active_override(raw_override, now)
            elasticity = elasticity_estimate(raw_elasticity)
        except ValueError:  # pydantic's ValidationError among them
            if rejected is None:
                raise
            logger.exception("the stored inputs of %s do not validate: not priced", sku)
            rejected.append(sku)
            continue
        demand = demand_from_sales(raw_sales, now, facts.inventory)
        digest = inputs_digest(
            DigestParts(
                item=raw_item,
                offers=in_force,
                override=None if override is None else raw_override,
                demand=demand,
                elasticity=raw_elasticity,
            )
        )
        for position, segment in enumerate(segments):
            raw_schedule = row[5 + position]
            published = None
            item = facts
            if raw_schedule is not None:
                published = decode_schedule(sku, segment, raw_schedule)
                # A schedule in another currency predates a currency change: it says nothing.
                if published.currency == item.currency:
                    moves = changes_from_moves(StoredSchedule.parse(raw_schedule).moves)
                    item = _with_published_price(item, published, moves, now)
            inputs = PricingInputs(
                item=item,
                observations=observations,
                demand=demand,
                elasticity=elasticity,
                override=override,
            )
            result[segment][sku] = LoadedInputs(inputs=inputs, published=published, digest=digest)
    return result


def input_keys(sku: str, segments: Sequence[str]) -> list[str]:
    """One SKU's input keys in the order they are read: item, offers (a hash), override,
    sales (a hash), elasticity, then its schedule in each segment."""
    return [
        keys.item(sku),
        keys.offers(sku),
        keys.override(sku),
        keys.sales(sku),
        keys.elasticity(sku),
        *(keys.schedule(sku, segment) for segment in segments),
    ]


async def read_chunk(
    store: Store, skus: Sequence[str], segments: Sequence[str], now: datetime
) -> list[list[Any]]:
    """Every input of ``skus`` as stored, per SKU in order: the values of its
    :func:`input_keys`, the two hashes as flat field/value lists, of the sales only what
    :func:`demand_from_sales` reads at ``now`` (see :meth:`Store.read_inputs`, which
    batches the calls)."""
    keys_per_sku = [input_keys(sku, segments) for sku in skus]
    return await store.read_inputs(keys_per_sku, demand_fields(now))


def field_map(flat: Sequence[bytes]) -> dict[bytes, bytes]:
    """A hash as :func:`read_chunk` returns it (field, value, field, value...) as a dict."""
    if not flat:
        return {}  # most SKUs have no sales hash
    return dict(zip(flat[::2], flat[1::2], strict=True))


def elasticity_estimate(raw: bytes | None) -> ElasticityEstimate | None:
    """The engine's elasticity input from the stored estimate as read, if any."""
    return None if raw is None else StoredElasticity.model_validate_json(raw).estimate()


def _accepted_offers(
    compiled: CompiledRuleset, raw: dict[bytes, bytes]
) -> tuple[tuple[CompetitorObservation, ...], list[bytes]]:
    """Offers in force (accepted, or the last accepted one behind a quarantined one) from
    competitors the ruleset knows, in competitor order, and their stored values ordered
    for :func:`inputs_digest`: offers the engine would ignore stay out of both."""
    in_force: list[tuple[str, bytes, CompetitorObservation]] = []
    for value in raw.values():
        observation = OfferStatus.model_validate_json(value).in_force
        if observation is not None and observation.competitor in compiled.known_competitors:
            in_force.append((observation.competitor, value, observation))
    observations = tuple(
        observation for _, _, observation in sorted(in_force, key=lambda entry: entry[0])
    )
    return observations, [value for _, value, _ in sorted(in_force, key=lambda e: e[:2])]


def active_override(raw: bytes | None, now: datetime) -> PriceOverride | None:
    """The override stored as ``raw``, if it is still in force at ``now``."""
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
