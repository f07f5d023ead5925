"""What the engine reads: item facts, competitor observations, demand, elasticity, segment.

These are plain data with no I/O. Money is ``Decimal``; statistics (velocities, elasticity)
are floats because they are estimates, not amounts.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from pricing_service.money import MAX_MINOR, MoneyError, minor_unit_digits

_SEGMENT_PART = re.compile(r"^([a-z0-9_\-]+)[:=]([a-z0-9_\-]+)$")


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamps need a timezone (e.g. 2026-11-27T09:00:00Z)")
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]
#: Prices stay far below int64 overflow in minor units, even times a ratio in ppm.
MAX_PRICE = Decimal(1_000_000_000)
Price = Annotated[Decimal, Field(ge=0, le=MAX_PRICE, allow_inf_nan=False)]
#: A price someone asks or pays: never zero, which would be published as the currency's
#: smallest unit.
PositivePrice = Annotated[Decimal, Field(gt=0, le=MAX_PRICE, allow_inf_nan=False)]


def _check_precision(model: BaseModel, currency: str, names: tuple[str, ...]) -> None:
    """Amounts must be exact in the currency's minor unit: 19.999 USD is an input error,
    not something to round silently."""
    try:
        digits = minor_unit_digits(currency)
    except MoneyError as exc:
        raise ValueError(str(exc)) from None
    for name in names:
        value = getattr(model, name)
        if value is None:
            continue
        if value != value.quantize(Decimal(1).scaleb(-digits)):
            raise ValueError(f"{name} {value} has more decimals than {currency} allows ({digits})")
        if value.scaleb(digits) > MAX_MINOR:
            raise ValueError(f"{name} {value} {currency} is larger than the engine accepts")


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PriceChange(_Input):
    """A past published price change."""

    at: AwareDatetime
    price: Price


class ItemFacts(_Input):
    """What we know about one of our items."""

    sku: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    cost: Price | None = None
    list_price: PositivePrice | None = None
    map_price: PositivePrice | None = Field(default=None, description="Minimum advertised price.")
    min_price: PositivePrice | None = None
    max_price: PositivePrice | None = None
    inventory: int | None = None
    category: str | None = None
    brand: str | None = None
    tags: frozenset[str] = frozenset()
    current_price: PositivePrice | None = None
    last_changed_at: AwareDatetime | None = None
    recent_changes: tuple[PriceChange, ...] = Field(
        default=(), description="Published changes, oldest first, for loop protection."
    )

    @model_validator(mode="after")
    def _exact_amounts(self) -> Self:
        names = ("cost", "list_price", "map_price", "min_price", "max_price", "current_price")
        _check_precision(self, self.currency, names)
        for change in self.recent_changes:
            _check_precision(change, self.currency, ("price",))
        return self


class CompetitorObservation(_Input):
    """One competitor's offer for the item, as seen at ``observed_at``."""

    competitor: str = Field(min_length=1)
    price: Price  # zero is quarantined by the market gate, never priced from
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    observed_at: AwareDatetime
    shipping: Price | None = None
    in_stock: bool = True
    source: str = "crawler"

    @model_validator(mode="after")
    def _exact_amounts(self) -> Self:
        _check_precision(self, self.currency, ("price", "shipping"))
        return self


class DemandStats(_Input):
    """Demand signals computed from sales and inventory."""

    velocity_7d: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    velocity_28d: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    days_of_supply: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    sell_through: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    as_of: AwareDatetime | None = None

    @property
    def velocity_ratio(self) -> float | None:
        """7-day velocity against its 28-day baseline; None without a baseline."""
        if self.velocity_7d is None or not self.velocity_28d:
            return None
        return self.velocity_7d / self.velocity_28d


class ElasticityEstimate(_Input):
    """A price elasticity estimate: %change in units per %change in price."""

    elasticity: float = Field(allow_inf_nan=False, ge=-50, le=50)
    standard_error: float = Field(ge=0, allow_inf_nan=False)
    observations: int = Field(ge=0)
    fitted_at: AwareDatetime | None = None


class Segment(_Input):
    """A customer segment (channel, region, membership tier); never a person.

    Written ``channel:app,tier:member``. The empty segment is the default price.
    """

    values: tuple[tuple[str, str], ...] = ()

    @model_validator(mode="after")
    def _sorted(self) -> Self:
        keys = [key for key, _ in self.values]
        if len(set(keys)) != len(keys):
            raise ValueError("a segment names each dimension once")
        if list(self.values) != sorted(self.values):
            object.__setattr__(self, "values", tuple(sorted(self.values)))
        return self

    @classmethod
    def parse(cls, text: str | None) -> Segment:
        if not text:
            return DEFAULT_SEGMENT
        pairs = []
        for part in text.split(","):
            match = _SEGMENT_PART.match(part.strip())
            if match is None:
                raise ValueError(f"segment part {part!r} is not dimension:value (e.g. channel:app)")
            pairs.append((match.group(1), match.group(2)))
        named = [dimension for dimension, _ in pairs]
        if len(set(named)) != len(named):  # said here: the model's error reads as pydantic's
            raise ValueError(f"segment {text!r} names a dimension twice")
        return cls(values=tuple(pairs))

    def as_dict(self) -> dict[str, str]:
        return dict(self.values)

    def __str__(self) -> str:
        return ",".join(f"{key}:{value}" for key, value in self.values)


DEFAULT_SEGMENT = Segment()


class PriceOverride(_Input):
    """A price set by hand until ``until``: it replaces the rules' strategies, and only
    the hard floor and ceiling still bound it unless ``force`` is set."""

    price: Annotated[Price, Field(gt=0)]
    until: AwareDatetime
    reason: str = Field(min_length=1, max_length=500)
    force: bool = False

    def active_at(self, moment: datetime) -> bool:
        return moment < self.until


class PricingInputs(_Input):
    """Everything the engine needs for one item, e.g. read from an ``ITEM.json``."""

    item: ItemFacts
    observations: tuple[CompetitorObservation, ...] = ()
    demand: DemandStats | None = None
    elasticity: ElasticityEstimate | None = None
    override: PriceOverride | None = None

    @model_validator(mode="after")
    def _exact_override(self) -> Self:
        if self.override is not None:
            _check_precision(self.override, self.item.currency, ("price",))
        return self
