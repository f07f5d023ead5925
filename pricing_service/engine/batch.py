"""The batch path: many items of one currency priced at one instant with numpy.

It performs the same integer arithmetic as :mod:`pricing_service.engine.single`, stage
by stage, on columns of minor units; a property test holds the two paths equal. Inputs
are columnar (:class:`BatchInputs`) so the service can load them without building one
object per item; :func:`encode_batch` builds them from item objects when that is handy.
Decisions come back as columns too (:class:`BatchDecisions`); the full explanation of
any one of them is the single path's, which gives the same result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt

from pricing_service.engine.compiled import (
    BOUND_CODE,
    GUARDRAIL_NAMES,
    STEP_LIMIT_BITS,
    STEP_LIMITS,
    CompiledRounding,
    CompiledRule,
    CompiledRuleset,
    CompiledStrategy,
    fired_names,
)
from pricing_service.engine.exploration import exploration_draw, thompson_shift_bp
from pricing_service.engine.history import (
    ELASTICITY_SCALE,
    MoveHistory,
    elasticity_basis_points,
    latest_per_competitor,
    move_history,
)
from pricing_service.engine.inputs import DEFAULT_SEGMENT, PricingInputs, Segment
from pricing_service.engine.single import NO_CEILING
from pricing_service.money import (
    MAX_MINOR,
    MAX_RATIO_PPM,
    RATIO_SCALE,
    from_minor,
    minor_unit_digits,
    to_minor,
)
from pricing_service.rules.model import Action, Direction, Reference, RoundingMode

Int64Array = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Int8Array = npt.NDArray[np.int8]
#: A bound per row and the guardrail that set it, as codes of ``BOUND_CODE``.
_Bounds = tuple[Int64Array, Int8Array]

#: Marks a missing amount or timestamp in an int64 column.
MISSING = np.int64(-(1 << 62))
#: ``strategy_position`` of an item priced by its list price after every strategy failed.
LIST_PRICE_FALLBACK = -2
#: ``strategy_position`` of an item that could not be priced at all.
UNPRICED = -1
HELD_NONE, HELD_ESCALATION, HELD_OSCILLATION = 0, 1, 2
HELD_NAMES = {HELD_ESCALATION: "escalation", HELD_OSCILLATION: "oscillation"}


@dataclass(slots=True)
class BatchInputs:
    """Columns for ``n`` items of one currency; amounts in minor units, ``MISSING`` when
    unknown. Competitor offers are ``n x k`` matrices, one column per competitor slot,
    ordered by competitor id; an empty slot has ``offer_competitor == -1``."""

    currency: str
    skus: list[str]
    cost: Int64Array
    list_price: Int64Array
    map_price: Int64Array
    min_price: Int64Array
    max_price: Int64Array
    current: Int64Array
    last_changed: Int64Array  # epoch seconds
    inventory: FloatArray  # NaN when unknown
    category: npt.NDArray[np.int32]  # code in the ruleset's vocabulary, -1 otherwise
    brand: npt.NDArray[np.int32]
    tags: npt.NDArray[np.uint64]  # bit per tag the ruleset mentions
    sku_in_rule: BoolArray  # n x (rules with a SKU list)
    last_direction: npt.NDArray[np.int8]
    run_length: npt.NDArray[np.int32]
    flips: npt.NDArray[np.int32]
    price_day_ago: Int64Array
    offer_price: Int64Array  # n x k
    offer_shipping: Int64Array  # n x k
    offer_in_stock: BoolArray  # n x k
    offer_observed: Int64Array  # n x k, epoch seconds
    offer_competitor: npt.NDArray[np.int16]  # n x k, code in Vocabulary.competitors
    velocity_ratio: FloatArray
    days_of_supply: FloatArray
    elasticity_bp: Int64Array
    elasticity_se: FloatArray
    elasticity_n: Int64Array

    def __len__(self) -> int:
        return len(self.skus)

    def set_moves(self, row: int, history: MoveHistory) -> None:
        """Row ``row``'s recent-moves columns, from ``history``."""
        self.last_direction[row] = history.last_direction
        self.run_length[row] = history.run_length
        self.flips[row] = history.flips
        day_ago = history.price_day_ago
        self.price_day_ago[row] = MISSING if day_ago is None else day_ago


def take_rows(inputs: BatchInputs, rows: npt.NDArray[np.intp]) -> BatchInputs:
    """The columns of ``rows`` only, as a new batch (copies: the caller may edit them)."""
    taken: dict[str, Any] = {}
    for column in fields(inputs):
        value = getattr(inputs, column.name)
        if column.name == "currency":
            taken[column.name] = value
        elif column.name == "skus":
            taken[column.name] = [value[row] for row in rows]
        else:
            taken[column.name] = value[rows]
    return BatchInputs(**taken)


class Vocabulary:
    """Integer codes for the names a ruleset mentions: categories, brands, tags,
    competitors, and the rules that list SKUs."""

    def __init__(self, ruleset: CompiledRuleset) -> None:
        rules = ruleset.rules
        self.categories = _codes(rule.categories for rule in rules)
        self.brands = _codes(rule.brands for rule in rules)
        self.tags = _codes(rule.tags for rule in rules)
        if len(self.tags) > 64:
            raise ValueError("the batch path supports up to 64 distinct tags in rules")
        self.competitors = {
            name: code for code, name in enumerate(sorted(ruleset.known_competitors))
        }
        self.sku_rules = [rule.index for rule in rules if rule.skus is not None]


def _codes(groups: object) -> dict[str, int]:
    names: set[str] = set()
    for group in groups:  # type: ignore[attr-defined]
        if group:
            names.update(group)
    return {name: code for code, name in enumerate(sorted(names))}


def unfilled_columns(n: int, k: int) -> dict[str, Any]:
    """The columns an encoder fills item by item (moves, offers, elasticity), empty."""
    return {
        "last_direction": np.zeros(n, np.int8),
        "run_length": np.zeros(n, np.int32),
        "flips": np.zeros(n, np.int32),
        "price_day_ago": np.full(n, MISSING, np.int64),
        "offer_price": np.full((n, k), MISSING, np.int64),
        "offer_shipping": np.full((n, k), MISSING, np.int64),
        "offer_in_stock": np.zeros((n, k), bool),
        "offer_observed": np.zeros((n, k), np.int64),
        "offer_competitor": np.full((n, k), -1, np.int16),
        "elasticity_bp": np.full(n, MISSING, np.int64),
        "elasticity_se": np.full(n, np.nan),
        "elasticity_n": np.zeros(n, np.int64),
    }


def encode_batch(
    ruleset: CompiledRuleset, items: Sequence[PricingInputs], at: datetime
) -> BatchInputs:
    """Columns for ``items`` (all in one currency) as of ``at``."""
    if not items:
        raise ValueError("no items")
    currency = items[0].item.currency
    if any(entry.item.currency != currency for entry in items):
        raise ValueError("a batch holds one currency; group items by currency first")
    vocabulary = Vocabulary(ruleset)
    epoch = int(at.timestamp())
    window = int(ruleset.loop_protection.window.total_seconds())
    n = len(items)
    offers = [latest_per_competitor(entry.observations) for entry in items]
    k = max(1, max(len(o) for o in offers))

    def money(value: Decimal | None) -> np.int64:
        return MISSING if value is None else np.int64(to_minor(value, currency))

    def column(values: list[Any], dtype: type) -> npt.NDArray[Any]:
        return np.array(values, dtype=dtype)

    batch = BatchInputs(
        currency=currency,
        skus=[entry.item.sku for entry in items],
        cost=column([money(e.item.cost) for e in items], np.int64),
        list_price=column([money(e.item.list_price) for e in items], np.int64),
        map_price=column([money(e.item.map_price) for e in items], np.int64),
        min_price=column([money(e.item.min_price) for e in items], np.int64),
        max_price=column([money(e.item.max_price) for e in items], np.int64),
        current=column([money(e.item.current_price) for e in items], np.int64),
        last_changed=column(
            [
                MISSING
                if e.item.last_changed_at is None
                else int(e.item.last_changed_at.timestamp())
                for e in items
            ],
            np.int64,
        ),
        inventory=column(
            [np.nan if e.item.inventory is None else float(e.item.inventory) for e in items],
            np.float64,
        ),
        category=column(
            [vocabulary.categories.get(e.item.category or "", -1) for e in items], np.int32
        ),
        brand=column([vocabulary.brands.get(e.item.brand or "", -1) for e in items], np.int32),
        tags=column(
            [
                sum(1 << vocabulary.tags[t] for t in e.item.tags if t in vocabulary.tags)
                for e in items
            ],
            np.uint64,
        ),
        sku_in_rule=np.array(
            [
                [e.item.sku in (ruleset.rules[r].skus or ()) for r in vocabulary.sku_rules]
                for e in items
            ],
            dtype=bool,
        ).reshape(n, len(vocabulary.sku_rules)),
        velocity_ratio=np.full(n, np.nan),
        days_of_supply=np.full(n, np.nan),
        **unfilled_columns(n, k),
    )
    for row, entry in enumerate(items):
        batch.set_moves(row, move_history(entry.item, epoch, window))
        slot = 0
        for offer in offers[row]:
            code = vocabulary.competitors.get(offer.competitor)
            if code is None:
                continue
            batch.offer_competitor[row, slot] = code
            batch.offer_price[row, slot] = (
                to_minor(offer.price, offer.currency) if offer.currency == currency else MISSING
            )
            if offer.shipping is not None and offer.currency == currency:
                batch.offer_shipping[row, slot] = to_minor(offer.shipping, currency)
            batch.offer_in_stock[row, slot] = offer.in_stock
            batch.offer_observed[row, slot] = int(offer.observed_at.timestamp())
            slot += 1
        if entry.demand is not None:
            ratio = entry.demand.velocity_ratio
            batch.velocity_ratio[row] = np.nan if ratio is None else ratio
            supply = entry.demand.days_of_supply
            batch.days_of_supply[row] = np.nan if supply is None else supply
        if entry.elasticity is not None:
            batch.elasticity_bp[row] = elasticity_basis_points(entry.elasticity.elasticity)
            batch.elasticity_se[row] = entry.elasticity.standard_error
            batch.elasticity_n[row] = entry.elasticity.observations
    return batch


@dataclass(slots=True)
class BatchDecisions:
    """Decisions as columns; ``price`` is ``MISSING`` where no price could be set."""

    currency: str
    skus: list[str]
    rule_index: npt.NDArray[np.int16]
    strategy_position: npt.NDArray[np.int8]  # index into the rule's chain, or the codes above
    strategy_price: Int64Array
    adjusted_price: Int64Array
    adjustments_applied: npt.NDArray[np.uint32]  # bit per adjustment of the rule
    held: npt.NDArray[np.int8]
    guardrails_fired: npt.NDArray[np.uint16]  # bit per GUARDRAIL_NAMES
    price: Int64Array
    valid_until: Int64Array  # epoch seconds or MISSING
    # What an explanation needs besides the above (see engine.batch_explanation):
    reference: Int64Array  # the competitor reference when a competitor strategy priced
    offers_used: BoolArray  # n x k: the offers that reference was taken from
    guarded_price: Int64Array  # the price the guardrails got (after the loop breaker)
    low: Int64Array  # the guardrails' allowed range
    high: Int64Array
    low_by: Int8Array  # the guardrail that set each end of it, an index into BOUND_NAMES
    high_by: Int8Array
    rounding_ok: BoolArray  # a rounding point was found within the range
    #: Rounding was skipped: it would have held the price short of its target.
    rounding_skipped_to_move: BoolArray
    #: The rules computed zero or less: the current price was kept, or none given.
    not_a_price: BoolArray

    def summary(self, index: int, ruleset: CompiledRuleset) -> dict[str, object]:
        """The comparable core of one decision, as the single path reports it."""
        rule = ruleset.rules[int(self.rule_index[index])]
        price = int(self.price[index])
        until = int(self.valid_until[index])
        return {
            "sku": self.skus[index],
            "price": None if price == MISSING else from_minor(price, self.currency),
            "rule_id": rule.id,
            "strategy": strategy_name(rule, int(self.strategy_position[index])),
            "guardrails_fired": fired_names(int(self.guardrails_fired[index])),
            "held_by": HELD_NAMES.get(int(self.held[index])),
            "valid_until": None if until == MISSING else until,
            "adjustments": tuple(
                a.id
                for i, a in enumerate(rule.adjustments)
                if int(self.adjustments_applied[index]) >> i & 1
            ),
        }


def strategy_name(rule: CompiledRule, position: int) -> str:
    """The strategy a decision names for ``strategy_position`` ``position`` of ``rule``."""
    if position in (LIST_PRICE_FALLBACK, UNPRICED):
        # The single path names the last link of the chain in both cases.
        last = rule.chain[-1].kind
        return last if len(rule.chain) == 1 else f"fallback:{last}"
    kind = rule.chain[position].kind
    return kind if position == 0 else f"fallback:{kind}"


def _div_round_half_up(numerator: Int64Array, denominator: int) -> Int64Array:
    positive = (2 * numerator + denominator) // (2 * denominator)
    negative = -((-2 * numerator + denominator) // (2 * denominator))
    return np.where(numerator >= 0, positive, negative)


def _apply_ratio(minor: Int64Array, multiplier_ppm: int | Int64Array) -> Int64Array:
    return _div_round_half_up(minor * multiplier_ppm, RATIO_SCALE)


def _ceil_ratio(minor: Int64Array, multiplier_ppm: int) -> Int64Array:
    return -((-minor * multiplier_ppm) // RATIO_SCALE)


def _floor_ratio(minor: Int64Array, multiplier_ppm: int) -> Int64Array:
    return (minor * multiplier_ppm) // RATIO_SCALE


class _Group:
    """The columns of the items one rule prices."""

    def __init__(self, inputs: BatchInputs, rows: npt.NDArray[np.intp]) -> None:
        self.rows = rows
        self.inputs = inputs

    def __getattr__(self, name: str) -> Any:
        # Gather each column once, on first use: most rules read only a few columns.
        value = getattr(self.inputs, name)[self.rows]
        setattr(self, name, value)
        return value


def _competitor_reference(
    ruleset: CompiledRuleset,
    vocabulary: Vocabulary,
    group: _Group,
    strategy: CompiledStrategy,
    epoch: int,
) -> tuple[Int64Array, BoolArray, BoolArray]:
    """Each row's reference price, whether it has one, and the offers it was taken from
    (the ones the single path lists as inputs)."""
    codes = group.offer_competitor
    usable = codes >= 0
    ours = [vocabulary.competitors[name] for name in ruleset.ours]
    if ours:
        usable &= ~np.isin(codes, ours)
    if strategy.competitors is not None:
        allowed = [
            vocabulary.competitors[name]
            for name in strategy.competitors
            if name in vocabulary.competitors
        ]
        usable &= np.isin(codes, allowed)
    prices = group.offer_price
    usable &= prices != MISSING
    usable &= (epoch - group.offer_observed) <= strategy.max_age_seconds
    if strategy.in_stock_only:
        usable &= group.offer_in_stock
    if strategy.include_shipping:
        usable &= group.offer_shipping != MISSING
        prices = prices + np.where(usable, group.offer_shipping, 0)
    big = np.int64(NO_CEILING)
    masked = np.where(usable, prices, big)
    count = usable.sum(axis=1)
    found = count > 0
    if strategy.reference is Reference.competitor:
        target = vocabulary.competitors.get(strategy.reference_competitor or "", -2)
        chosen = usable & (codes == target)
        found = chosen.any(axis=1)
        reference = np.where(chosen, prices, big).min(axis=1)
        used = chosen
    elif strategy.reference is Reference.median:
        ordered = np.sort(masked, axis=1)
        middle = (count // 2)[:, None]
        upper = np.take_along_axis(ordered, np.minimum(middle, ordered.shape[1] - 1), axis=1)[:, 0]
        lower = np.take_along_axis(ordered, np.maximum(middle - 1, 0), axis=1)[:, 0]
        reference = np.where(count % 2 == 1, upper, (lower + upper + 1) // 2)
        used = usable
    else:
        # The first slot of the lowest price: slots are in competitor order, as the
        # single path breaks ties.
        lowest = masked.argmin(axis=1)
        reference = masked[np.arange(len(masked)), lowest]
        used = (np.arange(masked.shape[1])[None, :] == lowest[:, None]) & found[:, None]
    return reference, found, used


def _strategy_prices(
    ruleset: CompiledRuleset,
    vocabulary: Vocabulary,
    group: _Group,
    strategy: CompiledStrategy,
    currency: str,
    epoch: int,
    thompson_z: list[float] | None,
) -> tuple[Int64Array, BoolArray]:
    """The strategy's prices and which rows it priced (competitor strategies: see
    :func:`_competitor_prices`, which also gives the references)."""
    n = len(group.rows)
    kind = strategy.kind
    if kind == "fixed":
        value = ruleset.minor(strategy.amount, currency)  # type: ignore[arg-type]
        return np.full(n, value, np.int64), np.ones(n, bool)
    if kind == "cost_plus":
        cost = group.cost
        known = cost != MISSING
        return _apply_ratio(np.where(known, cost, 0), strategy.multiplier_ppm), known
    if kind in ("discount", "list_price"):
        listed = group.list_price
        known = listed != MISSING
        return _apply_ratio(np.where(known, listed, 0), strategy.multiplier_ppm), known
    if kind == "competitor":
        price, found, _, _ = _competitor_prices(
            ruleset, vocabulary, group, strategy, currency, epoch
        )
        return price, found
    if kind == "elasticity":
        basis_points = group.elasticity_bp
        if thompson_z is not None:
            basis_points = _thompson_draws(basis_points, group.elasticity_se, thompson_z)
        cost = group.cost
        ok = (
            (basis_points != MISSING)
            & (cost != MISSING)
            & (cost > 0)
            & ~(group.elasticity_se > strategy.max_standard_error)
            & (group.elasticity_n >= strategy.min_observations)
            & (basis_points < -ELASTICITY_SCALE)
        )
        safe_bp = np.where(ok, basis_points, -2 * ELASTICITY_SCALE)
        multiplier = np.minimum(
            MAX_RATIO_PPM,
            _div_round_half_up_by(-safe_bp * RATIO_SCALE, -(safe_bp + ELASTICITY_SCALE)),
        )
        return _apply_ratio(np.where(ok, cost, 0), multiplier), ok
    current = group.current
    return current, current != MISSING


def _competitor_prices(
    ruleset: CompiledRuleset,
    vocabulary: Vocabulary,
    group: _Group,
    strategy: CompiledStrategy,
    currency: str,
    epoch: int,
) -> tuple[Int64Array, BoolArray, Int64Array, BoolArray]:
    """A competitor strategy's prices, which rows it priced, their references and the
    offers each reference came from."""
    reference, found, used = _competitor_reference(ruleset, vocabulary, group, strategy, epoch)
    reference = np.where(found, reference, 0)
    if strategy.action is Action.match:
        price = reference
    elif strategy.by_ppm is not None:
        sign = -1 if strategy.action is Action.beat else 1
        price = _apply_ratio(reference, RATIO_SCALE + sign * strategy.by_ppm)
    else:
        amount = ruleset.minor(strategy.by_amount, currency)  # type: ignore[arg-type]
        price = reference - amount if strategy.action is Action.beat else reference + amount
    return price, found, reference, used


def _thompson_draws(
    basis_points: Int64Array, standard_error: FloatArray, z: list[float]
) -> Int64Array:
    """Each estimate moved by its posterior draw, exactly as the single path moves it."""
    shifts = [
        0 if bp == MISSING or np.isnan(se) else thompson_shift_bp(float(se), z_row)
        for bp, se, z_row in zip(basis_points.tolist(), standard_error.tolist(), z, strict=True)
    ]
    return np.where(basis_points == MISSING, MISSING, basis_points + np.array(shifts, np.int64))


def _div_round_half_up_by(numerator: Int64Array, denominator: Int64Array) -> Int64Array:
    return (2 * numerator + denominator) // (2 * denominator)


def _rounding_points(
    ruleset: CompiledRuleset, rounding: CompiledRounding, price: Int64Array, currency: str
) -> tuple[Int64Array, Int64Array] | None:
    if rounding.price_points:
        points = np.array([ruleset.minor(p, currency) for p in rounding.price_points], np.int64)
        above_index = np.searchsorted(points, price, side="left")
        below_index = np.searchsorted(points, price, side="right") - 1
        big = np.int64(NO_CEILING)
        above = np.where(
            above_index < len(points), points[np.minimum(above_index, len(points) - 1)], -big
        )
        below = np.where(below_index >= 0, points[np.maximum(below_index, 0)], -big)
        return below, above
    assert rounding.ending is not None
    grid = rounding.ending_grids[minor_unit_digits(currency)]
    if grid is None:
        return None
    ending, step = grid
    below = (price - ending) // step * step + ending
    above = np.where(below == price, below, below + step)
    below = np.where(below < 1, -np.int64(NO_CEILING), below)
    return below, above


def _round(
    ruleset: CompiledRuleset,
    rounding: CompiledRounding,
    price: Int64Array,
    low: Int64Array,
    high: Int64Array,
    currency: str,
) -> tuple[Int64Array, BoolArray]:
    """Rounded prices, and where a rounding point within ``[low, high]`` was found (where
    not, the price is kept and the single path warns)."""
    points = _rounding_points(ruleset, rounding, price, currency)
    if points is None:
        return price, np.zeros(len(price), bool)
    below, above = points
    absent = -np.int64(NO_CEILING)
    if rounding.mode is RoundingMode.down:
        first, second = below, above
    elif rounding.mode is RoundingMode.up:
        first, second = above, below
    else:
        below_closer = (below != absent) & ((above == absent) | (price - below < above - price))
        first = np.where(below_closer, below, above)
        second = np.where(below_closer, above, below)
    first_ok = (first != absent) & (first >= low) & (first <= high)
    second_ok = (second != absent) & (second >= low) & (second <= high)
    return np.where(first_ok, first, np.where(second_ok, second, price)), first_ok | second_ok


def _guardrails(
    ruleset: CompiledRuleset,
    rule: CompiledRule,
    group: _Group,
    candidate: Int64Array,
    currency: str,
    epoch: int,
) -> tuple[_Bounds, _Bounds, npt.NDArray[np.uint16]]:
    """The allowed range, each end with the guardrail that set it (see ``BOUND_NAMES``),
    and a bitmask of the guardrails the candidate violates."""
    guardrails = rule.guardrails
    n = len(candidate)
    fired = np.zeros(n, np.uint16)

    def bit(name: str) -> np.uint16:
        return np.uint16(1 << GUARDRAIL_NAMES.index(name))

    def code(name: str) -> np.int8:
        return np.int8(BOUND_CODE[name])

    # Each bound with the guardrail that set it; on a tie the earlier keeps it, as in the
    # single path.
    def lower(name: str, bound: Int64Array | int, valid: BoolArray | bool, low: _Bounds) -> _Bounds:
        nonlocal fired
        fired = np.where(valid & (candidate < bound), fired | bit(name), fired)
        tighter = valid & (bound > low[0])
        return np.where(tighter, bound, low[0]), np.where(tighter, code(name), low[1])

    def upper(
        name: str, bound: Int64Array | int, valid: BoolArray | bool, high: _Bounds
    ) -> _Bounds:
        nonlocal fired
        fired = np.where(valid & (candidate > bound), fired | bit(name), fired)
        tighter = valid & (bound < high[0])
        return np.where(tighter, bound, high[0]), np.where(tighter, code(name), high[1])

    def bounds(value: Int64Array | int, name: str) -> _Bounds:
        return np.full(n, value, np.int64), np.full(n, code(name), np.int8)

    floor = bounds(1, "min_price")
    floor = lower("min_price", group.min_price, group.min_price != MISSING, floor)
    if guardrails.min_price is not None:
        floor = lower("min_price", ruleset.minor(guardrails.min_price, currency), True, floor)
    if guardrails.min_margin_ppm is not None:
        cost = group.cost
        margin = _ceil_ratio(
            np.where(cost != MISSING, cost, 0), RATIO_SCALE + guardrails.min_margin_ppm
        )
        floor = lower("min_margin", margin, cost != MISSING, floor)
    if guardrails.enforce_map:
        floor = lower("map", group.map_price, group.map_price != MISSING, floor)
    ceiling = bounds(NO_CEILING, "max_price")
    ceiling = upper("max_price", group.max_price, group.max_price != MISSING, ceiling)
    if guardrails.max_price is not None:
        ceiling = upper("max_price", ruleset.minor(guardrails.max_price, currency), True, ceiling)
    conflict = floor[0] > ceiling[0]
    fired = np.where(conflict, fired | bit("conflict"), fired)
    ceiling = _where(conflict, floor, ceiling)

    current = group.current
    known = current != MISSING
    safe_current = np.where(known, current, 0)
    soft_low = bounds(0, STEP_LIMITS)
    soft_high = bounds(NO_CEILING, STEP_LIMITS)
    if guardrails.max_change_ppm is not None:
        step = guardrails.max_change_ppm
        soft_low = lower(
            "max_change", _ceil_ratio(safe_current, RATIO_SCALE - step), known, soft_low
        )
        soft_high = upper(
            "max_change", _floor_ratio(safe_current, RATIO_SCALE + step), known, soft_high
        )
    if guardrails.max_change_per_day_ppm is not None:
        day = group.price_day_ago
        has_day = known & (day != MISSING)
        safe_day = np.where(has_day, day, 0)
        step = guardrails.max_change_per_day_ppm
        soft_low = lower(
            "max_change_per_day", _ceil_ratio(safe_day, RATIO_SCALE - step), has_day, soft_low
        )
        soft_high = upper(
            "max_change_per_day", _floor_ratio(safe_day, RATIO_SCALE + step), has_day, soft_high
        )
    if guardrails.direction is Direction.up_only:
        soft_low = lower("direction", safe_current, known, soft_low)
    elif guardrails.direction is Direction.down_only:
        soft_high = upper("direction", safe_current, known, soft_high)
    if guardrails.cooldown_seconds:
        changed = group.last_changed
        cooling = known & (changed != MISSING) & (epoch - changed < guardrails.cooldown_seconds)
        soft_low = lower("cooldown", safe_current, cooling, soft_low)
        soft_high = upper("cooldown", safe_current, cooling, soft_high)
    empty = soft_low[0] > soft_high[0]
    held_current = bounds(safe_current, STEP_LIMITS)
    soft_low = _where(empty, held_current, soft_low)
    soft_high = _where(empty, held_current, soft_high)
    # On a tie the hard bound is named, as in the single path.
    low = _where(known & (soft_low[0] > floor[0]), soft_low, floor)
    high = _where(known & (soft_high[0] < ceiling[0]), soft_high, ceiling)
    impossible = low[0] > high[0]
    hard = _where(soft_low[0] > ceiling[0], ceiling, floor)
    low = _where(impossible, hard, low)
    high = _where(impossible, hard, high)
    return low, high, fired


def _where(condition: BoolArray, chosen: _Bounds, other: _Bounds) -> _Bounds:
    return np.where(condition, chosen[0], other[0]), np.where(condition, chosen[1], other[1])


def decide_batch(
    ruleset: CompiledRuleset,
    inputs: BatchInputs,
    at: datetime,
    *,
    segment: Segment = DEFAULT_SEGMENT,
) -> BatchDecisions:
    """Price every item of ``inputs`` for ``segment`` at instant ``at``."""
    epoch = int(at.timestamp())
    times = ruleset.time_context(epoch)
    vocabulary = Vocabulary(ruleset)
    currency = inputs.currency
    n = len(inputs)
    wanted = segment.values
    default = ruleset.rules[-1]

    rule_index = np.full(n, default.index, np.int16)
    valid_until = np.full(n, MISSING, np.int64)
    unassigned = np.ones(n, bool)
    for rule in ruleset.rules[:-1]:
        if not rule.segment.issubset(wanted):
            continue
        matches = _scope_mask(ruleset, vocabulary, rule, inputs) & unassigned
        change = times.rule_next_change[rule.index]
        if change is not None:
            sooner = matches & ((valid_until == MISSING) | (valid_until > change))
            valid_until[sooner] = change
        if times.rule_active[rule.index]:
            rule_index[matches] = rule.index
            unassigned &= ~matches

    strategy_position = np.full(n, UNPRICED, np.int8)
    strategy_price = np.full(n, MISSING, np.int64)
    adjusted = np.full(n, MISSING, np.int64)
    applied = np.zeros(n, np.uint32)
    held = np.zeros(n, np.int8)
    fired = np.zeros(n, np.uint16)
    final = np.full(n, MISSING, np.int64)
    reference = np.full(n, MISSING, np.int64)
    used = np.zeros(inputs.offer_price.shape, bool)
    guarded = np.full(n, MISSING, np.int64)
    low_column = np.full(n, MISSING, np.int64)
    high_column = np.full(n, MISSING, np.int64)
    low_by = np.full(n, -1, np.int8)
    high_by = np.full(n, -1, np.int8)
    rounding_ok = np.zeros(n, bool)
    rounding_skipped = np.zeros(n, bool)
    not_a_price = np.zeros(n, bool)

    order = np.argsort(rule_index, kind="stable")
    starts = np.searchsorted(rule_index[order], np.arange(len(ruleset.rules) + 1))
    protection = ruleset.loop_protection
    for rule in ruleset.rules:
        rows = order[starts[rule.index] : starts[rule.index + 1]]
        if len(rows) == 0:
            continue
        group = _Group(inputs, rows)
        m = len(rows)
        price = np.full(m, MISSING, np.int64)
        position = np.full(m, UNPRICED, np.int8)
        pending = np.ones(m, bool)
        exploration = rule.exploration
        draws = (
            None
            if exploration is None
            else [exploration_draw(exploration, rule.id, inputs.skus[r], epoch) for r in rows]
        )
        thompson_z = (
            None
            if draws is None or exploration is None or not exploration.thompson
            else [draw.thompson_z or 0.0 for draw in draws]
        )
        for index, strategy in enumerate(rule.chain):
            if strategy.kind == "competitor":
                candidate, ok, references, offers_used = _competitor_prices(
                    ruleset, vocabulary, group, strategy, currency, epoch
                )
            else:
                candidate, ok = _strategy_prices(
                    ruleset, vocabulary, group, strategy, currency, epoch, thompson_z
                )
            take = pending & ok
            price = np.where(take, np.clip(candidate, -MAX_MINOR, MAX_MINOR), price)
            position[take] = index
            if strategy.kind == "competitor":
                taken = rows[take]
                reference[taken] = references[take]
                used[taken] = offers_used[take]
            pending &= ~ok
        listed = pending & (group.list_price != MISSING)
        price = np.where(listed, group.list_price, price)
        position[listed] = LIST_PRICE_FALLBACK
        priced = position != UNPRICED
        strategy_position[rows] = position
        strategy_price[rows] = price

        for index, adjustment in enumerate(rule.adjustments):
            until = times.adjustment_next_change[rule.index][index]
            if until is not None:
                current_until = valid_until[rows]
                sooner = (current_until == MISSING) | (current_until > until)
                valid_until[rows] = np.where(sooner, until, current_until)
            if not times.adjustment_active[rule.index][index]:
                continue
            holds = priced.copy()
            for threshold, values in (
                (adjustment.velocity_ratio, group.velocity_ratio),
                (adjustment.days_of_supply, group.days_of_supply),
                (adjustment.inventory, group.inventory),
            ):
                if threshold is None:
                    continue
                if threshold.above is not None:
                    holds &= values > threshold.above
                if threshold.below is not None:
                    holds &= values < threshold.below
            if adjustment.change_ppm is not None:
                changed = _apply_ratio(price, adjustment.change_ppm)
            else:
                changed = price + ruleset.minor(adjustment.change_amount, currency)  # type: ignore[arg-type]
            price = np.where(holds, np.clip(changed, -MAX_MINOR, MAX_MINOR), price)
            applied[rows] |= np.where(holds, np.uint32(1 << index), np.uint32(0))
        if draws is not None and exploration is not None and exploration.perturbation_ppm:
            offsets = np.array([draw.perturbation_ppm or 0 for draw in draws], np.int64)
            explored = np.clip(_apply_ratio(price, RATIO_SCALE + offsets), -MAX_MINOR, MAX_MINOR)
            price = np.where(priced, explored, price)
        adjusted[rows] = np.where(priced, price, MISSING)

        current = group.current
        # Zero or less is not a price (see the single path): the current price, else the
        # list price, else none.
        nonpositive = priced & (price < 1)
        if nonpositive.any():
            not_a_price[rows] = nonpositive
            resort = np.where(current != MISSING, current, group.list_price)
            price = np.where(nonpositive, resort, price)
            priced = priced & ~(nonpositive & (resort == MISSING))
        known = (current != MISSING) & priced
        if protection.enabled:
            direction = np.sign(price - current).astype(np.int8)
            moving = known & (direction != 0)
            last = group.last_direction
            competitor_driven = np.zeros(m, bool)
            for index, strategy in enumerate(rule.chain):
                if strategy.kind == "competitor":
                    competitor_driven |= position == index
            escalation = (
                moving
                & competitor_driven
                & (direction == last)
                & (group.run_length + 1 >= protection.max_same_direction)
            )
            oscillation = (
                moving
                & ~escalation
                & (last != 0)
                & (direction != last)
                & (group.flips + 1 >= protection.max_flips)
            )
            held[rows] = np.where(
                escalation, HELD_ESCALATION, np.where(oscillation, HELD_OSCILLATION, HELD_NONE)
            )
            price = np.where(escalation | oscillation, current, price)

        guarded[rows] = np.where(priced, price, MISSING)
        (low, low_by[rows]), (high, high_by[rows]), rule_fired = _guardrails(
            ruleset, rule, group, price, currency, epoch
        )
        low_column[rows] = low
        high_column[rows] = high
        target = price
        price = np.minimum(np.maximum(price, low), high)
        rounding = rule.guardrails.rounding
        if rounding is not None:
            rounded, ok = _round(ruleset, rounding, price, low, high, currency)
            rounding_ok[rows] = ok
            holds = ok & (rounded == current) & (price != current)
            if holds.any():
                # See single.rounding_would_trap: the range cut rounding short of any point
                # toward the target but the current price, which it would hold for ever.
                whole = (np.ones(m, np.int64), np.full(m, NO_CEILING, np.int64))
                own, _ = _round(ruleset, rounding, target, *whole, currency)
                trapped = holds & (own != current)
                rounding_skipped[rows] = trapped
                rounded = np.where(trapped, price, rounded)
            price = np.where(price == current, price, rounded)
        fired[rows] = np.where(priced, rule_fired, 0)
        final[rows] = np.where(priced, price, MISSING)

        cooldown = rule.guardrails.cooldown_seconds
        if cooldown:
            changed_at = group.last_changed
            end = changed_at + cooldown
            cooling = priced & (current != MISSING) & (changed_at != MISSING) & (end > epoch)
            current_until = valid_until[rows]
            sooner = cooling & ((current_until == MISSING) | (current_until > end))
            current_until = np.where(sooner, end, current_until)
            # A step a step limit cut short: priced again when the cooldown it starts ends
            # (the single path says why).
            step_end = epoch + cooldown
            cut_short = (rule_fired & STEP_LIMIT_BITS) != 0
            stepping = priced & (current != MISSING) & (price != current) & cut_short
            sooner = stepping & ((current_until == MISSING) | (current_until > step_end))
            valid_until[rows] = np.where(sooner, step_end, current_until)

    return BatchDecisions(
        currency=currency,
        skus=inputs.skus,
        rule_index=rule_index,
        strategy_position=strategy_position,
        strategy_price=strategy_price,
        adjusted_price=adjusted,
        adjustments_applied=applied,
        held=held,
        guardrails_fired=fired,
        price=final,
        valid_until=valid_until,
        reference=reference,
        offers_used=used,
        guarded_price=guarded,
        low=low_column,
        high=high_column,
        low_by=low_by,
        high_by=high_by,
        rounding_ok=rounding_ok,
        rounding_skipped_to_move=rounding_skipped,
        not_a_price=not_a_price,
    )


def _scope_mask(
    ruleset: CompiledRuleset, vocabulary: Vocabulary, rule: CompiledRule, inputs: BatchInputs
) -> BoolArray:
    n = len(inputs)
    mask = np.ones(n, bool)
    if rule.skus is not None:
        mask &= inputs.sku_in_rule[:, vocabulary.sku_rules.index(rule.index)]
    if rule.categories is not None:
        mask &= np.isin(inputs.category, [vocabulary.categories[c] for c in rule.categories])
    if rule.brands is not None:
        mask &= np.isin(inputs.brand, [vocabulary.brands[b] for b in rule.brands])
    if rule.tags is not None:
        bits = np.uint64(sum(1 << vocabulary.tags[t] for t in rule.tags))
        mask &= (inputs.tags & bits) != 0
    if rule.band_min is not None or rule.band_max is not None:
        listed = inputs.list_price
        mask &= listed != MISSING
        if rule.band_min is not None:
            mask &= listed >= _band_bound(rule.band_min, inputs.currency, ceil=True)
        if rule.band_max is not None:
            mask &= listed <= _band_bound(rule.band_max, inputs.currency, ceil=False)
    return mask


def _band_bound(amount: Decimal, currency: str, *, ceil: bool) -> int:
    """A price-band edge in minor units that admits exactly the prices the Decimal
    comparison of the single path admits."""
    scaled = amount.scaleb(minor_unit_digits(currency))
    whole = int(scaled)  # truncates toward zero; band edges are not negative
    if scaled == whole:
        return whole
    return whole + 1 if ceil else whole


__all__ = [
    "MISSING",
    "BatchDecisions",
    "BatchInputs",
    "Vocabulary",
    "decide_batch",
    "encode_batch",
]
