"""Price elasticities of many items at once: constant-elasticity log-log regressions with
day-of-week controls, partially pooled toward each item's category (empirical Bayes).

The model, per item ``i`` in category ``c`` on day ``t`` (day of week ``d``)::

    log(units_it) = a_i + g_cd + e_i · log(price_it) + noise

``a_i`` is the item's level, ``g_cd`` the category's day-of-week effect (shared by the
category's items, so a sparse item still gets day-of-week controls) and ``e_i`` the
item's own elasticity. Everything is computed from sufficient statistics per item and
per (item, day of week) cell, gathered with ``np.bincount``: no loop over items.

1. Per item, centre log price and log units (the within transform for ``a_i``).
2. Concentrate out ``a_i`` and ``e_i``: the normal equations of ``g`` are one 7x7
   system per category, summed from per-item pieces and solved with a pseudo-inverse
   (a constant shift of ``g`` is absorbed by the intercepts).
3. With ``g`` removed, each item's least-squares slope and its standard error
   (residual variance moderated toward the category's pooled variance for items with
   few days, so that a sparse item's lucky small residuals do not make it look certain).
   The day effects are estimated too, so they count against the item: its share of
   their parameters comes off its degrees of freedom, and its price variation is taken
   net of what the day effects explain (``Sxx²/(Sxx + qᵀ·M⁺·q)`` with ``M`` its
   category's system). In a category of one or two items the effects come mostly from the item's
   own days, and without this its standard error was 10-40% too small.
4. Per category, the between-item variance ``tau²`` of the true elasticities by the
   method of moments (DerSimonian-Laird), the precision-weighted category mean, and each
   item's posterior mean ``m + B·(e_raw - m)`` with ``B = tau² / (tau² + se²)``.

**Counts of sales.** When the units are counts (``units_are_counts``, as the sales
buckets are), two things about the log of a count ``u`` with mean ``λ`` matter: it is
biased (``E[log u] ≈ log λ - 1/(2λ)``) and its variance is about ``1/λ``. The days at a
high price sell the fewest units, so both make the slope too steep: unweighted, those
few-unit days get as much say as the busy ones. For counts the fit therefore regresses
``log(u + ½)``, whose bias is of order ``1/λ²``, and weights each row by its fitted
``λ`` (iteratively reweighted least squares: an unweighted pass, then
:data:`REWEIGHTED_PASSES` passes weighted by the previous pass's fitted values; weights
from the observed counts would correlate with the noise). On the simulator's markets the
unweighted log-count slopes were 1-4% too elastic, with standard errors too small for
the items whose price moved mostly on few-unit days; these are under 1% off with
standard errors that match the errors (``bench/RESULTS.md``). Other quantities
(per-capita consumption, say) get the ordinary, unweighted log-log regression.

**Zero-unit days.** A day without sales has no price paid and no log units: it carries
no (price, quantity) observation and is left out, as are rows with a non-positive price.
For slow sellers (a few units a day) this selects the better days and biases the raw
slope toward zero; such items have few observations and lean on their category.

**Glitches and outliers.** A day sold at a mistyped price (a 1p bug that sold thousands)
sits far from the item's other prices, and one such day outweighs every other: its log
price is so far from the mean that the slope goes through it. A day whose average price
paid is outside :data:`PRICE_GLITCH_FACTOR` times (or that fraction of) the item's median
price is therefore left out, like a day without sales: a constant-elasticity curve fitted
around the everyday price says little about a price four times off, and a real clearance
at 75% off is rare enough to lose. Then, after a first fit, a day whose residual is more
than :data:`OUTLIER_SDS` robust standard deviations from it (the median absolute residual
of the item's days or its category's, whichever is larger, scaled; residuals of counts
standardised by their weights first) is
left out too, and the fit is done again: one bulk order or a stock-out day no longer
moves a slope. So many, because leaving out true days would make the standard errors too
small; a bulk order or a glitch is tens of standard deviations off.

Items with usable days but no identifiable slope of their own (fewer than
:data:`MIN_OBSERVATIONS` days, or a price that never moved) get their category's
estimate, with the spread of elasticities in the category as its uncertainty (``nan``
when fewer than two of the category's items have a slope to measure that spread). Items
with no usable day get ``nan``. A category with one estimated item has no between-item
variance to estimate: its item is not pooled.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DAYS = 7
#: Days an item needs for a slope of its own: two parameters and one residual degree.
MIN_OBSERVATIONS = 3
#: Prior degrees of freedom of the residual variance: an item with few days has its
#: variance moderated toward its category's pooled variance as if from this many days.
PRIOR_VARIANCE_DF = 4.0
#: Log-price spread (sum of squared deviations per observation) below which the price
#: is taken as constant: nothing to learn a slope from.
MIN_PRICE_SPREAD = 1e-12
#: Eigenvalues of a day-of-week system below this fraction of its mean diagonal count as
#: zero: the constant direction the intercepts absorb, and days without data.
EIGEN_TOLERANCE = 1e-9
#: Added to a count before its log: removes the first-order bias of ``log u``.
COUNT_OFFSET = 0.5
#: Weighted passes after the unweighted one, for counts (a third changed nothing measurable).
REWEIGHTED_PASSES = 2
#: A day's price more than this many times, or less than this fraction of, the item's
#: median price is taken as a glitch and left out.
PRICE_GLITCH_FACTOR = 4.0
#: A day further than this many robust standard deviations from the first fit is an
#: outlier, left out of the final one (see the module's text for why so many).
OUTLIER_SDS = 6.0
#: Rounds of screening for outliers, each fitted without the last round's outliers.
OUTLIER_ROUNDS = 2
#: The median absolute deviation of normal noise, in standard deviations.
MAD_TO_SD = 1.4826
#: Largest log fitted count used as a weight (keeps ``exp`` finite on absurd inputs).
MAX_LOG_WEIGHT = 700.0


@dataclass(frozen=True)
class ElasticityFit:
    elasticity: FloatArray  # (n_items,) pooled estimate; nan when nothing to fit
    standard_error: FloatArray  # (n_items,)
    observations: IntArray  # (n_items,) item-days used
    raw_elasticity: FloatArray  # (n_items,) the item's own slope (nan if not identifiable)
    #: (n_items,) the own slope's standard error before pooling: how well the item's own
    #: price variation identifies its elasticity (nan if not identifiable)
    raw_standard_error: FloatArray
    category_elasticity: FloatArray  # (n_items,) the pooled mean of the item's category


def fit_elasticities(
    item: IntArray,
    price: FloatArray,
    units: FloatArray,
    day_of_week: IntArray,
    item_category: IntArray,
    n_items: int,
    *,
    units_are_counts: bool = False,
) -> ElasticityFit:
    """Fit every item's elasticity from item-day rows (average price paid, units sold).
    ``units_are_counts`` fits counts as counts (see the module docstring)."""
    item, price, units = np.asarray(item), np.asarray(price), np.asarray(units)
    day_of_week, item_category = np.asarray(day_of_week), np.asarray(item_category)
    _check_shapes(item, (price, units, day_of_week), item_category, n_items)
    usable = (units > 0) & (price > 0) & np.isfinite(units) & np.isfinite(price)
    item, day_of_week = item[usable], day_of_week[usable]
    x = np.log(price[usable])
    y = np.log(units[usable] + COUNT_OFFSET) if units_are_counts else np.log(units[usable])
    typical = np.abs(x - _medians_by(item, x, n_items)[item]) <= np.log(PRICE_GLITCH_FACTOR)
    item, day_of_week, x, y = item[typical], day_of_week[typical], x[typical], y[typical]
    n_categories = int(item_category.max()) + 1 if n_items else 0

    rows = _Rows(item, day_of_week, x, y, item_category, n_items, n_categories)
    # Outliers are found with unweighted fits: weighted by its fitted count, a bulk order
    # would pull its own fit up and weigh the more for it. A second round, on the days
    # the first kept, gives back a day only the outliers' pull made look outlying.
    keep = np.ones_like(x, dtype=np.bool_)
    for _ in range(OUTLIER_ROUNDS):
        screening = _least_squares(rows.kept(keep), np.ones(int(keep.sum())))
        keep = ~_outliers(rows, screening, units_are_counts)
    fit = _fit_rows(rows.kept(keep), units_are_counts)
    moments, raw = fit.moments, fit.slope
    se_raw = _moderated_standard_errors(
        fit.variance, fit.df, fit.sxx_net, item_category, n_categories
    )
    pooled, se, category_mean = _shrink(raw, se_raw, item_category, n_categories)
    return ElasticityFit(
        elasticity=np.where(moments.rows > 0, pooled, np.nan),
        standard_error=np.where(moments.rows > 0, se, np.nan),
        observations=moments.rows.astype(np.int64),
        raw_elasticity=raw,
        raw_standard_error=se_raw,
        category_elasticity=category_mean,
    )


def _medians_by(group: IntArray, values: FloatArray, n_groups: int) -> FloatArray:
    """Each group's median of ``values`` (the lower one of an even count; 0 for a group
    without rows), for every group at once: one sort by group, then value."""
    medians = np.zeros(n_groups)
    if not group.size:
        return medians
    order = np.lexsort((values, group))
    counts = np.bincount(group, minlength=n_groups)
    starts = np.cumsum(counts) - counts
    present = counts > 0
    middle = starts[present] + (counts[present] - 1) // 2
    medians[present] = values[order][middle]
    return medians


def _fit_rows(rows: _Rows, units_are_counts: bool) -> _Pass:
    """Least squares, then for counts reweighted by the fitted counts."""
    fit = _least_squares(rows, np.ones_like(rows.x))
    for _ in range(REWEIGHTED_PASSES if units_are_counts else 0):
        fit = _least_squares(rows, _count_weights(fit.fitted(rows)))
    return fit


def _count_weights(fitted: FloatArray) -> FloatArray:
    """Each row's weight as a count: its fitted count (``fitted`` is its log)."""
    weight: FloatArray = np.exp(np.minimum(fitted, MAX_LOG_WEIGHT))
    return weight


def _outliers(rows: _Rows, fit: _Pass, units_are_counts: bool) -> npt.NDArray[np.bool_]:
    """The rows further than :data:`OUTLIER_SDS` robust standard deviations from ``fit``
    (residuals of counts times the square root of their weight, so that a busy day's and
    a quiet day's compare). The spread is the item's own or its category's, whichever is
    larger: a few weeks of one item's days can make it half what it is."""
    fitted = fit.fitted(rows)
    residual = rows.y - fitted
    if units_are_counts:
        residual = residual * np.sqrt(_count_weights(fitted))
    size = np.abs(residual)
    category = rows.item_category[rows.item]
    spread = MAD_TO_SD * np.maximum(
        _medians_by(rows.item, size, rows.n_items)[rows.item],
        _medians_by(category, size, rows.n_categories)[category],
    )
    outlying: npt.NDArray[np.bool_] = (spread > 0) & (size > OUTLIER_SDS * spread)
    return outlying


def _check_shapes(
    item: IntArray, columns: tuple[npt.NDArray[Any], ...], item_category: IntArray, n_items: int
) -> None:
    rows = item.shape
    day_of_week = columns[-1]
    if any(column.shape != rows for column in columns):
        raise ValueError("item, price, units and day_of_week need one entry per row")
    if item_category.shape != (n_items,):
        raise ValueError(f"item_category needs one entry per item ({n_items})")
    if rows[0] and (item.min() < 0 or item.max() >= n_items):
        raise ValueError(f"item indexes must be in 0..{n_items - 1}")
    if rows[0] and (day_of_week.min() < 0 or day_of_week.max() >= DAYS):
        raise ValueError("day_of_week must be in 0..6")
    if n_items and item_category.min() < 0:
        raise ValueError("item_category must be non-negative")


@dataclass(frozen=True)
class _Moments:
    """Per item: rows, their weight and weighted centred sums; per (item, day of week)
    cell: weight and weighted sums of the centred log price (``q``) and log units
    (``t``). Unweighted, every weight is 1 and ``count`` is the number of rows."""

    rows: FloatArray  # (n,)
    count: FloatArray  # (n,) the sum of the weights
    x_mean: FloatArray  # (n,) weighted means of log price and log units
    y_mean: FloatArray
    sxx: FloatArray  # (n,)
    sxy: FloatArray
    syy: FloatArray
    cell_count: FloatArray  # (n, 7)
    q: FloatArray  # (n, 7)
    t: FloatArray  # (n, 7)


def _within_moments(
    item: IntArray, day: IntArray, x: FloatArray, y: FloatArray, w: FloatArray, n: int
) -> _Moments:
    count = _sums(item, w, n)
    safe = np.where(count > 0, count, 1.0)
    x_mean, y_mean = _sums(item, w * x, n) / safe, _sums(item, w * y, n) / safe
    xc, yc = x - x_mean[item], y - y_mean[item]
    wx, wy = w * xc, w * yc
    cell = item * DAYS + day
    return _Moments(
        rows=_sums(item, None, n),
        count=count,
        x_mean=x_mean,
        y_mean=y_mean,
        sxx=_sums(item, wx * xc, n),
        sxy=_sums(item, wx * yc, n),
        syy=_sums(item, wy * yc, n),
        cell_count=_sums(cell, w, n * DAYS).reshape(n, DAYS),
        q=_sums(cell, wx, n * DAYS).reshape(n, DAYS),
        t=_sums(cell, wy, n * DAYS).reshape(n, DAYS),
    )


def _sums(index: IntArray, weights: FloatArray | None, length: int) -> FloatArray:
    """Per index value: the sum of ``weights`` (the count without weights)."""
    return np.bincount(index, weights=weights, minlength=length).astype(np.float64)


def _varies(m: _Moments) -> npt.NDArray[np.bool_]:
    return m.sxx > MIN_PRICE_SPREAD * np.maximum(m.count, 1.0)


@dataclass(frozen=True)
class _DayEffects:
    """Per category: the day-of-week effects ``g`` (n_categories, 7), the pseudo-inverse
    of their system and its rank (how many effects the data identify)."""

    effects: FloatArray
    inverse: FloatArray  # (n_categories, 7, 7)
    rank: FloatArray  # (n_categories,)


def _day_effects(m: _Moments, item_category: IntArray, n_categories: int) -> _DayEffects:
    """The day-of-week effects with every item's intercept and slope concentrated out.
    Item ``i`` adds ``diag(c) - c·cᵀ/n - q·qᵀ/Sxx`` to its category's matrix and
    ``t - q·Sxy/Sxx`` to its right-hand side."""
    varies = _varies(m)
    inv_n = np.where(m.count > 0, 1.0 / np.where(m.count > 0, m.count, 1.0), 0.0)
    inv_sxx = np.where(varies, 1.0 / np.where(varies, m.sxx, 1.0), 0.0)
    matrices = (
        m.cell_count[:, :, None] * np.eye(DAYS)
        - np.einsum("i,ij,ik->ijk", inv_n, m.cell_count, m.cell_count)
        - np.einsum("i,ij,ik->ijk", inv_sxx, m.q, m.q)
    )
    rhs = m.t - m.q * (m.sxy * inv_sxx)[:, None]
    system = _group_sums(matrices.reshape(-1, DAYS * DAYS), item_category, n_categories)
    right = _group_sums(rhs, item_category, n_categories)
    return _solve_semidefinite(system.reshape(n_categories, DAYS, DAYS), right)


def _solve_semidefinite(system: FloatArray, right: FloatArray) -> _DayEffects:
    """Minimum-norm solutions of stacked positive semi-definite systems, with their
    pseudo-inverses and ranks. The threshold is relative to each system's scale, not to
    its largest eigenvalue: a system that is zero up to rounding (one day of week only)
    must give zero effects, not rounding noise."""
    values, vectors = np.linalg.eigh(system)
    scale = np.trace(system, axis1=1, axis2=2) / DAYS
    keep = values > EIGEN_TOLERANCE * np.maximum(scale, 1.0)[:, None]
    inverse_values = np.where(keep, 1.0 / np.where(keep, values, 1.0), 0.0)
    projected = np.einsum("cjk,cj->ck", vectors, right) * inverse_values
    solution: FloatArray = np.einsum("cjk,ck->cj", vectors, projected)
    inverse: FloatArray = np.einsum("cjk,ck,clk->cjl", vectors, inverse_values, vectors)
    return _DayEffects(solution, inverse, keep.sum(axis=1).astype(np.float64))


def _group_sums(rows: FloatArray, group: IntArray, n_groups: int) -> FloatArray:
    """Sum of ``rows`` (n, k) per group: one ``bincount`` a column (``np.add.at`` is an
    order of magnitude slower)."""
    columns = [_sums(group, rows[:, j], n_groups) for j in range(rows.shape[1])]
    return np.stack(columns, axis=1) if columns else np.zeros((n_groups, 0))


def _mean_effect(m: _Moments, effects: FloatArray) -> FloatArray:
    """Each item's (weighted) mean day effect over its rows; ``effects`` (n, 7)."""
    mean: FloatArray = np.einsum("ij,ij->i", effects, m.cell_count) / np.where(
        m.count > 0, m.count, 1.0
    )
    return mean


def _slopes(
    m: _Moments, effects: FloatArray, effects_df: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Each item's (weighted) least-squares slope of log units net of its day effects on
    log price, its residual variance and degrees of freedom (nan where not identifiable);
    ``effects_df``: the item's share of the day effects' parameters."""
    sxr = m.sxy - np.einsum("ij,ij->i", effects, m.q)
    mean_effect = _mean_effect(m, effects)
    srr = (
        m.syy
        - 2.0 * np.einsum("ij,ij->i", effects, m.t)
        + np.einsum("ij,ij->i", effects * effects, m.cell_count)
        - m.count * mean_effect**2
    )
    df = m.rows - 2.0 - effects_df
    ok = _varies(m) & (m.rows >= MIN_OBSERVATIONS) & (df > 0)
    slope = np.where(ok, sxr / np.where(ok, m.sxx, 1.0), np.nan)
    rss = np.maximum(srr - np.where(ok, slope * sxr, 0.0), 0.0)
    variance = np.where(ok, rss / np.where(ok, df, 1.0), np.nan)
    return slope, variance, np.where(ok, df, 0.0)


@dataclass(frozen=True)
class _Rows:
    """The usable rows (log price ``x``, log units ``y``) and the items' categories."""

    item: IntArray
    day: IntArray
    x: FloatArray
    y: FloatArray
    item_category: IntArray
    n_items: int
    n_categories: int

    def kept(self, keep: npt.NDArray[np.bool_]) -> _Rows:
        """The rows where ``keep`` is true."""
        return replace(
            self, item=self.item[keep], day=self.day[keep], x=self.x[keep], y=self.y[keep]
        )


@dataclass(frozen=True)
class _Pass:
    """One (weighted) least-squares pass: moments, day effects and the items' slopes."""

    moments: _Moments
    effects: FloatArray  # (n_categories, 7)
    slope: FloatArray
    variance: FloatArray
    df: FloatArray
    #: Each item's price variation net of the day effects: what its slope's variance
    #: divides by.
    sxx_net: FloatArray

    def fitted(self, rows: _Rows) -> FloatArray:
        """Each row's fitted log units: the item's level, its category's day effect and
        its own slope (none where it has no slope)."""
        m, item = self.moments, rows.item
        item_effects = self.effects[rows.item_category]
        mean_effect = _mean_effect(m, item_effects)
        own_slope = np.where(np.isnan(self.slope), 0.0, self.slope)
        fitted: FloatArray = (
            m.y_mean[item]
            + own_slope[item] * (rows.x - m.x_mean[item])
            + item_effects[item, rows.day]
            - mean_effect[item]
        )
        return fitted


def _least_squares(rows: _Rows, weight: FloatArray) -> _Pass:
    moments = _within_moments(rows.item, rows.day, rows.x, rows.y, weight, rows.n_items)
    days = _day_effects(moments, rows.item_category, rows.n_categories)
    category = rows.item_category
    # The item's share of its category's rows, of the day effects the category estimates.
    category_rows = _sums(category, moments.rows, rows.n_categories)[category]
    share = moments.rows / np.where(category_rows > 0, category_rows, 1.0)
    slope, variance, df = _slopes(moments, days.effects[category], share * days.rank[category])
    # The slope's variance is sigma² over the (i, i) element of the normal equations'
    # inverse: with M the category's system (every slope concentrated out) and b =
    # qᵀ·M⁺·q, that element is 1 / (Sxx²/(Sxx + b)) (Sherman-Morrison on M + q·qᵀ/Sxx,
    # the system with only the other items' slopes concentrated out).
    b = np.einsum("ij,ijk,ik->i", moments.q, days.inverse[category], moments.q)
    sxx = moments.sxx
    sxx_net = np.where(sxx > 0, sxx * sxx / np.where(sxx > 0, sxx + np.maximum(b, 0.0), 1.0), 0.0)
    return _Pass(moments, days.effects, slope, variance, df, sxx_net)


def _moderated_standard_errors(
    variance: FloatArray, df: FloatArray, sxx: FloatArray, category: IntArray, n_cat: int
) -> FloatArray:
    """Standard errors of the raw slopes, each residual variance moderated toward the
    category's pooled one (``PRIOR_VARIANCE_DF`` prior days). A category of one item
    pools nothing: its variance stays its own."""
    estimated = ~np.isnan(variance)
    rss = np.where(estimated, variance * df, 0.0)
    pooled_df = _sums(category, df, n_cat)
    pooled = _sums(category, rss, n_cat) / np.maximum(pooled_df, 1.0)
    own_df = pooled_df[category] - df  # the other items' degrees of freedom
    prior_df = np.where(own_df > 0, PRIOR_VARIANCE_DF, 0.0)
    moderated = (rss + prior_df * pooled[category]) / np.maximum(df + prior_df, 1.0)
    return np.where(estimated, np.sqrt(moderated / np.where(estimated, sxx, 1.0)), np.nan)


def _shrink(
    raw: FloatArray, se: FloatArray, category: IntArray, n_cat: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Posterior means and standard errors, and the category means (DerSimonian-Laird)."""
    estimated = ~np.isnan(raw) & (se > 0)
    weight = np.where(estimated, 1.0 / np.where(estimated, se, 1.0) ** 2, 0.0)
    value = np.where(estimated, raw, 0.0)
    k = np.bincount(category, weights=estimated.astype(np.float64), minlength=n_cat)
    sum_w = np.bincount(category, weights=weight, minlength=n_cat)
    sum_w2 = np.bincount(category, weights=weight * weight, minlength=n_cat)
    fixed_mean = np.bincount(category, weights=weight * value, minlength=n_cat) / np.maximum(
        sum_w, np.finfo(np.float64).tiny
    )
    q = np.bincount(category, weights=weight * (value - fixed_mean[category]) ** 2, minlength=n_cat)
    spread = sum_w - sum_w2 / np.maximum(sum_w, np.finfo(np.float64).tiny)
    with np.errstate(divide="ignore", invalid="ignore"):
        tau2 = np.where((k >= 2) & (spread > 0), np.maximum(0.0, (q - (k - 1)) / spread), np.inf)
    # Random-effects weights; a category of one (tau² infinite) keeps fixed weights.
    re_weight = np.where(
        np.isinf(tau2[category]), weight, 1.0 / (np.where(estimated, se, 1.0) ** 2 + tau2[category])
    )
    re_weight = np.where(estimated, re_weight, 0.0)
    re_sum = np.bincount(category, weights=re_weight, minlength=n_cat)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(
            re_sum > 0,
            np.bincount(category, weights=re_weight * value, minlength=n_cat) / re_sum,
            np.nan,
        )
        mean_variance = np.where(re_sum > 0, 1.0 / re_sum, np.nan)
    t2, m, mv = tau2[category], mean[category], mean_variance[category]
    pooled_category = np.isfinite(t2)
    with np.errstate(invalid="ignore"):
        b = np.where(pooled_category, t2 / (t2 + se**2), 1.0)
        b = np.where(np.isnan(b), 0.0, b)  # tau² = 0 and se = 0 cannot happen: se > 0
    # An item with no slope of its own gets its category's mean, if the category's
    # spread is known: that spread is its uncertainty.
    posterior = np.where(estimated, m + b * (raw - m), np.where(pooled_category, m, np.nan))
    posterior_var = np.where(
        estimated,
        np.where(pooled_category, b * se**2 + (1.0 - b) ** 2 * mv, se**2),
        t2 + mv,  # an item with no slope of its own: a new draw from its category
    )
    return posterior, np.sqrt(posterior_var), m
