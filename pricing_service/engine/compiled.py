"""A ruleset prepared for fast evaluation: sets instead of lists, ratios in parts per
million, guardrails merged per rule, and the time windows evaluated once per instant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache

from pricing_service.engine.exploration import CompiledExploration
from pricing_service.money import MAX_MINOR_DIGITS, RATIO_SCALE, ratio_to_ppm, to_minor
from pricing_service.rules.calendar import Calendar
from pricing_service.rules.model import (
    Action,
    Adjustment,
    DefaultRule,
    Direction,
    Exploration,
    Guardrails,
    LoopProtection,
    Reference,
    Rounding,
    RoundingMode,
    Rule,
    Ruleset,
    Strategy,
    Threshold,
    Window,
)

#: Guardrails in the order they are reported; the batch path uses these as bit positions.
GUARDRAIL_NAMES: tuple[str, ...] = (
    "min_price",
    "max_price",
    "min_margin",
    "map",
    "max_change",
    "max_change_per_day",
    "direction",
    "cooldown",
    "conflict",
)
GUARDRAIL_BIT = {name: 1 << index for index, name in enumerate(GUARDRAIL_NAMES)}
#: The guardrails that limit a step, not the price: one that fired held the price short of
#: where the rules took it.
STEP_LIMIT_BITS = GUARDRAIL_BIT["max_change"] | GUARDRAIL_BIT["max_change_per_day"]
#: What a guardrail step names when the soft limits (step limits, direction, cooldown)
#: leave no price between them: no single guardrail set the bound, the current price did.
STEP_LIMITS = "step_limits"
#: Which guardrail set a bound of the allowed range; the batch path stores these indexes.
BOUND_NAMES: tuple[str, ...] = (*GUARDRAIL_NAMES, STEP_LIMITS)
BOUND_CODE = {name: index for index, name in enumerate(BOUND_NAMES)}


@lru_cache(maxsize=512)
def fired_names(fired: int) -> tuple[str, ...]:
    """The guardrails a bit set of :data:`GUARDRAIL_BIT` names, in GUARDRAIL_NAMES order."""
    return tuple(name for index, name in enumerate(GUARDRAIL_NAMES) if fired >> index & 1)


REFERENCE_CODES = {ref: code for code, ref in enumerate(Reference)}
STRATEGY_KINDS: tuple[str, ...] = (
    "fixed",
    "cost_plus",
    "discount",
    "list_price",
    "competitor",
    "elasticity",
    "keep_current",
)


@dataclass(frozen=True, slots=True)
class CompiledStrategy:
    kind: str
    description: str
    amount: Decimal | None = None  # fixed price
    multiplier_ppm: int = RATIO_SCALE  # cost_plus / discount
    reference: Reference = Reference.lowest
    reference_competitor: str | None = None
    action: Action = Action.match
    by_ppm: int | None = None
    by_amount: Decimal | None = None
    competitors: frozenset[str] | None = None
    max_age_seconds: int = 0
    in_stock_only: bool = True
    include_shipping: bool = False
    max_standard_error: float = 0.0
    min_observations: int = 0


@dataclass(frozen=True, slots=True)
class CompiledThreshold:
    above: float | None
    below: float | None

    def holds(self, value: float | None) -> bool:
        if value is None:
            return False
        if self.above is not None and not value > self.above:
            return False
        return not (self.below is not None and not value < self.below)


@dataclass(frozen=True, slots=True)
class CompiledAdjustment:
    id: str
    window: Window | None
    velocity_ratio: CompiledThreshold | None
    days_of_supply: CompiledThreshold | None
    inventory: CompiledThreshold | None
    change_ppm: int | None
    change_amount: Decimal | None
    change_text: str  # as written: "+5%", "-2.00"
    description: str  # the rule file's, or ''
    #: The thresholds above that are set, by signal name: what the single path checks.
    signal_checks: tuple[tuple[str, CompiledThreshold], ...]

    def detail(self, currency: str) -> str:
        """The explanation's detail of this step: the change applied, then why. An amount
        names its currency, so "-20" written for "-20%" shows as "-20 USD"."""
        change = (
            self.change_text if self.change_ppm is not None else f"{self.change_text} {currency}"
        )
        return f"{change}: {self.description}" if self.description else f"{self.id}: {change}"


#: An ending's rounding points in minor units: (the ending, the step between points).
#: For ".99" in USD (99, 100): 0.99, 1.99, ...; for "9" in USD (900, 1000): 9, 19, ...
EndingGrid = tuple[int, int]


@dataclass(frozen=True, slots=True)
class CompiledRounding:
    ending: Decimal | None
    price_points: tuple[Decimal, ...]
    mode: RoundingMode
    #: The explanation's detail of a rounding step: which ending or points, which way.
    detail: str
    #: What a rounded price is, for warnings: "price ending .99", "price point", ...
    points_noun: str
    #: The ending's rounding points, by the digits of a currency's minor unit (the
    #: index): worked out once here for both paths; empty without an ending.
    ending_grids: tuple[EndingGrid | None, ...]


@dataclass(frozen=True, slots=True)
class EffectiveGuardrails:
    """The ruleset's guardrails tightened by a rule's own."""

    min_price: Decimal | None
    max_price: Decimal | None
    min_margin_ppm: int | None
    enforce_map: bool
    max_change_ppm: int | None
    max_change_per_day_ppm: int | None
    direction: Direction
    cooldown_seconds: int
    rounding: CompiledRounding | None


@dataclass(frozen=True, slots=True)
class CompiledRule:
    index: int
    id: str
    is_default: bool
    skus: frozenset[str] | None
    categories: frozenset[str] | None
    brands: frozenset[str] | None
    tags: frozenset[str] | None
    band_min: Decimal | None
    band_max: Decimal | None
    segment: frozenset[tuple[str, str]]  # the (dimension, value) pairs it asks for
    window: Window | None
    chain: tuple[CompiledStrategy, ...]
    adjustments: tuple[CompiledAdjustment, ...]
    guardrails: EffectiveGuardrails
    reads_demand: bool  # an adjustment looks at velocity or days of supply
    exploration: CompiledExploration | None


@dataclass(frozen=True, slots=True)
class TimeContext:
    """Which windows are on at one instant, and when each next changes."""

    at: datetime
    epoch: int
    rule_active: tuple[bool, ...]
    rule_next_change: tuple[int | None, ...]  # epoch seconds
    adjustment_active: tuple[tuple[bool, ...], ...]
    adjustment_next_change: tuple[tuple[int | None, ...], ...]


def _tighter_max(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    return b if a is None else a if b is None else max(a, b)


def _tighter_min(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    return b if a is None else a if b is None else min(a, b)


def _ppm(value: Decimal | None) -> int | None:
    return None if value is None else ratio_to_ppm(value)


def _min_ppm(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _ending_grid(ending: Decimal, major: bool, digits: int) -> EndingGrid | None:
    """The ending's grid in a currency whose minor unit has ``digits`` digits, or None
    when the currency cannot write the ending (.99 in yen) or it is not below its step."""
    scaled = ending.scaleb(digits)
    if scaled != scaled.to_integral_value():
        return None
    step = 10 ** (len(str(int(ending))) + digits) if major else 10**digits
    in_minor = int(scaled)
    return (in_minor, step) if in_minor < step else None


def _compile_rounding(rounding: Rounding | None) -> CompiledRounding | None:
    if rounding is None:
        return None
    ending = None
    major = False
    if rounding.ending is not None:
        major = not rounding.ending.startswith(".")
        ending = Decimal(rounding.ending) if major else Decimal("0" + rounding.ending)
    if rounding.price_points:
        noun = "price point"
        detail = f"to a price point ({rounding.mode})"
    elif rounding.ending is None:
        noun = "price in the minor unit"
        detail = f"to the minor unit ({rounding.mode})"
    else:
        noun = f"price ending {rounding.ending}"
        detail = f"price ending {rounding.ending} ({rounding.mode})"
    return CompiledRounding(
        ending=ending,
        price_points=tuple(sorted(rounding.price_points or ())),
        mode=rounding.mode,
        detail=detail,
        points_noun=noun,
        ending_grids=()
        if ending is None
        else tuple(_ending_grid(ending, major, digits) for digits in range(MAX_MINOR_DIGITS + 1)),
    )


def merge_guardrails(base: Guardrails, rule: Guardrails | None) -> EffectiveGuardrails:
    """A rule may only tighten the ruleset's guardrails; rounding is the rule's choice."""
    own = rule or Guardrails()
    direction = base.direction or Direction.any
    if own.direction is not None and own.direction is not Direction.any:
        direction = own.direction
    margin_base, margin_own = _ppm(base.min_margin), _ppm(own.min_margin)
    min_margin = (
        margin_own
        if margin_base is None
        else margin_base
        if margin_own is None
        else max(margin_base, margin_own)
    )
    cooldowns = [c for c in (base.cooldown, own.cooldown) if c is not None]
    return EffectiveGuardrails(
        min_price=_tighter_max(base.min_price, own.min_price),
        max_price=_tighter_min(base.max_price, own.max_price),
        min_margin_ppm=min_margin,
        enforce_map=(base.enforce_map is not False) or bool(own.enforce_map),
        max_change_ppm=_min_ppm(_ppm(base.max_change), _ppm(own.max_change)),
        max_change_per_day_ppm=_min_ppm(
            _ppm(base.max_change_per_day), _ppm(own.max_change_per_day)
        ),
        direction=direction,
        cooldown_seconds=int(max(cooldowns).total_seconds()) if cooldowns else 0,
        rounding=_compile_rounding(own.rounding or base.rounding),
    )


def _compile_strategy(strategy: Strategy) -> CompiledStrategy:
    kind = strategy.kind
    if strategy.fixed is not None:
        return CompiledStrategy(kind, f"fixed price {strategy.fixed}", amount=strategy.fixed)
    if strategy.cost_plus is not None:
        return CompiledStrategy(
            kind,
            f"cost plus {strategy.cost_plus * 100:f}%",
            multiplier_ppm=RATIO_SCALE + ratio_to_ppm(strategy.cost_plus),
        )
    if strategy.discount is not None:
        return CompiledStrategy(
            kind,
            f"{strategy.discount * 100:f}% off list price",
            multiplier_ppm=RATIO_SCALE - ratio_to_ppm(strategy.discount),
        )
    if strategy.competitor is not None:
        spec = strategy.competitor
        target = spec.competitor if spec.reference is Reference.competitor else spec.reference.value
        by = ""
        if spec.by is not None:
            by = f" by {spec.by.percent * 100:f}%" if spec.by.percent is not None else ""
            by = by or f" by {spec.by.amount}"
        return CompiledStrategy(
            kind,
            f"{spec.action.value}{by} the {target} competitor price",
            reference=spec.reference,
            reference_competitor=spec.competitor,
            action=spec.action,
            by_ppm=_ppm(spec.by.percent) if spec.by is not None else None,
            by_amount=spec.by.amount if spec.by is not None else None,
            competitors=frozenset(spec.competitors) if spec.competitors else None,
            max_age_seconds=int(spec.max_age.total_seconds()),
            in_stock_only=spec.in_stock_only or spec.reference is Reference.lowest_landed_in_stock,
            include_shipping=(
                spec.include_shipping or spec.reference is Reference.lowest_landed_in_stock
            ),
        )
    if strategy.elasticity is not None:
        spec_e = strategy.elasticity
        return CompiledStrategy(
            kind,
            f"elasticity-optimal ({spec_e.objective.value})",
            max_standard_error=float(spec_e.max_standard_error),
            min_observations=spec_e.min_observations,
        )
    if strategy.list_price is not None:
        return CompiledStrategy(kind, "the list price")
    return CompiledStrategy("keep_current", "keep the current price")


def _threshold(threshold: Threshold | None) -> CompiledThreshold | None:
    if threshold is None:
        return None
    return CompiledThreshold(
        above=None if threshold.above is None else float(threshold.above),
        below=None if threshold.below is None else float(threshold.below),
    )


def _compile_adjustment(adjustment: Adjustment) -> CompiledAdjustment:
    signals = adjustment.signals
    change = adjustment.change
    if change.percent is not None:
        text = f"{'+' if change.percent >= 0 else ''}{(change.percent * 100).normalize():f}%"
    else:
        text = f"{'+' if (change.amount or 0) >= 0 else ''}{change.amount}"
    return CompiledAdjustment(
        id=adjustment.id,
        window=adjustment.when,
        velocity_ratio=_threshold(signals.velocity_ratio) if signals else None,
        days_of_supply=_threshold(signals.days_of_supply) if signals else None,
        inventory=_threshold(signals.inventory) if signals else None,
        change_ppm=None if change.percent is None else RATIO_SCALE + ratio_to_ppm(change.percent),
        change_amount=change.amount,
        change_text=text,
        description=adjustment.description or "",
        signal_checks=tuple(
            (name, threshold)
            for name, threshold in (
                ("velocity_ratio", _threshold(signals.velocity_ratio) if signals else None),
                ("days_of_supply", _threshold(signals.days_of_supply) if signals else None),
                ("inventory", _threshold(signals.inventory) if signals else None),
            )
            if threshold is not None
        ),
    )


#: Distinct (category, brand) pairs remembered by ``rules_for`` before it starts over.
_FACET_CACHE_LIMIT = 100_000

KEEP_CURRENT = CompiledStrategy("keep_current", "keep the current price")


def _compile_exploration(
    exploration: Exploration | None, version: str
) -> CompiledExploration | None:
    if exploration is None:
        return None
    return CompiledExploration(
        perturbation_ppm=_ppm(exploration.perturbation),
        thompson=exploration.thompson,
        period_seconds=int(exploration.period.total_seconds()),
        seed=exploration.seed or version,
    )


def _compile_rule(
    index: int, rule: Rule | DefaultRule, base: Guardrails, version: str
) -> CompiledRule:
    chain = tuple(_compile_strategy(s) for s in (rule.strategy, *rule.fallback))
    if chain[-1].kind != "keep_current":
        # The last fallback always keeps the current price: a missing input never zeroes it.
        chain = (*chain, KEEP_CURRENT)
    scope = rule.match if isinstance(rule, Rule) else None
    band = scope.price_band if scope else None
    adjustments = tuple(_compile_adjustment(a) for a in rule.adjustments)
    return CompiledRule(
        index=index,
        id=rule.id,
        is_default=isinstance(rule, DefaultRule),
        skus=frozenset(scope.skus) if scope and scope.skus else None,
        categories=frozenset(scope.categories) if scope and scope.categories else None,
        brands=frozenset(scope.brands) if scope and scope.brands else None,
        tags=frozenset(scope.tags) if scope and scope.tags else None,
        band_min=band.min if band else None,
        band_max=band.max if band else None,
        segment=frozenset((scope.segment or {}).items()) if scope else frozenset(),
        window=rule.when if isinstance(rule, Rule) else None,
        chain=chain,
        adjustments=adjustments,
        guardrails=merge_guardrails(base, rule.guardrails),
        reads_demand=any(a.velocity_ratio or a.days_of_supply for a in adjustments),
        exploration=_compile_exploration(rule.exploration, version),
    )


def _epoch(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp())


class CompiledRuleset:
    """The engine's view of a :class:`Ruleset`; build once per ruleset version."""

    def __init__(self, ruleset: Ruleset) -> None:
        self.ruleset = ruleset
        self.version = ruleset.version
        self.calendar = Calendar(ruleset.timezone, ruleset.events)
        self.horizon: timedelta = ruleset.horizon
        self.loop_protection: LoopProtection = ruleset.loop_protection
        self.loop_window_seconds = int(ruleset.loop_protection.window.total_seconds())
        ordered = ruleset.ordered_rules()
        self.rules: tuple[CompiledRule, ...] = (
            *(
                _compile_rule(i, rule, ruleset.guardrails, ruleset.version)
                for i, rule in enumerate(ordered)
            ),
            _compile_rule(len(ordered), ruleset.default, ruleset.guardrails, ruleset.version),
        )
        self.ours: frozenset[str] = frozenset(
            cid for cid, competitor in ruleset.competitors.items() if competitor.ours
        )
        self.known_competitors: frozenset[str] = frozenset(ruleset.competitors)
        self._minor_cache: dict[tuple[Decimal, str], int] = {}
        self._rules_by_facet: dict[tuple[str | None, str | None], tuple[CompiledRule, ...]] = {}
        self.time_context = lru_cache(maxsize=256)(self._time_context)

    def minor(self, amount: Decimal, currency: str) -> int:
        """A rule-file amount in ``currency``'s minor units, cached: rules are reused."""
        key = (amount, currency)
        cached = self._minor_cache.get(key)
        if cached is None:
            cached = self._minor_cache[key] = to_minor(amount, currency)
        return cached

    def rules_for(self, category: str | None, brand: str | None) -> tuple[CompiledRule, ...]:
        """The rules, in order, whose category and brand conditions admit these values:
        the single path then checks only these instead of every rule."""
        key = (category, brand)
        found = self._rules_by_facet.get(key)
        if found is None:
            if len(self._rules_by_facet) >= _FACET_CACHE_LIMIT:
                self._rules_by_facet.clear()
            found = self._rules_by_facet[key] = tuple(
                rule
                for rule in self.rules
                if (rule.categories is None or category in rule.categories)
                and (rule.brands is None or brand in rule.brands)
            )
        return found

    def _time_context(self, epoch: int) -> TimeContext:
        at = datetime.fromtimestamp(epoch, tz=UTC)
        calendar, horizon = self.calendar, self.horizon

        def state(window: Window | None) -> tuple[bool, int | None]:
            if window is None:
                return True, None
            return calendar.is_active(window, at), _epoch(calendar.next_change(window, at, horizon))

        rule_states = [state(rule.window) for rule in self.rules]
        adjustment_states = [[state(a.window) for a in rule.adjustments] for rule in self.rules]
        return TimeContext(
            at=at,
            epoch=epoch,
            rule_active=tuple(active for active, _ in rule_states),
            rule_next_change=tuple(change for _, change in rule_states),
            adjustment_active=tuple(tuple(a for a, _ in states) for states in adjustment_states),
            adjustment_next_change=tuple(
                tuple(c for _, c in states) for states in adjustment_states
            ),
        )
