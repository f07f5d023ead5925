"""The rule-file format: what the pricing team writes in ``rules/*.yaml``.

Every file in ``rules/`` shares one shape (:class:`RuleFile`); a ruleset is all of them
merged (:class:`Ruleset`). The format is declarative on purpose: no expressions, no code.
Amounts are decimal strings or YAML numbers read as ``Decimal`` (never binary floats),
percentages are strings such as ``"5%"`` and durations strings such as ``"6h"`` or ``"1d12h"``.
"""

from __future__ import annotations

import re
from datetime import date, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

#: No amount in a rule file may exceed this: keeps integer arithmetic far from overflow.
MAX_AMOUNT = Decimal(1_000_000_000)
_ID_PATTERN = r"^[a-z0-9][a-z0-9_\-]*$"
_PERCENT = re.compile(r"^([+-]?)(\d+(?:\.\d+)?)\s*%$")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_HOURS = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")


class _Strict(BaseModel):
    """Base of every rule-file object: unknown or misspelled fields are errors."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, use_attribute_docstrings=True
    )


def _also_written_as_text(
    handler: GetJsonSchemaHandler, core_schema: CoreSchema, text: JsonSchemaValue
) -> JsonSchemaValue:
    """Document a model that rule files usually write as one string (``"5%"``)."""
    reference = handler(core_schema)
    definition = handler.resolve_ref_schema(reference)
    as_object = dict(definition)
    described: dict[str, Any] = {
        key: as_object.pop(key) for key in ("title", "description") if key in as_object
    }
    definition.clear()
    definition.update({**described, "anyOf": [text, as_object]})
    return reference


Identifier = Annotated[str, Field(pattern=_ID_PATTERN, min_length=1, max_length=64)]


def _parse_decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    if isinstance(value, Decimal | int):
        parsed = Decimal(value)
    elif isinstance(value, str):
        try:
            parsed = Decimal(value.strip())
        except ArithmeticError:
            raise ValueError(f"expected a decimal amount such as 19.99, got {value!r}") from None
    elif isinstance(value, float):
        # Only Python callers can pass floats; the YAML loader yields Decimal.
        parsed = Decimal(repr(value))
    else:
        raise ValueError(f"expected a decimal amount, got {type(value).__name__}")
    # Checked for every input type: comparing a NaN Decimal raises instead of failing.
    if not parsed.is_finite():
        raise ValueError(f"expected a finite amount, got {str(value)!r}")
    if abs(parsed) > MAX_AMOUNT:
        raise ValueError(f"{parsed} is larger than the largest amount allowed ({MAX_AMOUNT})")
    return parsed


def _non_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError("must not be negative")
    return value


def _positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError("must be greater than zero")
    return value


def _written(value: Any) -> str:
    """A value as the rule file had it: 0.08, not Decimal('0.08')."""
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, str) else str(value)


def _parse_percent(value: Any) -> Decimal:
    """``"5%"`` -> ``Decimal("0.05")``; signed forms ``"+5%"`` and ``"-10%"`` too."""
    if not isinstance(value, str):
        raise ValueError(f'write a percentage as a string such as "5%", got {_written(value)}')
    match = _PERCENT.match(value.strip())
    if match is None:
        raise ValueError(f'expected a percentage such as "5%" or "-2.5%", got {value!r}')
    sign, digits = match.groups()
    ratio = Decimal(digits) / 100
    if ratio > 10:
        raise ValueError(f"{value!r} is more than 1000%")
    if (ratio * 1_000_000) != (ratio * 1_000_000).to_integral_value():
        raise ValueError(f"{value!r} is more precise than 0.0001%")
    return -ratio if sign == "-" else ratio


def _parse_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError(
            f'write a duration as a string such as "6h", "30m" or "1d", got {_written(value)}'
        )
    match = _DURATION.match(value.strip())
    if match is None or not any(match.groups()):
        raise ValueError(f'expected a duration such as "6h", "30m", "1d12h", got {value!r}')
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def format_duration(value: timedelta) -> str:
    """A duration the way rule files and listings write it: "6h", "1d12h", "90s"."""
    total = int(value.total_seconds())
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = zip((days, hours, minutes, seconds), "dhms", strict=True)
    return "".join(f"{amount}{unit}" for amount, unit in parts if amount) or "0s"


Amount = Annotated[Decimal, BeforeValidator(_parse_decimal), AfterValidator(_non_negative)]
PositiveAmount = Annotated[Decimal, BeforeValidator(_parse_decimal), AfterValidator(_positive)]
SignedAmount = Annotated[Decimal, BeforeValidator(_parse_decimal)]
Percent = Annotated[Decimal, BeforeValidator(_parse_percent)]
Duration = Annotated[
    timedelta,
    BeforeValidator(_parse_duration),
    # Rule files say "6h" or "1d12h", not ISO 8601 ("PT6H") as pydantic would document.
    WithJsonSchema({"type": "string", "pattern": _DURATION.pattern, "examples": ["6h", "1d12h"]}),
]


def _unsigned_percent(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError("must not be negative")
    return value


UnsignedPercent = Annotated[
    Decimal, BeforeValidator(_parse_percent), AfterValidator(_unsigned_percent)
]


class Weekday(StrEnum):
    mon = "mon"
    tue = "tue"
    wed = "wed"
    thu = "thu"
    fri = "fri"
    sat = "sat"
    sun = "sun"

    @property
    def iso_index(self) -> int:
        """0 for Monday … 6 for Sunday, as ``date.weekday()``."""
        return list(Weekday).index(self)


class HourRange(_Strict):
    """Local clock hours ``start``-``end``; ``end`` is exclusive and may wrap past midnight."""

    start: time
    end: time

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        text = {"type": "string", "pattern": _HOURS.pattern, "examples": ["09:00-17:30"]}
        return _also_written_as_text(handler, core_schema, text)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = _HOURS.match(value.strip())
            if match is None:
                raise ValueError(f'expected hours such as "09:00-17:30", got {value!r}')
            h1, m1, h2, m2 = (int(g) for g in match.groups())
            if h2 == 24 and m2 == 0:
                h2 = 0
            for hour, minute in ((h1, m1), (h2, m2)):
                if hour > 23 or minute > 59:
                    raise ValueError(f"not a clock time in {value!r}")
            return {"start": time(h1, m1), "end": time(h2, m2)}
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.start == self.end:
            raise ValueError("an hour range must not start and end at the same time")
        return self


class DateRange(_Strict):
    """Local calendar dates, both ends inclusive."""

    from_: date = Field(alias="from")
    to: date
    """The last date, included."""

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.to < self.from_:
            raise ValueError(f"date range ends ({self.to}) before it starts ({self.from_})")
        return self


class Window(_Strict):
    """When something applies, in the ruleset's timezone. All given conditions must hold;
    ``events`` holds when any listed event is on."""

    days: list[Weekday] | None = Field(default=None, min_length=1)
    """Local days of the week, such as [sat, sun]; each instant's own date counts."""
    hours: HourRange | None = None
    """Local clock hours, such as "18:00-21:00" (may run past midnight)."""
    dates: DateRange | None = None
    """Local dates, from and to, both included."""
    events: list[Identifier] | None = Field(default=None, min_length=1)
    """Any of these named events (see events:)."""

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.days is None and self.hours is None and self.dates is None and not self.events:
            raise ValueError("a window needs at least one of days, hours, dates, events")
        return self


class PriceBand(_Strict):
    """Items whose list price lies in ``[min, max]``."""

    min: Amount | None = None
    """The lowest list price included."""
    max: Amount | None = None
    """The highest list price included."""

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"price band min {self.min} is above max {self.max}")
        return self


class Scope(_Strict):
    """Which items (and which segment) a rule applies to. Every given field must match;
    inside a list, any value matches."""

    skus: list[str] | None = Field(default=None, min_length=1)
    """Only these SKUs."""
    categories: list[str] | None = Field(default=None, min_length=1)
    """Items in any of these categories (exact, case-sensitive)."""
    brands: list[str] | None = Field(default=None, min_length=1)
    """Items of any of these brands (exact, case-sensitive)."""
    tags: list[str] | None = Field(default=None, min_length=1)
    """Items with any of these tags."""
    price_band: PriceBand | None = None
    """Items whose list price is within this band."""
    segment: dict[Identifier, Identifier] | None = None
    """Lookups whose segment has all these values, such as { channel: app }."""


# -- strategies -------------------------------------------------------------------------


class Reference(StrEnum):
    """Which competitor price a competitor strategy aims at."""

    lowest = "lowest"
    median = "median"
    lowest_landed_in_stock = "lowest_landed_in_stock"
    competitor = "competitor"


class Action(StrEnum):
    match = "match"
    beat = "beat"
    stay_above = "stay_above"


class PriceDelta(_Strict):
    """A distance from a price: a percentage (``"5%"``) or an amount (``"1.00"``)."""

    percent: Percent | None = None
    amount: SignedAmount | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_scalar(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().endswith("%"):
            return {"percent": value}
        if isinstance(value, str | int | Decimal | float) and not isinstance(value, bool):
            return {"amount": value}
        return value

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        text = {"type": ["string", "number"], "examples": ["5%", "-2.5%", "1.00"]}
        return _also_written_as_text(handler, core_schema, text)

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.percent is None) == (self.amount is None):
            raise ValueError("give either a percentage or an amount")
        return self


class CompetitorStrategy(_Strict):
    reference: Reference = Reference.lowest
    """Which price to follow: lowest, median, a named competitor, or lowest_landed_in_stock."""
    competitor: Identifier | None = Field(
        default=None, description="The competitor to follow when reference is `competitor`."
    )
    action: Action = Action.match
    """match the reference, beat it (go under) or stay_above it, by `by`."""
    by: PriceDelta | None = Field(default=None, description='"5%" or an amount such as 1.00')
    competitors: list[Identifier] | None = Field(
        default=None, min_length=1, description="Only these competitors count (default: all)."
    )
    max_age: Duration = Field(default=timedelta(hours=24))
    """Offers older than this do not count, such as "12h"."""
    in_stock_only: bool = True
    """Out-of-stock offers do not count."""
    include_shipping: bool = False
    """Compare prices with their shipping added."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.reference is Reference.competitor and self.competitor is None:
            raise ValueError("reference `competitor` needs `competitor: <id>`")
        if self.reference is not Reference.competitor and self.competitor is not None:
            raise ValueError("`competitor` is only used with `reference: competitor`")
        if self.action is Action.match and self.by is not None:
            raise ValueError("`match` takes no `by`; use `beat` or `stay_above`")
        if self.action is not Action.match and self.by is None:
            raise ValueError(f"`{self.action.value}` needs `by`, a percentage or an amount")
        if self.by is not None and (self.by.percent or self.by.amount or 0) < 0:
            raise ValueError("`by` must not be negative; choose `beat` or `stay_above`")
        return self


class Objective(StrEnum):
    profit = "profit"


class ElasticityStrategy(_Strict):
    objective: Objective = Objective.profit
    """What the price maximises: profit."""
    max_standard_error: Decimal = Field(
        default=Decimal("0.5"), gt=0, description="Above this uncertainty, fall back."
    )
    min_observations: int = Field(default=30, ge=1)
    """Fewer days of sales than this: the estimate is not used (falls back)."""


class Strategy(_Strict):
    """Exactly one way to set a price."""

    fixed: PositiveAmount | None = Field(default=None, description="This exact price.")
    cost_plus: UnsignedPercent | None = Field(default=None, description='Markup on cost: "35%".')
    discount: UnsignedPercent | None = Field(default=None, description='Off the list price: "10%".')
    list_price: Literal[True] | None = Field(default=None, description="The item's list price.")
    competitor: CompetitorStrategy | None = None
    """Follow competitors' offers: match, beat or stay above a reference."""
    elasticity: ElasticityStrategy | None = None
    """The profit-optimal price from the item's estimated price elasticity."""
    keep_current: Literal[True] | None = Field(default=None, description="Keep the current price.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        chosen = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(chosen) != 1:
            names = ", ".join(type(self).model_fields)
            found = ", ".join(chosen) or "none"
            raise ValueError(f"a strategy needs exactly one of: {names} (found {found})")
        if self.discount is not None and self.discount >= 1:
            raise ValueError("a discount must be below 100%")
        return self

    @property
    def kind(self) -> str:
        return next(name for name in type(self).model_fields if getattr(self, name) is not None)


# -- adjustments ------------------------------------------------------------------------


class Threshold(_Strict):
    above: SignedAmount | None = None
    """Holds when the signal is above this."""
    below: SignedAmount | None = None
    """Holds when the signal is below this."""

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.above is None and self.below is None:
            raise ValueError("a threshold needs `above` or `below`")
        if self.above is not None and self.below is not None and self.above >= self.below:
            raise ValueError(f"`above` {self.above} must be less than `below` {self.below}")
        return self


class DemandCondition(_Strict):
    """Demand and inventory signals; every given threshold must hold. A missing signal
    never matches."""

    velocity_ratio: Threshold | None = Field(
        default=None, description="Units/day over 7 days divided by the 28-day baseline."
    )
    days_of_supply: Threshold | None = Field(
        default=None, description="Inventory divided by forecast daily demand."
    )
    inventory: Threshold | None = None
    """Units on hand."""

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.velocity_ratio is None and self.days_of_supply is None and self.inventory is None:
            raise ValueError("a demand condition needs velocity_ratio, days_of_supply or inventory")
        return self


class Adjustment(_Strict):
    """A multiplier or offset applied after the strategy, when its window and signals hold."""

    id: Identifier
    """A unique id within the rule, shown in explanations."""
    description: str | None = None
    """Why the change: shown in explanations after the change applied."""
    when: Window | None = None
    """When the change applies (local days, hours, dates, events); always when left out."""
    signals: DemandCondition | None = None
    """Demand conditions that must all hold for the change to apply."""
    change: PriceDelta = Field(description='"+5%", "-10%" or a signed amount such as -2.00')

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        if self.change.percent is not None and self.change.percent <= -1:
            raise ValueError("a change must stay above -100%")
        return self


# -- guardrails -------------------------------------------------------------------------


class Direction(StrEnum):
    any = "any"
    up_only = "up_only"
    down_only = "down_only"


class RoundingMode(StrEnum):
    nearest = "nearest"
    down = "down"
    up = "up"


class Rounding(_Strict):
    """Price endings (``.99``) or an explicit list of price points. Prices are always
    rounded to the currency's minor unit."""

    ending: str | None = Field(
        default=None, pattern=r"^\.\d{1,3}$|^\d*9$", description='".99", ".95" or "9"'
    )
    price_points: list[PositiveAmount] | None = Field(default=None, min_length=1)
    """Round to the nearest of these prices instead."""
    mode: RoundingMode = RoundingMode.nearest
    """Which way to round: nearest, up or down."""

    @model_validator(mode="after")
    def _one(self) -> Self:
        if self.ending is not None and self.price_points is not None:
            raise ValueError("give `ending` or `price_points`, not both")
        return self


class Guardrails(_Strict):
    """Hard limits that run last. A rule's guardrails can only tighten the ruleset's."""

    min_price: PositiveAmount | None = None
    """Never below this price."""
    max_price: PositiveAmount | None = None
    """Never above this price."""
    min_margin: Percent | None = Field(default=None, description='Over cost: "10%".')
    enforce_map: bool | None = Field(default=None, description="Never below MAP (default on).")
    max_change: UnsignedPercent | None = Field(default=None, description="Per repricing.")
    max_change_per_day: UnsignedPercent | None = Field(default=None, description="Over 24 hours.")
    direction: Direction | None = None
    """up_only or down_only: the price may move only that way from the current one."""
    cooldown: Duration | None = None
    """After a change, no other change for this long, such as "6h"."""
    rounding: Rounding | None = None
    """Price endings (.99) or price points; within the other limits."""

    @field_validator("max_price")
    @classmethod
    def _not_below_min_price(cls, high: Decimal | None, info: ValidationInfo) -> Decimal | None:
        # A field check, so the error points at max_price, not at the mapping's first key.
        low = info.data.get("min_price")
        if low is not None and high is not None and low > high:
            raise ValueError(f"impossible guardrails: min_price {low} > max_price {high}")
        return high

    @model_validator(mode="after")
    def _possible(self) -> Self:
        if self.min_margin is not None and self.min_margin <= -1:
            raise ValueError("min_margin must be above -100%")
        return self


class LoopProtection(_Strict):
    """Hold a price that keeps escalating one way or flipping back and forth."""

    enabled: bool = True
    """Turn loop protection off with false."""
    max_same_direction: int = Field(default=4, ge=2, description="Changes the same way in a row.")
    max_flips: int = Field(default=4, ge=2, description="Direction reversals in the window.")
    window: Duration = Field(default=timedelta(hours=24))
    """The period the changes are counted over, such as "24h"."""


# -- exploration ------------------------------------------------------------------------


class Exploration(_Strict):
    """Keeps prices varying so demand can go on being learnt: a price held constant
    teaches nothing. Off unless a rule asks for it. Every draw is a hash of the seed, the
    rule, the SKU and the period, so a replay gives the same price, and the draw is
    shown in the decision's explanation. Guardrails still run after it."""

    perturbation: UnsignedPercent | None = Field(
        default=None,
        description='Move the price by a uniform draw within ±this, e.g. "5%" (at most 50%).',
    )
    thompson: bool = Field(
        default=False,
        description="Elasticity strategy: price from a draw of the estimate's posterior "
        "N(e, se²), bounded to ±3 standard errors, instead of the estimate itself.",
    )
    period: Duration = Field(
        default=timedelta(days=1),
        description="The draw changes once per period (periods start at the Unix epoch).",
    )
    seed: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Mixed into every draw; by default the ruleset version.",
    )

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        if self.perturbation is None and not self.thompson:
            raise ValueError("exploration needs `perturbation` or `thompson: true`")
        if self.perturbation is not None and not 0 < self.perturbation <= Decimal("0.5"):
            raise ValueError("`perturbation` must lie between 0% (excluded) and 50%")
        if self.period < timedelta(minutes=1):
            raise ValueError("`period` must be at least 1m")
        return self


def _thompson_needs_elasticity(exploration: Exploration | None, strategies: list[Strategy]) -> None:
    thompson = exploration is not None and exploration.thompson
    if thompson and not any(strategy.elasticity is not None for strategy in strategies):
        raise ValueError("`thompson` exploration needs an elasticity strategy or fallback")


# -- rules, events, competitors -----------------------------------------------------------


class Rule(_Strict):
    id: Identifier
    """A unique id (lowercase letters, digits, - and _), shown in every price's audit trail."""
    description: str = Field(min_length=1)
    """What the rule is for, in words: shown in explanations."""
    owner: str = Field(min_length=1)
    """Who to ask about the rule, such as an e-mail address."""
    priority: int = Field(description="Higher priorities are tried first; the first match wins.")
    match: Scope = Field(default_factory=Scope)
    """Which items (and segment) the rule applies to; all the given conditions must hold."""
    when: Window | None = None
    """When the rule applies (local days, hours, dates, events); always when left out."""
    strategy: Strategy
    """How the rule sets the price: exactly one strategy."""
    fallback: list[Strategy] = Field(default_factory=list)
    """Strategies to try in order when the strategy's inputs are missing or stale."""
    adjustments: list[Adjustment] = Field(default_factory=list)
    """Changes on top of the strategy's price, each with an optional window and signals."""
    guardrails: Guardrails | None = None
    """Stricter limits for this rule only (the ruleset's still apply)."""
    exploration: Exploration | None = None
    """Optional price moves to learn demand; off by default."""

    @model_validator(mode="after")
    def _exploration_fits(self) -> Self:
        _thompson_needs_elasticity(self.exploration, [self.strategy, *self.fallback])
        return self


class DefaultRule(_Strict):
    """Applies when no rule matches."""

    id: Identifier = "default"
    description: str = "Default pricing"
    owner: str = "pricing-team"
    strategy: Strategy
    """How the default rule sets the price: exactly one strategy."""
    fallback: list[Strategy] = Field(default_factory=list)
    """Strategies to try in order when the strategy's inputs are missing or stale."""
    adjustments: list[Adjustment] = Field(default_factory=list)
    """Changes on top of the strategy's price, each with an optional window and signals."""
    guardrails: Guardrails | None = None
    """Stricter limits for this rule only (the ruleset's still apply)."""
    exploration: Exploration | None = None
    """Optional price moves to learn demand; off by default."""

    @model_validator(mode="after")
    def _exploration_fits(self) -> Self:
        _thompson_needs_elasticity(self.exploration, [self.strategy, *self.fallback])
        return self


class HolidayAnchor(_Strict):
    """A public holiday from the ``holidays`` library, e.g. US ``Thanksgiving``."""

    country: str = Field(pattern=r"^[A-Z]{2}$")
    """Two-letter country code, such as US."""
    subdivision: str | None = None
    """A state or region code, such as CA, where holidays differ by region."""
    name: str = Field(min_length=1, description="Substring of the holiday's English name.")


class NthWeekday(_Strict):
    """The n-th weekday of a month, e.g. the 4th Thursday of November; -1 is the last."""

    month: int = Field(ge=1, le=12)
    """1 to 12."""
    weekday: Weekday
    """mon to sun."""
    n: int = Field(ge=-5, le=5)
    """1 for the first, -1 for the last."""

    @model_validator(mode="after")
    def _nonzero(self) -> Self:
        if self.n == 0:
            raise ValueError("n counts from 1 (first) or -1 (last), not 0")
        return self


class Event(_Strict):
    """A named sales event. Exactly one anchor says which day it starts each year:
    ``holiday``, ``nth_weekday``, ``month_day`` ("12-24"), or explicit ``dates``."""

    name: str = Field(min_length=1)
    """The event's name, for people."""
    holiday: HolidayAnchor | None = None
    """On a public holiday of a country (the holidays library)."""
    nth_weekday: NthWeekday | None = None
    """On the nth weekday of a month, such as the 4th Thursday of November."""
    month_day: str | None = Field(default=None, pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")
    """On the same date every year, such as "12-24"."""
    dates: list[DateRange] | None = Field(default=None, min_length=1)
    """On these dates (from, to), for one-off events."""
    offset_days: int = Field(default=0, ge=-60, le=60, description="Days after the anchor.")
    duration_days: int = Field(default=1, ge=1, le=60)
    """How many local days the event lasts."""
    starts_at: time = Field(default=time(0, 0), description="Local start time on the first day.")

    @model_validator(mode="after")
    def _one_anchor(self) -> Self:
        anchors = [self.holiday, self.nth_weekday, self.month_day, self.dates]
        if sum(a is not None for a in anchors) != 1:
            raise ValueError("an event needs exactly one of holiday, nth_weekday, month_day, dates")
        return self


_DOMAIN_PATTERN = (
    r"^(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?$"
)
_HEADER_NAME_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_`|~\-]+$"
#: Where a field of a competitor's page lives (the extraction library's ``FieldSelector``).
SelectorText = Annotated[str, Field(min_length=1, max_length=1000)]


class PageField(_Strict):
    """One field: exactly one of ``css``, ``xpath`` or ``json_path``; ``attribute`` reads
    an attribute (such as ``content``) instead of the element's text."""

    css: SelectorText | None = None
    """A CSS selector for the element."""
    xpath: SelectorText | None = None
    """An XPath expression for the element."""
    json_path: SelectorText | None = None
    """A path into the page's JSON (JSON-LD or a JSON response), such as offers.price."""
    attribute: str | None = Field(default=None, min_length=1, max_length=100)
    """Read this attribute of the element instead of its text."""

    @model_validator(mode="after")
    def _compiles(self) -> Self:
        # Imported here: only rule files with selectors pay for the HTML parsers.
        from crawlers.extraction import FieldSelector, InvalidOverrideError

        try:
            FieldSelector(self.css, self.xpath, self.json_path, self.attribute)
        except InvalidOverrideError as exc:
            raise ValueError(str(exc)) from None
        return self


class PageFields(_Strict):
    """Selectors for one domain's product pages; a field left out, or one whose selector
    finds nothing, comes from the generic extraction chain."""

    price: PageField | None = None
    """Where the price is."""
    currency: PageField | None = None
    """Where the currency is."""
    availability: PageField | None = None
    """Where the availability is."""
    sku: PageField | None = None
    """Where the SKU is."""

    @model_validator(mode="after")
    def _something(self) -> Self:
        if (self.price, self.currency, self.availability, self.sku) == (None, None, None, None):
            raise ValueError("an extraction override needs price, currency, availability or sku")
        return self


class Competitor(_Strict):
    """A store whose prices we watch, and how politely its sites are crawled."""

    name: str = Field(min_length=1)
    """The competitor's name, for people."""
    ours: bool = Field(default=False, description="Our own store or a sister store: never counted.")
    domains: list[Annotated[str, Field(pattern=_DOMAIN_PATTERN)]] = Field(
        default_factory=list,
        description="Hosts that may be fetched, subdomains included; redirects elsewhere stop.",
    )
    requests_per_second: Decimal = Field(
        default=Decimal(1), gt=0, le=1000, description="Per domain, across every crawler worker."
    )
    concurrency: int = Field(default=2, ge=1, le=256, description="Requests in flight per domain.")
    crawl_delay: Duration | None = Field(
        default=None, description="Replaces the robots.txt Crawl-delay (which is used otherwise)."
    )
    user_agent: str | None = Field(
        default=None, min_length=1, max_length=500, description="Default: the crawler's own."
    )
    headers: dict[Annotated[str, Field(pattern=_HEADER_NAME_PATTERN)], str] = Field(
        default_factory=dict, description="Sent with every request to this competitor."
    )
    proxy: str | None = Field(
        default=None,
        pattern=r"^(?:https?|socks5h?)://\S+$",
        description="http://, https:// or socks5:// proxy URL for this competitor's requests.",
    )
    extraction: dict[Annotated[str, Field(pattern=_DOMAIN_PATTERN)], PageFields] = Field(
        default_factory=dict, description="Per-domain selectors that win over generic extraction."
    )

    @model_validator(mode="after")
    def _known_domains(self) -> Self:
        unknown = [domain for domain in self.extraction if domain not in self.domains]
        if unknown:
            raise ValueError(
                f"extraction for {', '.join(unknown)}: not among this competitor's domains"
            )
        if {name.lower() for name in self.headers} & {"host", "content-length"}:
            raise ValueError("headers must not set Host or Content-Length")
        return self


def _valid_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA timezone {value!r}") from None
    return value


TimezoneName = Annotated[str, AfterValidator(_valid_timezone)]

#: Words in a segment dimension's name that say it tells people apart, not groups.
_PERSONAL = re.compile(
    r"(^|_)(user|users|customer|customers|person|people|email|account|visitor|session|"
    r"cookie|device|shopper|buyer|login|phone|client|profile|ip)(_|$)"
)
#: Values a dimension may list: regions and tiers fit; a list of people does not.
MAX_SEGMENT_VALUES = 256


def _not_a_person(dimension: str) -> str:
    """Prices may differ by segment (channel, region, tier), never by individual person."""
    if _PERSONAL.search(dimension):
        raise ValueError(
            f"segment dimension {dimension!r} tells individual people apart: prices "
            "may differ by group (channel, region, membership tier), never by person"
        )
    return dimension


def _groups_not_people(values: list[str]) -> list[str]:
    if len(values) > MAX_SEGMENT_VALUES:
        raise ValueError(
            f"the segment dimension has {len(values)} values, more than "
            f"{MAX_SEGMENT_VALUES}: a segment is a group of customers, not a list of them"
        )
    return values


#: A segment dimension and its values (each checked where it is written, so an error
#: points at the dimension or the list at fault).
SegmentDimensions = dict[
    Annotated[Identifier, AfterValidator(_not_a_person)],
    Annotated[list[Identifier], AfterValidator(_groups_not_people)],
]


class RuleFile(_Strict):
    """One YAML file in ``rules/``. Any file may hold any of these sections; the ruleset
    merges them (lists concatenate, maps must not repeat a key, a single value may be
    given by one file only)."""

    schema_: str | None = Field(default=None, alias="$schema")
    timezone: TimezoneName | None = None
    """The IANA timezone every window is in, such as America/New_York (one file sets it)."""
    segments: SegmentDimensions | None = None
    """Segment dimensions and their values, such as channel: [web, app]; groups, never people."""
    guardrails: Guardrails | None = None
    """Limits on every price, run last; a rule's own guardrails can only tighten them."""
    loop_protection: LoopProtection | None = None
    """Holds a price chasing a competitor up or down, or flipping back and forth."""
    horizon: Duration | None = None
    """How far ahead prices are scheduled, such as "7d"."""
    default: DefaultRule | None = None
    """The rule for items no other rule matches."""
    rules: list[Rule] | None = None
    """The rules, tried from the highest priority down; the first that matches sets the price."""
    events: dict[Identifier, Event] | None = None
    """Named sales events (Black Friday, Prime Day...) that rules' windows can name."""
    competitors: dict[Identifier, Competitor] | None = None
    """The competitors offers come from, and our own or sister stores (never counted)."""


class Ruleset(_Strict):
    """All rule files merged: what the engine runs."""

    version: str
    timezone: TimezoneName
    segments: dict[str, list[str]] = Field(default_factory=dict)
    guardrails: Guardrails = Field(default_factory=Guardrails)
    loop_protection: LoopProtection = Field(default_factory=LoopProtection)
    horizon: timedelta = timedelta(days=7)
    default: DefaultRule
    rules: list[Rule] = Field(default_factory=list)
    events: dict[str, Event] = Field(default_factory=dict)
    competitors: dict[str, Competitor] = Field(default_factory=dict)

    def ordered_rules(self) -> list[Rule]:
        """Rules in the order they are tried: highest priority first."""
        return sorted(self.rules, key=lambda rule: -rule.priority)
