"""Demand signals from daily unit sales (pure): velocity over 7 and 28 days, forecast
daily demand, days of supply and sell-through. The velocity against its own baseline is
``DemandStats.velocity_ratio`` (7-day over 28-day velocity).

The last day is today so far. It counts as the share of the day begun (whole hours, at
least one): taken as a whole day, right after midnight UTC it read as a day without
sales, and every signal dipped (the 7-day velocity by a seventh, the ratio by a tenth,
days of supply rose a tenth) until the day's sales came in, so rules on a threshold
flipped prices back and forth each day. The days' total never counts for less than one
day: a single sale minutes after midnight is not a day's worth many times over."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from pricing_service.engine.inputs import DemandStats

SHORT_DAYS = 7
BASELINE_DAYS = 28
#: The forecast weighs a day half as much as the day after it, this many days later.
FORECAST_HALF_LIFE_DAYS = 7.0


def today_share(now: datetime) -> float:
    """How much of ``now``'s UTC day counts: the hours begun, over 24 (1/24 to 1). Whole
    hours, so that the signals, and the inputs digest they are part of, move at most
    hourly between sales."""
    utc = now.astimezone(UTC)
    return (utc.hour + 1) / 24


def velocity(units_by_day: Sequence[int], days: int, today: float = 1.0) -> float:
    """Units a day over the last ``days`` days (``units_by_day`` oldest first, the last
    counting as ``today`` of a day); net returns never make it negative."""
    total: int = sum(units_by_day[-days:])
    return max(0, total) / _days_covered(days, today)


def _days_covered(days: int, today: float) -> float:
    return max(1.0, days - 1 + today)


def forecast_daily_demand(units_by_day: Sequence[int], today: float = 1.0) -> float:
    """Exponentially weighted mean of the daily units (oldest first, the last counting as
    ``today`` of a day): recent days count more, so a change in demand shows within days
    without one day swinging it."""
    weights, total = _forecast_weights(len(units_by_day))
    if not total:
        return 0.0
    if len(units_by_day) > 1:
        total -= weights[0] * (1.0 - today)  # today weighs for the part of it gone by
    recent_first = reversed(units_by_day)
    return max(0.0, sum(w * u for w, u in zip(weights, recent_first, strict=True)) / total)


@lru_cache(maxsize=64)
def _forecast_weights(days: int) -> tuple[tuple[float, ...], float]:
    """The weight of each day, most recent first, and their sum: the same for every SKU."""
    decay: float = 0.5 ** (1.0 / FORECAST_HALF_LIFE_DAYS)
    weights = tuple(decay**age for age in range(days))
    return weights, sum(weights)


#: Days of supply never read more than this (100 years): stock that sold nothing in the
#: baseline lasts "for ever", and a number any ``above:`` threshold can still test.
MAX_DAYS_OF_SUPPLY = 36_500.0


def days_of_supply(inventory: int | None, forecast: float) -> float | None:
    """Days the inventory lasts at the forecast demand, at most :data:`MAX_DAYS_OF_SUPPLY`;
    None when the inventory is unknown. Stock on hand that is not selling at all lasts
    the maximum: the deadest stock is what a slow-stock markdown is for."""
    if inventory is None:
        return None
    stock = max(0, inventory)
    if stock == 0:
        return 0.0
    if forecast <= 0:
        return MAX_DAYS_OF_SUPPLY
    return min(MAX_DAYS_OF_SUPPLY, stock / forecast)


def sell_through(units_sold: int, inventory: int | None) -> float | None:
    """Share of the stock available over a period that sold: sold / (sold + on hand)."""
    if inventory is None:
        return None
    available = max(0, units_sold) + max(0, inventory)
    return max(0, units_sold) / available if available else None


def demand_stats(
    units_by_day: Sequence[int],
    inventory: int | None,
    now: datetime,
    selling_days: int | None = None,
) -> DemandStats:
    """The engine's demand inputs from the last :data:`BASELINE_DAYS` days of units
    (oldest first, today last). ``selling_days``: the days since the item's first sale,
    today included, when fewer than the baseline: its velocities and forecast cover
    those days only. Counted over days before it was on sale, a new item read as
    accelerating (a ratio of 4 on its first day) and as slow stock."""
    window = list(units_by_day[-BASELINE_DAYS:])
    selling = BASELINE_DAYS if selling_days is None else max(1, selling_days)
    today = today_share(now)
    forecast = forecast_daily_demand(window[-selling:], today)
    return DemandStats(
        velocity_7d=velocity(window, min(SHORT_DAYS, selling), today),
        velocity_28d=velocity(window, min(BASELINE_DAYS, selling), today),
        days_of_supply=days_of_supply(inventory, forecast),
        sell_through=sell_through(sum(window), inventory),
        as_of=now,
    )


def signal_columns(
    units: npt.NDArray[np.int64], inventory: npt.NDArray[np.float64], today: float = 1.0
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """:func:`demand_stats`'s velocity ratio and days of supply for many items at once
    (the simulator's market, whose days are whole): ``units`` is days x items, oldest
    first, the last counting as ``today`` of a day, ``inventory`` per item (NaN or inf:
    unknown). NaN where :func:`demand_stats` gives None, or where an item never sold (the
    service has no signals for it)."""
    days, n = units.shape
    window = np.zeros((BASELINE_DAYS, n), np.float64)
    kept = min(days, BASELINE_DAYS)
    if kept:
        window[BASELINE_DAYS - kept :] = units[days - kept :]
    sold = (units != 0).any(axis=0) if days else np.zeros(n, bool)
    first = np.where(sold, np.argmax(units != 0, axis=0), days) if days else np.zeros(n)
    selling = np.clip(days - first, 1, BASELINE_DAYS)  # the days since the first sale
    covered_7d = np.maximum(1.0, np.minimum(SHORT_DAYS, selling) - 1 + today)
    velocity_7d = np.maximum(0.0, window[-SHORT_DAYS:].sum(axis=0)) / covered_7d
    velocity_28d = np.maximum(0.0, window.sum(axis=0)) / np.maximum(1.0, selling - 1 + today)
    # The forecast over the selling days only: weights by age, summed over those days.
    weights = np.asarray(_forecast_weights(BASELINE_DAYS)[0])[:, None]
    counted = np.arange(BASELINE_DAYS)[:, None] < selling[None, :]  # by age, newest first
    recent_first = window[::-1]
    total = (weights * counted).sum(axis=0) - np.where(selling > 1, weights[0] * (1 - today), 0)
    forecast = np.maximum(0.0, (weights * recent_first * counted).sum(axis=0) / total)
    known = np.isfinite(inventory)
    stock = np.where(known, np.maximum(0.0, np.nan_to_num(inventory, posinf=0.0)), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(velocity_28d > 0, velocity_7d / velocity_28d, np.nan)
        supply = np.where(
            stock == 0,
            0.0,
            np.where(
                forecast > 0, np.minimum(MAX_DAYS_OF_SUPPLY, stock / forecast), MAX_DAYS_OF_SUPPLY
            ),
        )
    supply = np.where(known, supply, np.nan)
    return np.where(sold, ratio, np.nan), np.where(sold, supply, np.nan)
