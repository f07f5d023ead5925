"""The simulation loop: a simulated clock, the real engine, and a market that answers.

Each policy is run on its own over the same days and the same random draws (common
random numbers). A day, for every item at once:

1. restock when the period comes round;
2. competitors set today's prices, reacting to our price of the day before;
3. (rules policy) every ``refit_every_days`` days, refit the elasticities from the sales
   history with :func:`~pricing_service.elasticity.fit.fit_elasticities`;
4. the policy sets our price (the engine policies through ``decide_batch``);
5. customers buy: a Poisson draw from the true demand curve, capped by the stock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from pricing_service.demand.signals import signal_columns
from pricing_service.elasticity.fit import ElasticityFit, fit_elasticities
from pricing_service.engine import MISSING, BatchInputs, CompiledRuleset, decide_batch
from pricing_service.engine.batch import HELD_NONE, Vocabulary
from pricing_service.engine.history import DAY_SECONDS, elasticity_basis_points
from pricing_service.rules.model import Competitor, Ruleset
from pricing_service.simulate.market import (
    Draws,
    Floats,
    Ints,
    Market,
    competitor_prices,
    draw_randomness,
    poisson_quantile,
)
from pricing_service.simulate.scenario import Scenario

RULES, ORACLE, LIST_PRICE, BEAT_LOWEST = "rules", "oracle", "list_price", "beat_lowest"
#: ElasticityEstimate accepts elasticities in this range.
_ELASTICITY_BOUND = 50.0


@dataclass
class PolicyRun:
    """What one policy did and sold, ``days x items``; money in minor units."""

    name: str
    price: Ints
    lowest_competitor: Ints
    expected_units: Floats
    units: Ints
    lost_units: Ints
    loop_holds: int = 0
    fits: list[tuple[int, ElasticityFit]] = field(default_factory=list)  # (day, fit)

    def profit(self, market: Market) -> Ints:
        return self.units * (self.price - market.cost)

    def revenue(self) -> Ints:
        return self.units * self.price


@dataclass(frozen=True)
class Simulation:
    scenario: Scenario
    market: Market
    start: datetime
    days: int
    seed: int
    runs: dict[str, PolicyRun]


@dataclass
class _Day:
    """What a policy sees when it prices day ``day``."""

    day: int
    at: datetime
    current: Ints
    competitors: npt.NDArray[np.int64]  # competitors x items
    stock: Floats  # inf when unlimited
    units_history: Ints  # days so far x items


Pricer = Callable[[_Day], Ints]


def with_competitors(ruleset: Ruleset, scenario: Scenario) -> Ruleset:
    """The ruleset knowing the scenario's competitors (the engine ignores unknown ones)."""
    known = dict(ruleset.competitors)
    for competitor in scenario.competitors:
        known.setdefault(competitor.id, Competitor(name=competitor.id))
    return ruleset.model_copy(update={"competitors": known})


def beat_lowest_ruleset(rules: Ruleset) -> Ruleset:
    """Baseline (c): beat the lowest competitor by 1%, under the rules' own guardrails."""
    return Ruleset.model_validate(
        {
            "version": "baseline-beat-lowest-1pct",
            "timezone": rules.timezone,
            "guardrails": rules.guardrails,
            "loop_protection": rules.loop_protection,
            "competitors": rules.competitors,
            "default": {
                "id": "beat-lowest",
                "description": "Beat the lowest competitor by 1%.",
                "strategy": {"competitor": {"reference": "lowest", "action": "beat", "by": "1%"}},
                "fallback": [{"list_price": True}],
            },
        }
    )


class EnginePricer:
    """Prices every item of the market with ``decide_batch`` and a compiled ruleset."""

    def __init__(self, ruleset: Ruleset, market: Market, scenario: Scenario) -> None:
        self.ruleset = CompiledRuleset(ruleset)
        self.market = market
        self.history: list[tuple[int, Ints]] = []  # (epoch, published prices)
        self.window = self.ruleset.loop_window_seconds
        self.estimate: ElasticityFit | None = None
        self.loop_holds = 0
        vocabulary = Vocabulary(self.ruleset)
        n = len(market)
        codes = [vocabulary.categories.get(name, -1) for name in market.categories]
        sku_rules = [
            self.ruleset.rules[index].skus or frozenset() for index in vocabulary.sku_rules
        ]
        self.columns = {
            "category": np.array(codes, np.int32)[market.category]
            if codes
            else np.full(n, -1, np.int32),
            "sku_in_rule": np.array(
                [[sku in skus for skus in sku_rules] for sku in market.skus], bool
            ).reshape(n, len(sku_rules)),
            "offer_competitor": np.array(
                [vocabulary.competitors[c.id] for c in scenario.competitors], np.int16
            ),
        }

    def set_estimate(self, fit: ElasticityFit) -> None:
        self.estimate = fit

    def __call__(self, day: _Day) -> Ints:
        epoch = int(day.at.timestamp())
        if not self.history:
            # The opening price was set the day before the simulation starts.
            self.history.append((epoch - DAY_SECONDS, day.current))
        decisions = decide_batch(self.ruleset, self._inputs(day, epoch), day.at)
        self.loop_holds += int(np.count_nonzero(decisions.held != HELD_NONE))
        price = np.where(decisions.price == MISSING, day.current, decisions.price)
        self.history.append((epoch, price))
        return price

    def _inputs(self, day: _Day, epoch: int) -> BatchInputs:
        market, n = self.market, len(self.market)
        k = max(1, len(day.competitors))
        missing = np.full(n, MISSING, np.int64)
        last_direction, run_length, flips, day_ago, last_changed = self._moves(epoch)
        offers = day.competitors.T if len(day.competitors) else np.full((n, 1), MISSING)
        codes = self.columns["offer_competitor"]
        # As the service computes them, so that signal rules fire here as they would live.
        velocity_ratio, supply = signal_columns(day.units_history, day.stock)
        return BatchInputs(
            currency=market.currency,
            skus=market.skus,
            cost=market.cost,
            list_price=market.list_price,
            map_price=missing,
            min_price=missing,
            max_price=missing,
            current=day.current,
            last_changed=last_changed,
            inventory=np.where(np.isfinite(day.stock), day.stock, np.nan),
            category=self.columns["category"],
            brand=np.full(n, -1, np.int32),
            tags=np.zeros(n, np.uint64),
            sku_in_rule=self.columns["sku_in_rule"],
            last_direction=last_direction,
            run_length=run_length,
            flips=flips,
            price_day_ago=day_ago,
            offer_price=offers,
            offer_shipping=np.full((n, k), MISSING, np.int64),
            offer_in_stock=np.ones((n, k), bool),
            offer_observed=np.full((n, k), epoch, np.int64),
            offer_competitor=np.broadcast_to(codes, (n, k)).copy()
            if len(codes)
            else np.full((n, 1), -1, np.int16),
            velocity_ratio=velocity_ratio,
            days_of_supply=supply,
            **self._elasticity_columns(n),
        )

    def _elasticity_columns(self, n: int) -> dict[str, Any]:
        fit = self.estimate
        if fit is None:
            return {
                "elasticity_bp": np.full(n, MISSING, np.int64),
                "elasticity_se": np.full(n, np.nan),
                "elasticity_n": np.zeros(n, np.int64),
            }
        usable = np.isfinite(fit.elasticity) & np.isfinite(fit.standard_error)
        bounded = np.clip(
            np.where(usable, fit.elasticity, 0.0), -_ELASTICITY_BOUND, _ELASTICITY_BOUND
        )
        return {
            "elasticity_bp": np.array(
                [
                    elasticity_basis_points(e) if ok else MISSING
                    for e, ok in zip(bounded.tolist(), usable.tolist(), strict=True)
                ],
                np.int64,
            ),
            "elasticity_se": np.where(usable, fit.standard_error, np.nan),
            "elasticity_n": fit.observations.astype(np.int64),
        }

    def _moves(
        self, epoch: int
    ) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.int32], npt.NDArray[np.int32], Ints, Ints]:
        """Loop-protection columns from the published prices, as the engine's
        ``move_history`` derives them from an item's recent changes."""
        history = self.history
        n = len(self.market)
        last = np.zeros(n, np.int8)
        run = np.zeros(n, np.int32)
        flips = np.zeros(n, np.int32)
        window_start = epoch - self.window
        for index in range(1, len(history)):
            moment, price = history[index]
            if moment < window_start:
                continue
            direction = np.sign(price - history[index - 1][1]).astype(np.int8)
            moving = direction != 0
            flips += moving & (last != 0) & (direction != last)
            run = np.where(moving, np.where(direction == last, run + 1, 1), run).astype(np.int32)
            last = np.where(moving, direction, last)
        day_ago = history[0][1]
        last_changed = np.full(n, history[0][0], np.int64)
        for index in range(1, len(history)):
            moment, price = history[index]
            if moment <= epoch - DAY_SECONDS:
                day_ago = price
            changed = price != history[index - 1][1]
            last_changed = np.where(changed, moment, last_changed)
        return last, run, flips.astype(np.int32), day_ago, last_changed


def fit_history(run: PolicyRun, market: Market, start: datetime, days: int) -> ElasticityFit:
    """Elasticities fitted from the first ``days`` days of a run's sales. Stock-out days
    are left out: they show the stock, not the demand."""
    n = len(market)
    sold = run.lost_units[:days] == 0
    item = np.broadcast_to(np.arange(n), (days, n))[sold]
    weekday = (start.weekday() + np.arange(days)) % 7
    return fit_elasticities(
        item=item.astype(np.int64),
        price=(run.price[:days][sold] / market.scale).astype(np.float64),
        units=run.units[:days][sold].astype(np.float64),
        day_of_week=np.broadcast_to(weekday[:, None], (days, n))[sold].astype(np.int64),
        item_category=market.category,
        n_items=n,
        units_are_counts=True,
    )


def run_policy(
    name: str,
    pricer: Pricer,
    scenario: Scenario,
    market: Market,
    draws: Draws,
    start: datetime,
    days: int,
    refit: EnginePricer | None = None,
) -> PolicyRun:
    """One policy over ``days`` days; ``refit`` receives the periodic elasticity fits."""
    n = len(market)
    run = PolicyRun(
        name=name,
        price=np.zeros((days, n), np.int64),
        lowest_competitor=np.zeros((days, n), np.int64),
        expected_units=np.zeros((days, n)),
        units=np.zeros((days, n), np.int64),
        lost_units=np.zeros((days, n), np.int64),
    )
    inventory = scenario.inventory
    stock = (
        np.full(n, np.inf)
        if inventory is None
        else np.floor(market.base_demand * inventory.initial_days)
    )
    current = market.list_price.copy()
    for day in range(days):
        if inventory is not None and day > 0 and day % inventory.restock_every_days == 0:
            stock = np.maximum(stock, np.floor(market.base_demand * inventory.restock_to_days))
        rivals = competitor_prices(scenario, market, current)
        if refit is not None and day > 0 and day % scenario.refit_every_days == 0:
            fit = fit_history(run, market, start, day)
            run.fits.append((day, fit))
            refit.set_estimate(fit)
        at = start + timedelta(days=day)
        price = pricer(_Day(day, at, current, rivals, stock, run.units[:day]))
        lowest = rivals.min(axis=0) if len(rivals) else market.list_price
        expected = market.expected_units(price, lowest, at.weekday(), draws.shock[day])
        demand = poisson_quantile(draws.uniform[day], expected)
        sold = np.minimum(demand, stock).astype(np.int64)
        stock = stock - sold
        run.price[day] = price
        run.lowest_competitor[day] = lowest
        run.expected_units[day] = expected
        run.units[day] = sold
        run.lost_units[day] = demand - sold
        current = price
    if refit is not None:
        run.fits.append((days, fit_history(run, market, start, days)))
        run.loop_holds = refit.loop_holds
    return run


def simulate(
    scenario: Scenario, rules: Ruleset, market: Market, days: int, seed: int
) -> Simulation:
    """Every policy over ``days`` simulated days from the scenario's start."""
    start = datetime(scenario.start.year, scenario.start.month, scenario.start.day, tzinfo=UTC)
    draws = draw_randomness(days, len(market), scenario.noise.demand_sigma, seed)
    rules = with_competitors(rules, scenario)
    engine = EnginePricer(rules, market, scenario)
    oracle = market.oracle_price()
    beat_lowest = EnginePricer(beat_lowest_ruleset(rules), market, scenario)

    def run(name: str, pricer: Pricer, refit: EnginePricer | None = None) -> PolicyRun:
        return run_policy(name, pricer, scenario, market, draws, start, days, refit)

    runs = {
        RULES: run(RULES, engine, refit=engine),
        ORACLE: run(ORACLE, lambda _: oracle),
        LIST_PRICE: run(LIST_PRICE, lambda _: market.list_price),
        BEAT_LOWEST: run(BEAT_LOWEST, beat_lowest),
    }
    runs[BEAT_LOWEST].loop_holds = beat_lowest.loop_holds
    return Simulation(scenario, market, start, days, seed, runs)
