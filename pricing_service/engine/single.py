"""The single-item path: one item in, one explained decision out.

Pipeline (each stage is a step of the explanation):
1. the first matching rule (highest priority first; the default rule last);
2. its strategy, then its fallbacks in order while inputs are missing or stale, then the
   current price; a missing input never becomes a zero price;
3. the rule's adjustments whose window and demand signals hold, then its exploration
   (a bounded perturbation drawn per SKU and period), when the rule asks for one;
4. loop protection: hold the price when it keeps escalating or flipping;
5. guardrails, last, in minor units: hard bounds (floor, ceiling, margin, MAP) win over
   soft ones (step limits, direction, cooldown); then rounding inside the allowed range.

A manual override (:class:`~pricing_service.engine.inputs.PriceOverride`) in force
replaces stages 2 to 5: its price is bounded only by the hard floor and ceiling (not at
all when forced), and its window ends when the override does.

The batch path in :mod:`pricing_service.engine.batch` computes the same arithmetic, except
overrides: it has none, so items with an override in force are priced by this path.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pricing_service.engine.compiled import (
    GUARDRAIL_BIT,
    STEP_LIMIT_BITS,
    STEP_LIMITS,
    CompiledRounding,
    CompiledRule,
    CompiledRuleset,
    CompiledStrategy,
    EffectiveGuardrails,
    TimeContext,
    fired_names,
)
from pricing_service.engine.decision import (
    Decision,
    InputUsed,
    Step,
    demand_value,
    elasticity_value,
    offer_value,
)
from pricing_service.engine.exploration import (
    CompiledExploration,
    Draw,
    exploration_draw,
    thompson_shift_bp,
)
from pricing_service.engine.history import (
    ELASTICITY_SCALE,
    MoveHistory,
    elasticity_basis_points,
    latest_per_competitor,
    move_history,
)
from pricing_service.engine.inputs import (
    DEFAULT_SEGMENT,
    CompetitorObservation,
    DemandStats,
    ElasticityEstimate,
    ItemFacts,
    PriceOverride,
    Segment,
)
from pricing_service.money import (
    MAX_RATIO_PPM,
    RATIO_SCALE,
    apply_ratio,
    ceil_ratio,
    clamp_minor,
    div_round_half_up,
    floor_ratio,
    minor_scale,
    minor_unit,
    minor_unit_digits,
)
from pricing_service.rules.model import (
    Action,
    Direction,
    Reference,
    RoundingMode,
    format_duration,
)

#: Larger than any price: the ceiling when none is set.
NO_CEILING = 1 << 62


def rule_matches_item(rule: CompiledRule, item: ItemFacts, segment: Segment) -> bool:
    """Does the rule's scope (not its time window) cover this item and segment?"""
    if rule.skus is not None and item.sku not in rule.skus:
        return False
    if rule.categories is not None and item.category not in rule.categories:
        return False
    if rule.brands is not None and item.brand not in rule.brands:
        return False
    if rule.tags is not None and rule.tags.isdisjoint(item.tags):
        return False
    if rule.band_min is not None or rule.band_max is not None:
        if item.list_price is None:
            return False
        if rule.band_min is not None and item.list_price < rule.band_min:
            return False
        if rule.band_max is not None and item.list_price > rule.band_max:
            return False
    return not rule.segment or rule.segment.issubset(segment.values)


def _age(at_epoch: int, moment: datetime) -> int:
    return max(0, at_epoch - int(moment.timestamp()))


@dataclass(slots=True)
class _Context:
    """Per-decision working state."""

    ruleset: CompiledRuleset
    item: ItemFacts
    currency: str
    epoch: int
    valid_from: datetime  # the instant priced, in UTC, from the ruleset's time context
    # Raw offers: only competitor strategies need the latest per competitor, so that
    # reduction is done on first use.
    observations: Sequence[CompetitorObservation]
    demand: DemandStats | None
    elasticity: ElasticityEstimate | None
    current: int | None
    draw: Draw | None  # the rule's exploration for this item and period
    steps: list[Step]
    inputs: list[InputUsed]
    warnings: list[str]

    unit: Decimal  # one minor unit of the currency: 0.01 USD, 1 JPY
    scale: Decimal  # minor units in one major unit: 100 for USD, 1 for JPY
    changed_at: int | None  # epoch seconds of the item's last price change

    def amount(self, minor: int) -> Decimal:
        """Minor units as the exact Decimal (what ``from_minor`` gives: the product has
        the unit's exponent), without lookups."""
        return Decimal(minor) * self.unit

    def minor(self, amount: Decimal) -> int:
        """An input's amount (the item's, an offer's) in minor units. Inputs are exact in
        the currency's minor unit (ItemFacts and CompetitorObservation check it), so the
        product needs no rounding; and each decision reads new Decimals, which would cost
        more to hash into ``CompiledRuleset.minor``'s cache than to multiply."""
        return int(amount * self.scale)

    def money(self, minor: int | None) -> str:
        return "none" if minor is None else str(self.amount(minor))

    def ceiling(self, high: int) -> str:
        """The allowed range's top as explanations write it."""
        return self.money(high) if high < NO_CEILING else "no ceiling"


def offer_exclusion(
    ruleset: CompiledRuleset,
    strategy: CompiledStrategy,
    currency: str,
    epoch: int,
    observation: CompetitorObservation,
) -> str | None:
    """Why a competitor strategy leaves this offer out, or None when it may use it."""
    name = observation.competitor
    if name in ruleset.ours:
        return "our own store (ours: true in competitors.yaml)"
    if name not in ruleset.known_competitors:
        return "not a competitor in competitors.yaml"
    if strategy.competitors is not None and name not in strategy.competitors:
        return "not in the strategy's competitors"
    if observation.currency != currency:
        return f"priced in {observation.currency}; the item is in {currency}"
    if _age(epoch, observation.observed_at) > strategy.max_age_seconds:
        return f"too old (max_age {format_duration(timedelta(seconds=strategy.max_age_seconds))})"
    if strategy.in_stock_only and not observation.in_stock:
        return "out of stock (the strategy reads in-stock offers only)"
    if strategy.include_shipping and observation.shipping is None:
        return "shipping unknown (the strategy adds shipping)"
    return None


def competitor_reference(
    context: _Context, strategy: CompiledStrategy
) -> tuple[int | None, list[CompetitorObservation]]:
    """The reference competitor price in minor units, and the offers it came from."""
    ruleset, currency, epoch = context.ruleset, context.currency, context.epoch
    values: list[tuple[int, CompetitorObservation]] = []
    for observation in latest_per_competitor(context.observations):
        if offer_exclusion(ruleset, strategy, currency, epoch, observation) is not None:
            continue
        price = context.minor(observation.price)
        if strategy.include_shipping:
            price += context.minor(observation.shipping)  # type: ignore[arg-type]
        values.append((price, observation))
    if not values:
        return None, []
    reference = strategy.reference
    if reference is Reference.competitor:
        chosen = [v for v in values if v[1].competitor == strategy.reference_competitor]
        return (chosen[0][0], [chosen[0][1]]) if chosen else (None, [])
    if reference is Reference.median:
        ordered = sorted(price for price, _ in values)
        middle = len(ordered) // 2
        if len(ordered) % 2:
            return ordered[middle], [o for _, o in values]
        return (ordered[middle - 1] + ordered[middle] + 1) // 2, [o for _, o in values]
    lowest = min(values, key=lambda v: (v[0], v[1].competitor))
    return lowest[0], [lowest[1]]


def _competitor_price(context: _Context, strategy: CompiledStrategy) -> tuple[int | None, str]:
    reference, used = competitor_reference(context, strategy)
    if reference is None:
        return None, "no fresh competitor offer passes the filters"
    for observation in used:
        shipping = observation.shipping
        context.inputs.append(
            InputUsed(
                name=f"competitor:{observation.competitor}",
                value=offer_value(
                    str(observation.price),
                    observation.currency,
                    None if shipping is None else str(shipping),
                    observation.in_stock,
                ),
                source=observation.source,
                age_seconds=_age(context.epoch, observation.observed_at),
            )
        )
    if strategy.action is Action.match:
        return reference, f"reference {context.money(reference)}"
    if strategy.by_ppm is not None:
        sign = -1 if strategy.action is Action.beat else 1
        price = apply_ratio(reference, RATIO_SCALE + sign * strategy.by_ppm)
    else:
        amount = context.ruleset.minor(strategy.by_amount or 0, context.currency)  # type: ignore[arg-type]
        price = reference - amount if strategy.action is Action.beat else reference + amount
    return price, f"reference {context.money(reference)}"


def _elasticity_price(context: _Context, strategy: CompiledStrategy) -> tuple[int | None, str]:
    estimate, item = context.elasticity, context.item
    if estimate is None:
        return None, "no elasticity estimate"
    cost = None if item.cost is None else context.minor(item.cost)
    if cost is None or cost <= 0:
        return None, "no cost"
    context.inputs.append(
        InputUsed(
            name="elasticity",
            value=elasticity_value(
                estimate.elasticity, estimate.standard_error, estimate.observations
            ),
            source="estimator",
            age_seconds=None
            if estimate.fitted_at is None
            else _age(context.epoch, estimate.fitted_at),
        )
    )
    if estimate.standard_error > strategy.max_standard_error:
        return None, "estimate too uncertain"
    if estimate.observations < strategy.min_observations:
        return None, "too few observations"
    basis_points = elasticity_basis_points(estimate.elasticity)
    sampled = ""
    draw = context.draw
    if draw is not None and draw.thompson_z is not None:
        basis_points += thompson_shift_bp(estimate.standard_error, draw.thompson_z)
        sampled = (
            f" (exploration: Thompson draw z={draw.thompson_z:+.3f} from "
            f"N({estimate.elasticity:.4f}, {estimate.standard_error:.4f}²))"
        )
    if basis_points >= -ELASTICITY_SCALE:
        return None, "demand is not elastic (|e| <= 1)" + sampled
    context.inputs.append(InputUsed("cost", str(item.cost), "catalogue"))  # p* marks it up
    multiplier = min(
        MAX_RATIO_PPM,
        div_round_half_up(-basis_points * RATIO_SCALE, -(basis_points + ELASTICITY_SCALE)),
    )
    return apply_ratio(cost, multiplier), f"p* = c·e/(1+e) with e={basis_points / 1e4}{sampled}"


def strategy_price(context: _Context, strategy: CompiledStrategy) -> tuple[int | None, str]:
    """The strategy's price in minor units, or None and why it could not price."""
    item, ruleset, currency = context.item, context.ruleset, context.currency
    kind = strategy.kind
    if kind == "fixed":
        return ruleset.minor(strategy.amount, currency), ""  # type: ignore[arg-type]
    if kind == "cost_plus":
        if item.cost is None:
            return None, "no cost"
        context.inputs.append(InputUsed("cost", str(item.cost), "catalogue"))
        return apply_ratio(context.minor(item.cost), strategy.multiplier_ppm), ""
    if kind in ("discount", "list_price"):
        if item.list_price is None:
            return None, "no list price"
        context.inputs.append(InputUsed("list_price", str(item.list_price), "catalogue"))
        return apply_ratio(context.minor(item.list_price), strategy.multiplier_ppm), ""
    if kind == "competitor":
        return _competitor_price(context, strategy)
    if kind == "elasticity":
        return _elasticity_price(context, strategy)
    if context.current is None:
        return None, "no current price"
    return context.current, ""


def _demand_value(name: str, demand: DemandStats | None, item: ItemFacts) -> float | None:
    if name == "inventory":
        return None if item.inventory is None else float(item.inventory)
    if demand is None:
        return None
    return demand.velocity_ratio if name == "velocity_ratio" else demand.days_of_supply


#: A bound and the guardrail that set it (a name of ``BOUND_NAMES``).
_Bound = tuple[int, str]


@dataclass(slots=True)
class _Limits:
    """Narrows a range around a candidate price, noting each guardrail it violates and
    which one set each bound: on a tie the earlier keeps it, as in the batch path."""

    candidate: int
    fired: int = 0

    def lower(self, name: str, bound: int | None, low: _Bound) -> _Bound:
        if bound is None:
            return low
        if self.candidate < bound:
            self.fired |= GUARDRAIL_BIT[name]
        return (bound, name) if bound > low[0] else low

    def upper(self, name: str, bound: int | None, high: _Bound) -> _Bound:
        if bound is None:
            return high
        if self.candidate > bound:
            self.fired |= GUARDRAIL_BIT[name]
        return (bound, name) if bound < high[0] else high


#: What kind of bound a hard guardrail sets; a soft one sets either.
_HARD_KIND = {"min_price": "floor", "min_margin": "floor", "map": "floor", "max_price": "ceiling"}


def guardrail_detail(
    bound_by: str, raised: bool, bound: str, low: str, high: str, fired: int, scope: str
) -> str:
    """A guardrail step's detail: the guardrail that set the bound the price moved to,
    then the others that fired. Both paths word it here, so they say the same."""
    if bound_by == STEP_LIMITS:
        text = f"held at the current price {bound}: the step limits leave no range"
    else:
        # A hard bound can win from the other side (a ceiling below a step limit's floor),
        # so the kind comes from the guardrail, and "raised"/"lowered" from the move.
        kind = _HARD_KIND.get(bound_by) or ("floor" if raised else "ceiling")
        verb = "raised" if raised else "lowered"
        text = f"{verb} to the {bound_by} {kind} {bound} ({scope} {low}..{high})"
    others = [name for name in fired_names(fired) if name != bound_by]
    return f"{text}; also fired: {', '.join(others)}" if others else text


def _hard_bounds(
    context: _Context, guardrails: EffectiveGuardrails, limits: _Limits
) -> tuple[_Bound, _Bound, list[str]]:
    """The floor and ceiling no price may cross (min/max price, margin, MAP), and
    warnings."""
    item, ruleset, currency = context.item, context.ruleset, context.currency
    lower, upper = limits.lower, limits.upper
    warnings: list[str] = []

    def item_minor(amount: Decimal | None) -> int | None:
        return None if amount is None else context.minor(amount)

    def rule_minor(amount: Decimal | None) -> int | None:
        return None if amount is None else ruleset.minor(amount, currency)

    # Never zero: the floor of one minor unit is the least price there is.
    floor: _Bound = (1, "min_price")
    floor = lower("min_price", item_minor(item.min_price), floor)
    floor = lower("min_price", rule_minor(guardrails.min_price), floor)
    if guardrails.min_margin_ppm is not None and item.cost is not None:
        cost = context.minor(item.cost)
        floor = lower(
            "min_margin", ceil_ratio(cost, RATIO_SCALE + guardrails.min_margin_ppm), floor
        )
    if guardrails.enforce_map:
        floor = lower("map", item_minor(item.map_price), floor)
    ceiling: _Bound = (NO_CEILING, "max_price")
    ceiling = upper("max_price", item_minor(item.max_price), ceiling)
    ceiling = upper("max_price", rule_minor(guardrails.max_price), ceiling)
    if floor[0] > ceiling[0]:
        limits.fired |= GUARDRAIL_BIT["conflict"]
        warnings.append(
            f"guardrail conflict: floor {context.money(floor[0])} above ceiling "
            f"{context.money(ceiling[0])}; the floor wins"
        )
        ceiling = floor
    return floor, ceiling, warnings


def _bounds(
    context: _Context,
    guardrails: EffectiveGuardrails,
    history: MoveHistory,
    candidate: int,
) -> tuple[_Bound, _Bound, int, list[str]]:
    """The allowed range ``[low, high]``, each end with the guardrail that set it, a
    bitmask of the guardrails the candidate violates, and warnings."""
    current = context.current
    limits = _Limits(candidate)
    lower, upper = limits.lower, limits.upper
    floor, ceiling, warnings = _hard_bounds(context, guardrails, limits)
    if current is None:
        return floor, ceiling, limits.fired, warnings
    # Never binding as they are: every hard floor is above 0 and every ceiling at most this.
    soft_low: _Bound = (0, STEP_LIMITS)
    soft_high: _Bound = (NO_CEILING, STEP_LIMITS)
    if guardrails.max_change_ppm is not None:
        soft_low = lower(
            "max_change", ceil_ratio(current, RATIO_SCALE - guardrails.max_change_ppm), soft_low
        )
        soft_high = upper(
            "max_change", floor_ratio(current, RATIO_SCALE + guardrails.max_change_ppm), soft_high
        )
    if guardrails.max_change_per_day_ppm is not None and history.price_day_ago is not None:
        day = history.price_day_ago
        soft_low = lower(
            "max_change_per_day",
            ceil_ratio(day, RATIO_SCALE - guardrails.max_change_per_day_ppm),
            soft_low,
        )
        soft_high = upper(
            "max_change_per_day",
            floor_ratio(day, RATIO_SCALE + guardrails.max_change_per_day_ppm),
            soft_high,
        )
    if guardrails.direction is Direction.up_only:
        soft_low = lower("direction", current, soft_low)
    elif guardrails.direction is Direction.down_only:
        soft_high = upper("direction", current, soft_high)
    changed_at = context.changed_at
    since_change = None if changed_at is None else context.epoch - changed_at
    cooling = guardrails.cooldown_seconds > 0 and since_change is not None
    if cooling and since_change is not None and since_change < guardrails.cooldown_seconds:
        soft_low = lower("cooldown", current, soft_low)
        soft_high = upper("cooldown", current, soft_high)
    if soft_low[0] > soft_high[0]:
        soft_low = soft_high = (current, STEP_LIMITS)
    # On a tie the hard bound is named: it would hold without the soft one.
    low = floor if floor[0] >= soft_low[0] else soft_low
    high = ceiling if ceiling[0] <= soft_high[0] else soft_high
    if low[0] > high[0]:
        # Hard bounds beat step limits: take the hard bound nearest the soft range.
        low = high = ceiling if soft_low[0] > ceiling[0] else floor
    return low, high, limits.fired, warnings


def _rounding_candidates(
    rounding: CompiledRounding, price: int, currency: str
) -> tuple[int, int] | None:
    """The rounding points just below-or-at and just above-or-at ``price``."""
    if rounding.price_points:
        # Callers convert points to minor units once; see round_price.
        raise AssertionError("price points are handled by round_price")
    assert rounding.ending is not None
    grid = rounding.ending_grids[minor_unit_digits(currency)]
    if grid is None:
        return None
    ending, step = grid
    below = (price - ending) // step * step + ending
    above = below if below == price else below + step
    return below, above


def round_price(
    ruleset: CompiledRuleset,
    rounding: CompiledRounding,
    price: int,
    low: int,
    high: int,
    currency: str,
) -> tuple[int, bool]:
    """Round to an ending or price point inside ``[low, high]``; (price, False) when no
    such point exists."""
    below: int | None
    above: int | None
    if rounding.price_points:
        points = [ruleset.minor(p, currency) for p in rounding.price_points]
        index = bisect_left(points, price)
        above = points[index] if index < len(points) else None
        index_below = bisect_right(points, price) - 1
        below = points[index_below] if index_below >= 0 else None
    else:
        candidates = _rounding_candidates(rounding, price, currency)
        if candidates is None:
            return price, False
        below, above = candidates
        if below < 1:
            below = None
    if rounding.mode is RoundingMode.down:
        options = [p for p in (below, above) if p is not None]
    elif rounding.mode is RoundingMode.up:
        options = [p for p in (above, below) if p is not None]
    else:
        # Nearest; a tie goes up: the sort is stable and `above` comes first.
        options = sorted((p for p in (above, below) if p is not None), key=lambda p: abs(p - price))
    for option in options:
        if low <= option <= high:
            return option, True
    return price, False


def rounding_would_trap(
    ruleset: CompiledRuleset,
    rounding: CompiledRounding,
    target: int,
    current: int | None,
    currency: str,
) -> bool:
    """Is rounding holding the price short of its target? Ask when rounding the bounded
    price within the allowed range gave back the current price, though the bounded price
    differs from it.

    When the target (the price before the guardrails bounded it) rounds, range aside, to
    another price, the range left no point toward it but the current price, and rounding
    would hold the price there on every reprice. When the target itself rounds to the
    current price, the hold is the rounding's own answer: the point on the far side of
    the target would overshoot it and flip back at the next reprice."""
    own, _ = round_price(ruleset, rounding, target, 1, NO_CEILING, currency)
    return own != current


def rounding_hold_warning(
    rounding: CompiledRounding, current: str, target: str, low: str, high: str
) -> str:
    """The warning when rounding is skipped so as not to hold the price (both paths)."""
    return (
        f"rounding skipped: in the allowed range {low}..{high} the only "
        f"{rounding.points_noun} on the way to the target {target} is the current price "
        f"{current}, which would hold the price from its target"
    )


def ending_decimals(rounding: CompiledRounding) -> int:
    """How many decimal places a price must have to carry the rounding's ending: 2 for
    ".99", 1 for ".90" (0.9), 0 for "9" or ".00" and for price points."""
    if rounding.ending is None:
        return 0
    exponent = rounding.ending.normalize().as_tuple().exponent
    assert isinstance(exponent, int)  # an ending is finite: the model's pattern says so
    return max(0, -exponent)


def rounding_skip_warning(rounding: CompiledRounding, currency: str) -> str:
    """The warning when rounding finds no point within the allowed range (both paths):
    an ending finer than the currency's minor unit (".99" in JPY) never has one."""
    needed, digits = ending_decimals(rounding), minor_unit_digits(currency)
    if needed > digits:
        has = "no minor unit" if digits == 0 else f"only {digits} decimal places"
        return (
            f"rounding skipped: {rounding.points_noun} needs {needed} decimal places and "
            f"{currency} has {has}, so no {currency} price ends in it"
        )
    return "rounding skipped: no price ending within the allowed range"


def decide(
    ruleset: CompiledRuleset,
    item: ItemFacts,
    at: datetime,
    *,
    segment: Segment = DEFAULT_SEGMENT,
    observations: tuple[CompetitorObservation, ...] | list[CompetitorObservation] = (),
    demand: DemandStats | None = None,
    elasticity: ElasticityEstimate | None = None,
    override: PriceOverride | None = None,
) -> Decision:
    """Price one item for one segment at instant ``at``."""
    epoch = int(at.timestamp())
    times = ruleset.time_context(epoch)
    candidates = ruleset.rules_for(item.category, item.brand)
    rule = select_rule(ruleset, times, candidates, item, segment)
    currency = item.currency
    scale = minor_scale(currency)
    # What _Context.minor does; the context is built with the current price.
    current = None if item.current_price is None else int(item.current_price * scale)
    changed_at = None if item.last_changed_at is None else int(item.last_changed_at.timestamp())
    context = _Context(
        ruleset=ruleset,
        item=item,
        currency=currency,
        epoch=epoch,
        valid_from=times.at,
        observations=observations,
        demand=demand,
        elasticity=elasticity,
        current=current,
        draw=None
        if rule.exploration is None
        else exploration_draw(rule.exploration, rule.id, item.sku, epoch),
        unit=minor_unit(currency),
        scale=scale,
        changed_at=changed_at,
        steps=[],
        inputs=[],
        warnings=[],
    )
    if current is not None:
        context.inputs.append(
            InputUsed(
                "current_price",
                str(item.current_price),
                "catalogue",
                None if changed_at is None else max(0, epoch - changed_at),
            )
        )

    if override is not None and override.active_at(at):
        valid_until = _valid_until(times, candidates, rule, item, segment)
        return _overridden(context, rule, segment, valid_until, override)

    price: int | None = None
    used = rule.chain[-1]
    for position, strategy in enumerate(rule.chain):
        price, why = strategy_price(context, strategy)
        stage = "strategy" if position == 0 else "fallback"
        if price is not None:
            price = clamp_minor(price)
            used = strategy
            detail = strategy.description + (f": {why}" if why else "")
            context.steps.append(Step(stage, strategy.kind, None, context.amount(price), detail))
            break
        context.warnings.append(f"{strategy.kind} skipped: {why}")
    if price is None and item.list_price is not None:
        price = context.minor(item.list_price)
        used = rule.chain[-1]
        context.steps.append(
            Step(
                "fallback",
                "list_price",
                None,
                context.amount(price),
                "no current price; the list price",
            )
        )
    strategy_name = used.kind if used is rule.chain[0] else f"fallback:{used.kind}"
    valid_until = _valid_until(times, candidates, rule, item, segment)
    if price is None:
        context.warnings.append("no price: every strategy lacked inputs and the item has no price")
        return _decision(context, rule, segment, valid_until, None, strategy_name, 0, None)

    # Adjustments.
    for index, adjustment in enumerate(rule.adjustments):
        if not times.adjustment_active[rule.index][index]:
            continue
        if adjustment.signal_checks and not all(
            threshold.holds(_demand_value(name, demand, item))
            for name, threshold in adjustment.signal_checks
        ):
            continue
        before = price
        if adjustment.change_ppm is not None:
            price = apply_ratio(price, adjustment.change_ppm)
        else:
            price += ruleset.minor(adjustment.change_amount, currency)  # type: ignore[arg-type]
        price = clamp_minor(price)
        context.steps.append(
            Step(
                "adjustment",
                adjustment.id,
                context.amount(before),
                context.amount(price),
                adjustment.detail(currency),
            )
        )
    if rule.exploration is not None and context.draw is not None:
        price = _perturbed(context, rule.exploration, context.draw, price)
    if demand is not None and rule.reads_demand:
        context.inputs.append(
            InputUsed(
                "demand",
                demand_value(demand.velocity_ratio, demand.days_of_supply),
                "sales",
                None if demand.as_of is None else _age(epoch, demand.as_of),
            )
        )

    if price < 1:
        # An amount (an adjustment's "-20", a "beat by 5.00" under a 3.00 offer) took the
        # price to zero or below. That is not a price: the guardrails' floor of one minor
        # unit would publish it as 0.01. The last resorts take over: the current price,
        # else the list price, else none.
        listed = None if item.list_price is None else context.minor(item.list_price)
        resort = current if current is not None else listed
        name = "keep_current" if current is not None else "list_price"
        kept = "no price" if resort is None else f"the {name.replace('_', ' ')} is used"
        context.warnings.append(
            f"not a price: the rules computed {context.money(price)} {currency}; {kept}"
        )
        if resort is None:
            return _decision(context, rule, segment, valid_until, None, strategy_name, 0, None)
        context.steps.append(
            Step(
                "fallback",
                name,
                context.amount(price),
                context.amount(resort),
                f"the rules computed no positive price: the {name.replace('_', ' ')}",
            )
        )
        price = resort

    # Loop protection.
    protection = ruleset.loop_protection
    history = move_history(item, epoch, ruleset.loop_window_seconds)
    held_by = loop_breaker(
        protection_enabled=protection.enabled,
        max_same=protection.max_same_direction,
        max_flips=protection.max_flips,
        history=history,
        current=current,
        candidate=price,
        competitor_driven=used.kind == "competitor",
    )
    if held_by is not None:
        assert current is not None
        context.steps.append(
            Step(
                "loop_breaker",
                held_by,
                context.amount(price),
                context.amount(current),
                f"held: {held_by.replace('_', ' ')} detected in recent changes",
            )
        )
        context.warnings.append(f"loop breaker: {held_by}")
        price = current

    # Guardrails, last.
    guardrails = rule.guardrails
    (low, low_by), (high, high_by), fired, warnings = _bounds(context, guardrails, history, price)
    context.warnings.extend(warnings)
    target = price
    clamped = min(max(price, low), high)
    if clamped != price:
        _guardrail_step(
            context,
            price,
            clamped,
            low_by if clamped > price else high_by,
            low,
            high,
            fired,
            "allowed range",
        )
        price = clamped
    if guardrails.rounding is not None and price != current:
        # An unchanged price is never re-rounded: keeping a price must keep it exactly.
        rounded, ok = round_price(ruleset, guardrails.rounding, price, low, high, currency)
        holds = ok and rounded == current
        if holds and rounding_would_trap(ruleset, guardrails.rounding, target, current, currency):
            # The range left the current price as the only point toward the target: the
            # ending is cosmetic, the guardrails are not, so the bounded price goes out.
            assert current is not None
            context.warnings.append(
                rounding_hold_warning(
                    guardrails.rounding,
                    context.money(current),
                    context.money(target),
                    context.money(low),
                    context.ceiling(high),
                )
            )
            rounded = price
        elif ok and rounded != price:
            context.steps.append(
                Step(
                    "rounding",
                    "rounding",
                    context.amount(price),
                    context.amount(rounded),
                    guardrails.rounding.detail,
                )
            )
        elif not ok:
            context.warnings.append(rounding_skip_warning(guardrails.rounding, currency))
        price = rounded
    if guardrails.cooldown_seconds and current is not None:
        ends = []
        if changed_at is not None and changed_at + guardrails.cooldown_seconds > epoch:
            ends.append(changed_at + guardrails.cooldown_seconds)
        if fired & STEP_LIMIT_BITS and price != current:
            # A step a step limit cut short: priced again when the cooldown it starts
            # ends, to take the next one, not only when an input changes. (A price held
            # where it is gets none: its decision would repeat every cooldown.)
            ends.append(epoch + guardrails.cooldown_seconds)
        if ends:
            valid_until = min(ends) if valid_until is None else min(valid_until, *ends)
    return _decision(context, rule, segment, valid_until, price, strategy_name, fired, held_by)


def _guardrail_step(
    context: _Context,
    price: int,
    clamped: int,
    bound_by: str,
    low: int,
    high: int,
    fired: int,
    scope: str,
) -> None:
    """The step of the guardrails moving ``price`` to ``clamped``, a bound ``bound_by``
    set: the step is named after it."""
    bound = context.money(clamped)
    raised = clamped > price
    low_text, high_text = context.money(low), context.ceiling(high)
    detail = guardrail_detail(bound_by, raised, bound, low_text, high_text, fired, scope)
    context.steps.append(
        Step("guardrail", bound_by, context.amount(price), context.amount(clamped), detail)
    )


def _perturbed(context: _Context, exploration: CompiledExploration, draw: Draw, price: int) -> int:
    """The price moved by the exploration draw, recorded as a step."""
    if draw.perturbation_ppm is None:
        return price
    explored = clamp_minor(apply_ratio(price, RATIO_SCALE + draw.perturbation_ppm))
    bound = exploration.perturbation_ppm or 0
    period = datetime.fromtimestamp(draw.period_start, tz=UTC).isoformat()
    context.steps.append(
        Step(
            "exploration",
            "perturbation",
            context.amount(price),
            context.amount(explored),
            f"{draw.perturbation_ppm / 1e4:+.4f}% (a draw within ±{bound / 1e4:g}% for the "
            f"period from {period}, seed {exploration.seed})",
        )
    )
    return explored


def _overridden(
    context: _Context,
    rule: CompiledRule,
    segment: Segment,
    valid_until: int | None,
    override: PriceOverride,
) -> Decision:
    """The decision for an override in force: no strategy, adjustment, loop protection,
    step limit, direction, cooldown or rounding; the hard floor and ceiling of the rule
    that would have priced the item still apply unless the override is forced."""
    currency = context.currency
    price = context.ruleset.minor(override.price, currency)
    # Rounded up so the next window starts at or after the override's end.
    ends = math.ceil(override.until.timestamp())
    valid_until = ends if valid_until is None else min(valid_until, ends)
    until_text = override.until.isoformat()
    context.inputs.append(
        InputUsed("override", f"{override.price} {currency} until {until_text}", "admin", None)
    )
    forced = " (forced past the floor and ceiling)" if override.force else ""
    context.steps.append(
        Step(
            "override",
            "override",
            None,
            context.amount(price),
            f"{override.reason}; until {until_text}{forced}",
        )
    )
    fired = 0
    if not override.force:
        limits = _Limits(price)
        (floor, floor_by), (ceiling, ceiling_by), warnings = _hard_bounds(
            context, rule.guardrails, limits
        )
        context.warnings.extend(warnings)
        fired = limits.fired
        clamped = min(max(price, floor), ceiling)
        if clamped != price:
            bound_by = floor_by if clamped > price else ceiling_by
            _guardrail_step(
                context, price, clamped, bound_by, floor, ceiling, fired, "override bounded by"
            )
            price = clamped
    return _decision(context, rule, segment, valid_until, price, "override", fired, None)


def loop_breaker(
    *,
    protection_enabled: bool,
    max_same: int,
    max_flips: int,
    history: MoveHistory,
    current: int | None,
    candidate: int,
    competitor_driven: bool,
) -> str | None:
    """``"escalation"`` or ``"oscillation"`` when this move would continue a loop."""
    if not protection_enabled or current is None:
        return None
    direction = (candidate > current) - (candidate < current)
    if direction == 0:
        return None
    if (
        competitor_driven
        and direction == history.last_direction
        and history.run_length + 1 >= max_same
    ):
        return "escalation"
    if (
        history.last_direction != 0
        and direction != history.last_direction
        and history.flips + 1 >= max_flips
    ):
        return "oscillation"
    return None


def select_rule(
    ruleset: CompiledRuleset,
    times: TimeContext,
    candidates: tuple[CompiledRule, ...],
    item: ItemFacts,
    segment: Segment,
) -> CompiledRule:
    """The first rule, in priority order, whose scope and window cover the item now;
    ``candidates`` are the rules ``ruleset.rules_for`` admits for the item."""
    active = times.rule_active
    for rule in candidates:
        if rule.is_default:
            return rule
        if active[rule.index] and rule_matches_item(rule, item, segment):
            return rule
    return ruleset.rules[-1]


def _valid_until(
    times: TimeContext,
    candidates: tuple[CompiledRule, ...],
    chosen: CompiledRule,
    item: ItemFacts,
    segment: Segment,
) -> int | None:
    """The next instant a window of the chosen rule, an earlier matching rule (of
    ``candidates``, as select_rule had them), or one of the chosen rule's adjustments
    changes."""
    soonest: int | None = None
    for rule in candidates:
        if rule.index > chosen.index:
            break
        change = times.rule_next_change[rule.index]
        sooner = change is not None and (soonest is None or change < soonest)
        if sooner and (rule is chosen or rule_matches_item(rule, item, segment)):
            soonest = change
    for change in times.adjustment_next_change[chosen.index]:
        if change is not None and (soonest is None or change < soonest):
            soonest = change
    return soonest


def _decision(
    context: _Context,
    rule: CompiledRule,
    segment: Segment,
    valid_until: int | None,
    price: int | None,
    strategy: str,
    fired: int,
    held_by: str | None,
) -> Decision:
    currency = context.currency
    return Decision(
        sku=context.item.sku,
        segment=str(segment),
        currency=currency,
        price=None if price is None else context.amount(price),
        valid_from=context.valid_from,
        valid_until=None if valid_until is None else datetime.fromtimestamp(valid_until, tz=UTC),
        rule_id=rule.id,
        ruleset_version=context.ruleset.version,
        strategy=strategy,
        steps=tuple(context.steps),
        guardrails_fired=fired_names(fired),
        inputs=tuple(context.inputs),
        warnings=tuple(context.warnings),
        held_by=held_by,
        changed=price is not None and price != context.current,
    )
