"""The scenario file: a synthetic market the simulator prices with the real engine.

A scenario is YAML (read like the rule files: exact decimals, positions for every value)
validated by the pydantic models below; any problem is reported as
``file:line:column: error: message``. See ``examples/scenarios/README.md``.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pricing_service.rules.diagnostics import Diagnostic
from pricing_service.rules.model import Identifier, Percent, PositiveAmount, Weekday
from pricing_service.rules.yaml_source import YamlSyntaxError, parse_yaml


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Elasticity = Annotated[float, Field(lt=-1, ge=-20, allow_inf_nan=False)]


class Item(_Strict):
    """One item whose true demand the simulator knows and the engine must learn."""

    sku: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
    category: Identifier
    cost: PositiveAmount
    list_price: PositiveAmount
    base_demand: float = Field(gt=0, le=10_000, description="Units/day at the list price.")
    elasticity: Elasticity = Field(description="True constant own-price elasticity (< -1).")


class Range(_Strict):
    min: float
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class Generated(_Strict):
    """Items drawn at random (from the run's seed): each category gets a mean
    elasticity in ``elasticity``, and its items spread around it."""

    count: int = Field(ge=1, le=1_000_000)
    categories: list[Identifier] = Field(min_length=1)
    cost: Range = Field(description="Uniform, in currency units.")
    markup: Range = Field(description="List price = cost times a uniform draw from this range.")
    base_demand: Range = Field(description="Units/day at the list price, log-uniform.")
    elasticity: Range = Field(description="Category means, uniform.")
    elasticity_spread: float = Field(default=0.2, ge=0, le=2, description="Within a category.")

    @model_validator(mode="after")
    def _sensible(self) -> Self:
        if self.cost.min <= 0 or self.markup.min <= 1 or self.base_demand.min <= 0:
            raise ValueError("cost and base_demand must be positive, markup above 1")
        if self.elasticity.max >= -1:
            raise ValueError("elasticities must stay below -1 (elastic demand)")
        return self


class Noise(_Strict):
    demand_sigma: float = Field(
        default=0.0, ge=0, le=2, description="Daily log-normal shock on each item's demand."
    )


class Inventory(_Strict):
    """Stock in days of base demand; restocked to ``restock_to_days`` every period."""

    initial_days: float = Field(gt=0)
    restock_every_days: int = Field(ge=1)
    restock_to_days: float = Field(gt=0)


class CompetitorPolicy(StrEnum):
    static = "static"  # list price + offset, for ever
    undercut = "undercut"  # our previous price - by
    follow = "follow"  # our previous price + offset


class Competitor(_Strict):
    id: Identifier
    policy: CompetitorPolicy
    offset: Percent = Field(default=Decimal(0), description='static/follow: "-5%" or "+3%".')
    by: Percent = Field(default=Decimal(0), description='undercut: "2%" below our price.')
    floor: Percent = Field(
        default=Decimal(0), description="undercut/follow never go below cost plus this."
    )

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        if not -0.9 <= self.offset <= 5 or not 0 <= self.by < 1 or self.floor < -0.9:
            raise ValueError("offset must lie in -90%..+500%, by in 0..100%, floor above -90%")
        return self


class Scenario(_Strict):
    name: Identifier
    description: str = ""
    start: date = Field(description="First simulated day; the clock runs in UTC days.")
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    rules: str = Field(description="Rule files (folder or file), relative to the scenario.")
    refit_every_days: int = Field(
        default=1, ge=1, description="Elasticity refit period (1: nightly, as the repricer)."
    )
    seasonality: dict[Weekday, float] = Field(
        default_factory=dict, description="Demand multiplier per weekday (default 1)."
    )
    noise: Noise = Field(default_factory=Noise)
    cross_elasticity: float = Field(
        default=0.0,
        ge=0,
        le=10,
        description="% change of our demand per % change of the lowest competitor price.",
    )
    inventory: Inventory | None = Field(default=None, description="None: unlimited stock.")
    competitors: list[Competitor] = Field(default_factory=list)
    items: list[Item] = Field(default_factory=list)
    generate: Generated | None = None
    chart_skus: list[str] = Field(
        default_factory=list, description="Items to chart (default: the first three)."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not self.items and self.generate is None:
            raise ValueError("a scenario needs `items`, `generate`, or both")
        if any(factor < 0 for factor in self.seasonality.values()):
            raise ValueError("seasonality multipliers must not be negative")
        skus = [item.sku for item in self.items]
        if len(set(skus)) != len(skus):
            raise ValueError("item SKUs must be unique")
        ids = [competitor.id for competitor in self.competitors]
        if len(set(ids)) != len(ids):
            raise ValueError("competitor ids must be unique")
        return self


class ScenarioError(Exception):
    """A scenario file that cannot be used; ``diagnostics`` says everything wrong."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        super().__init__("\n".join(map(str, diagnostics)))


def load_scenario(path: Path) -> Scenario:
    """The scenario in ``path``, or :class:`ScenarioError` with positioned diagnostics."""
    name = str(path)
    try:
        parsed = parse_yaml(path.read_text(encoding="utf-8-sig"))
    except OSError as error:
        raise ScenarioError([Diagnostic(name, 1, 1, "error", str(error))]) from None
    except YamlSyntaxError as error:
        where = error.position
        raise ScenarioError(
            [Diagnostic(name, where.line, where.column, "error", error.message)]
        ) from None
    problems = [
        Diagnostic(name, p.position.line, p.position.column, "error", p.message)
        for p in parsed.problems
    ]
    if problems:
        raise ScenarioError(problems)
    try:
        return Scenario.model_validate({} if parsed.value is None else parsed.value)
    except ValidationError as error:
        diagnostics = []
        for details in error.errors(include_url=False):
            loc = tuple(details["loc"])
            if details["type"] == "missing":
                position = parsed.source.nearest(loc[:-1])[1]
                message = f"missing required field '{loc[-1]}'"
            elif details["type"] == "extra_forbidden":
                position = parsed.source.key_or_value(loc)
                message = f"unknown field '{loc[-1]}'"
            else:
                position = parsed.source.nearest(loc)[1]
                context = details.get("ctx", {})
                message = str(context["error"]) if "error" in context else details["msg"]
            diagnostics.append(Diagnostic(name, position.line, position.column, "error", message))
        raise ScenarioError(sorted(diagnostics)) from None


def rules_path(scenario_file: Path, scenario: Scenario) -> Path:
    """The scenario's rule files, relative to the scenario file."""
    return (scenario_file.parent / scenario.rules).resolve()
