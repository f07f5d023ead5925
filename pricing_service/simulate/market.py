"""The synthetic market: true demand, competitors' reactions, and the random draws.

Demand is a constant-elasticity system, log-linear in our price and in the lowest
competitor price::

    expected units = base · season[weekday] · (p / list)^e · (q / list)^κ · shock

``e`` is the item's true own-price elasticity, ``κ`` the scenario's cross-price
elasticity (how much our demand falls when the cheapest competitor cuts its price) and
``q`` the lowest competitor price (``list`` when there is no competitor, so the term is
1). The shock is log-normal with mean 1. Units sold are a Poisson draw from the expected
units, capped by the stock. Because the own-price elasticity does not depend on ``q``,
the profit-maximising price is ``c·e/(1+e)`` whatever competitors do (the oracle).

Every policy faces the same draws (common random numbers): one uniform per item-day
turned into a Poisson count by the inverse CDF, so two policies charging the same price
on the same day sell exactly the same units, and profit differences are the policies'.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pricing_service.money import minor_unit_digits, to_minor
from pricing_service.simulate.scenario import CompetitorPolicy, Scenario

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
#: Poisson counts further than this many standard deviations from the mean are ignored.
_POISSON_SPAN_SIGMAS = 12.0


@dataclass(frozen=True)
class Market:
    """The true facts of every item, as columns; money in minor units."""

    currency: str
    skus: list[str]
    categories: list[str]  # category names, indexed by ``category``
    category: Ints
    cost: Ints
    list_price: Ints
    base_demand: Floats
    elasticity: Floats
    season: Floats  # 7 multipliers, Monday first
    cross_elasticity: float

    def __len__(self) -> int:
        return len(self.skus)

    @property
    def scale(self) -> int:
        """Minor units per currency unit."""
        return int(10 ** minor_unit_digits(self.currency))

    def expected_units(
        self, price: Ints, lowest_competitor: Ints, weekday: int, shock: Floats
    ) -> Floats:
        listed = self.list_price.astype(np.float64)
        own = (price / listed) ** self.elasticity
        cross = (lowest_competitor / listed) ** self.cross_elasticity
        expected = self.base_demand * self.season[weekday] * own * cross * shock
        return np.asarray(expected, np.float64)

    def oracle_price(self) -> Ints:
        """The profit-maximising price p* = c·e/(1+e), to the minor unit."""
        optimum = self.cost * self.elasticity / (1.0 + self.elasticity)
        return np.rint(optimum).astype(np.int64)


def build_market(scenario: Scenario, seed: int) -> Market:
    """The scenario's listed items, then its generated ones (drawn from ``seed``)."""
    currency = scenario.currency
    categories: dict[str, int] = {}
    skus: list[str] = []
    category: list[int] = []
    cost: list[int] = []
    list_price: list[int] = []
    base: list[float] = []
    elasticity: list[float] = []
    for item in scenario.items:
        skus.append(item.sku)
        category.append(categories.setdefault(item.category, len(categories)))
        cost.append(to_minor(item.cost, currency))
        list_price.append(to_minor(item.list_price, currency))
        base.append(item.base_demand)
        elasticity.append(item.elasticity)
    columns = [
        np.array(category, np.int64),
        np.array(cost, np.int64),
        np.array(list_price, np.int64),
        np.array(base, np.float64),
        np.array(elasticity, np.float64),
    ]
    spec = scenario.generate
    if spec is not None:
        rng = np.random.default_rng([seed, 1])
        scale = 10 ** minor_unit_digits(currency)
        codes = np.array([categories.setdefault(c, len(categories)) for c in spec.categories])
        means = rng.uniform(spec.elasticity.min, spec.elasticity.max, len(codes))
        drawn = rng.integers(0, len(codes), spec.count)
        unit_cost = rng.uniform(spec.cost.min, spec.cost.max, spec.count)
        generated_cost = np.maximum(1, np.rint(unit_cost * scale)).astype(np.int64)
        markup = rng.uniform(spec.markup.min, spec.markup.max, spec.count)
        low, high = math.log(spec.base_demand.min), math.log(spec.base_demand.max)
        spread = rng.normal(0.0, spec.elasticity_spread, spec.count)
        generated = [
            codes[drawn],
            generated_cost,
            np.rint(generated_cost * markup).astype(np.int64),
            np.exp(rng.uniform(low, high, spec.count)),
            np.minimum(-1.05, means[drawn] + spread),
        ]
        columns = [np.concatenate([a, b]) for a, b in zip(columns, generated, strict=True)]
        width = len(str(spec.count))
        skus += [f"GEN-{n:0{width}d}" for n in range(spec.count)]
    season = np.ones(7)
    for day, factor in scenario.seasonality.items():
        season[day.iso_index] = factor
    return Market(
        currency=currency,
        skus=skus,
        categories=list(categories),
        category=columns[0].astype(np.int64),
        cost=columns[1].astype(np.int64),
        list_price=columns[2].astype(np.int64),
        base_demand=columns[3].astype(np.float64),
        elasticity=columns[4].astype(np.float64),
        season=season,
        cross_elasticity=scenario.cross_elasticity,
    )


@dataclass(frozen=True)
class Draws:
    """The random numbers every policy shares, ``days x items``."""

    uniform: Floats  # turned into Poisson counts
    shock: Floats  # log-normal demand multipliers with mean 1


def draw_randomness(days: int, items: int, sigma: float, seed: int) -> Draws:
    rng = np.random.default_rng([seed, 2])
    uniform = rng.random((days, items))
    normal = rng.standard_normal((days, items))
    return Draws(uniform=uniform, shock=np.exp(sigma * normal - sigma * sigma / 2))


def poisson_quantile(uniform: Floats, mean: Floats) -> Ints:
    """The Poisson(``mean``) count whose CDF first reaches ``uniform`` (inverse CDF),
    computed from a point well below the mean so large means cost no more than small."""
    mean = np.maximum(mean, 1e-12)
    spread = _POISSON_SPAN_SIGMAS * np.sqrt(mean)
    count = np.floor(np.maximum(0.0, mean - spread))
    log_gamma = np.vectorize(math.lgamma, otypes=[np.float64])
    pmf = np.exp(-mean + count * np.log(mean) - log_gamma(count + 1.0))
    cdf = pmf.copy()
    result = np.empty(len(mean), np.int64)
    pending = np.arange(len(mean))
    while len(pending):
        done = (cdf[pending] >= uniform[pending]) | (
            count[pending] > mean[pending] + spread[pending]
        )
        result[pending[done]] = count[pending[done]]
        pending = pending[~done]
        count[pending] += 1
        pmf[pending] *= mean[pending] / count[pending]
        cdf[pending] += pmf[pending]
    return result


def competitor_prices(
    scenario: Scenario, market: Market, our_previous: Ints
) -> npt.NDArray[np.int64]:
    """Each competitor's price today (``competitors x items``), reacting to our price
    of the day before."""
    prices = np.empty((len(scenario.competitors), len(market)), np.int64)
    for row, competitor in enumerate(scenario.competitors):
        floor = market.cost * (1.0 + float(competitor.floor))
        if competitor.policy is CompetitorPolicy.static:
            price = market.list_price * (1.0 + float(competitor.offset))
        elif competitor.policy is CompetitorPolicy.undercut:
            price = np.maximum(floor, our_previous * (1.0 - float(competitor.by)))
        else:
            price = np.maximum(floor, our_previous * (1.0 + float(competitor.offset)))
        prices[row] = np.maximum(1, np.rint(price)).astype(np.int64)
    return prices
