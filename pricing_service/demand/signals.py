"""Demand signals from daily unit sales (pure): velocity over 7 and 28 days, forecast
daily demand, days of supply and sell-through. The velocity against its own baseline is
``DemandStats.velocity_ratio`` (7-day over 28-day velocity)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache

from pricing_service.engine.inputs import DemandStats

SHORT_DAYS = 7
BASELINE_DAYS = 28
#: The forecast weighs a day half as much as the day after it, this many days later.
FORECAST_HALF_LIFE_DAYS = 7.0


def velocity(units_by_day: Sequence[int], days: int) -> float:
    """Units a day over the last ``days`` days (``units_by_day`` oldest first); net
    returns never make it negative."""
    total: int = sum(units_by_day[-days:])
    return max(0, total) / days


def forecast_daily_demand(units_by_day: Sequence[int]) -> float:
    """Exponentially weighted mean of the daily units (oldest first): recent days count
    more, so a change in demand shows within days without one day swinging it."""
    weights, total = _forecast_weights(len(units_by_day))
    if not total:
        return 0.0
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


def demand_stats(units_by_day: Sequence[int], inventory: int | None, now: datetime) -> DemandStats:
    """The engine's demand inputs from the last :data:`BASELINE_DAYS` days of units
    (oldest first, today last)."""
    window = list(units_by_day[-BASELINE_DAYS:])
    forecast = forecast_daily_demand(window)
    return DemandStats(
        velocity_7d=velocity(window, SHORT_DAYS),
        velocity_28d=velocity(window, BASELINE_DAYS),
        days_of_supply=days_of_supply(inventory, forecast),
        sell_through=sell_through(sum(window), inventory),
        as_of=now,
    )
