"""Demand signals from daily units, and the bucket decoding (pure, no Redis)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pricing_service.demand.buckets import Bucket, bucket_start, decode_buckets, units_by_day
from pricing_service.demand.signals import (
    MAX_DAYS_OF_SUPPLY,
    days_of_supply,
    demand_stats,
    forecast_daily_demand,
    sell_through,
    signal_columns,
    today_share,
    velocity,
)

#: In the day's last hour, which counts as a whole day.
NOW = datetime(2026, 11, 26, 23, 30, tzinfo=UTC)


def test_velocity_over_the_window_never_negative() -> None:
    units = [4] * 21 + [1] * 7
    assert velocity(units, 7) == 1
    assert velocity(units, 28) == pytest.approx((84 + 7) / 28)
    assert velocity([-3, 0, 0, 0, 0, 0, 0], 7) == 0


def test_velocity_ratio_compares_the_week_with_its_baseline() -> None:
    cooling = demand_stats([4] * 21 + [1] * 7, None, NOW)
    assert cooling.velocity_ratio == pytest.approx(1 / (91 / 28))
    assert demand_stats([0] * 28, None, NOW).velocity_ratio is None


def test_forecast_weighs_recent_days_more() -> None:
    rising = [0] * 21 + [10] * 7
    falling = [10] * 7 + [0] * 21
    assert forecast_daily_demand([5] * 28) == pytest.approx(5)
    assert forecast_daily_demand(rising) > velocity(rising, 28)
    assert forecast_daily_demand(falling) < velocity(falling, 28)
    assert forecast_daily_demand([]) == 0


def test_a_new_item_is_measured_over_its_days_on_sale() -> None:
    # Five a day for three days. Over 28 days it read as accelerating (ratio 4 on day one,
    # 28/7 here) and as slow stock (a forecast diluted by 25 days before the launch).
    launched = demand_stats([0] * 25 + [5, 5, 5], 100, NOW, selling_days=3)
    assert (launched.velocity_7d, launched.velocity_28d) == (5.0, 5.0)
    assert launched.velocity_ratio == 1.0
    assert launched.days_of_supply == pytest.approx(20.0)
    unknown = demand_stats([0] * 25 + [5, 5, 5], 100, NOW)  # sold before: the whole baseline
    assert unknown.velocity_ratio == 4.0


def test_today_counts_for_the_hours_begun_so_the_signals_do_not_dip_at_midnight() -> None:
    # 24 a day for four weeks, one an hour, and today's as they come in: at every hour
    # today so far is on the same pace, and every signal reads as steady as at its end.
    assert today_share(datetime(2026, 11, 26, 0, 5, tzinfo=UTC)) == 1 / 24
    assert today_share(datetime(2026, 11, 26, 12, tzinfo=UTC)) == 13 / 24
    for hour in (0, 6, 12, 23):
        at = datetime(2026, 11, 26, hour, 59, 59, tzinfo=UTC)
        steady = demand_stats([24] * 27 + [hour + 1], 24 * 14, at)
        assert steady.velocity_7d == pytest.approx(24), hour
        assert steady.velocity_28d == pytest.approx(24), hour
        assert steady.velocity_ratio == pytest.approx(1), hour
        assert steady.days_of_supply == pytest.approx(14), hour
    # Counted as a whole day, today's first hour read as 14% slower than the week before.
    assert velocity([24] * 27 + [1], 7) == pytest.approx((6 * 24 + 1) / 7)
    # A day's worth never comes of less than a day: one sale in the first hour of an
    # item's second day on sale reads as 1 + yesterday's, over one day.
    launch = demand_stats([0] * 26 + [4, 1], None, datetime(2026, 11, 26, 0, 10, tzinfo=UTC), 2)
    assert launch.velocity_7d == pytest.approx(5 / (1 + 1 / 24))
    first_day = demand_stats([0] * 27 + [1], 10, datetime(2026, 11, 26, 0, 10, tzinfo=UTC), 1)
    assert first_day.velocity_7d == 1.0


def test_days_of_supply_and_sell_through() -> None:
    assert days_of_supply(100, 4.0) == 25
    assert days_of_supply(None, 4.0) is None
    # Stock that sells nothing lasts "for ever": the most a threshold can be tested with,
    # so a slow-stock markdown (days_of_supply above 90) reaches the deadest stock too.
    assert days_of_supply(100, 0.0) == MAX_DAYS_OF_SUPPLY
    assert days_of_supply(100, 1e-9) == MAX_DAYS_OF_SUPPLY
    assert days_of_supply(0, 0.0) == days_of_supply(0, 4.0) == 0.0
    dead = demand_stats([0] * 28, 500, NOW)  # sold before the baseline, not since
    assert (dead.velocity_28d, dead.days_of_supply) == (0.0, MAX_DAYS_OF_SUPPLY)
    assert sell_through(30, 70) == pytest.approx(0.3)
    assert sell_through(0, 0) is None
    assert sell_through(5, None) is None
    stats = demand_stats([2] * 28, 56, NOW)
    assert stats.days_of_supply == pytest.approx(28)
    assert stats.sell_through == pytest.approx(56 / 112)


def test_buckets_decode_units_revenue_inventory_and_average_price() -> None:
    raw = {b"u:20261125": b"4", b"r:20261125": b"3996", b"i:20261125": b"17", b"pruned": b"x"}
    buckets = decode_buckets(raw)
    assert buckets == {"20261125": Bucket(units=4, revenue_minor=3996, inventory=17)}
    assert buckets["20261125"].average_price_minor == pytest.approx(999)
    assert Bucket(units=-1, revenue_minor=-999).average_price_minor is None
    assert units_by_day(raw, date(2026, 11, 26), 3) == [0, 4, 0]
    # Units only count on the days asked for; a hash without any is no demand at all.
    assert units_by_day({b"u:20261001": b"2"}, date(2026, 11, 26), 2) == [0, 0]
    assert units_by_day({b"u:20261125": b"0", b"r:20261125": b"5"}, date(2026, 11, 26), 2) is None
    assert units_by_day({}, date(2026, 11, 26), 2) is None


def test_bucket_start_reads_days_and_hours_and_nothing_else() -> None:
    assert bucket_start("20261125") == datetime(2026, 11, 25, tzinfo=UTC)
    assert bucket_start("2026112513") == datetime(2026, 11, 25, 13, tzinfo=UTC)
    for name in (
        "",
        "2026112",
        "202611251",
        "20261325",
        "2026112524",
        "2026-1125",
        "\uff12\uff10\uff12\uff16\uff11\uff11\uff12\uff15",
    ):
        assert bucket_start(name) is None, name


def test_the_average_price_paid_is_exact_and_rounded_half_up() -> None:
    assert Bucket(units=2, revenue_minor=25).average_price_minor == 13
    assert Bucket(units=3, revenue_minor=1000).average_price_minor == 333
    assert Bucket(units=0, revenue_minor=25).average_price_minor is None


def test_each_bucket_has_the_currency_its_revenue_was_recorded_in() -> None:
    raw = {
        b"cur": b"=USD,20261203=EUR",
        b"u:20261201": b"1",
        b"r:20261201": b"1000",
        b"u:20261202": b"1",  # a late sale in euros, after the change, alone in its day
        b"r:20261202": b"900",
        b"m:20261202": b"EUR",
        b"u:20261203": b"2",  # the change fell within this day
        b"r:20261203": b"1900",
        b"m:20261203": b"*",
        b"u:20261204": b"1",
        b"r:20261204": b"900",
    }
    currencies = {day: bucket.currency for day, bucket in decode_buckets(raw, "JPY").items()}
    assert currencies == {
        "20261201": "USD",
        "20261202": "EUR",
        "20261203": None,
        "20261204": "EUR",
    }
    # Written before the hash said its currency: the item's currency is assumed.
    legacy = {b"u:20261201": b"1", b"r:20261201": b"1000"}
    assert decode_buckets(legacy, "USD")["20261201"].currency == "USD"


@settings(max_examples=200, deadline=None)
@given(
    history=st.lists(
        st.lists(st.integers(-3, 40), min_size=4, max_size=4), min_size=0, max_size=40
    ),
    inventories=st.lists(st.one_of(st.none(), st.integers(0, 5000)), min_size=4, max_size=4),
    hour=st.integers(0, 23),
)
def test_the_simulators_columns_are_the_services_signals(
    history: list[list[int]], inventories: list[int | None], hour: int
) -> None:
    # The simulator prices with these: its signal rules must fire as they would live.
    units = np.array(history, np.int64).reshape(len(history), 4)
    inventory = np.array([np.nan if v is None else float(v) for v in inventories])
    at = NOW.replace(hour=hour)
    ratio, supply = signal_columns(units, inventory, today_share(at))
    for item in range(4):
        column = [int(day[item]) for day in history]
        if not any(column):  # never sold: the service has no signals
            assert np.isnan(ratio[item])
            assert np.isnan(supply[item])
            continue
        first = next(day for day, units in enumerate(column) if units)
        padded = [0] * max(0, 28 - len(column)) + column
        stats = demand_stats(padded, inventories[item], at, selling_days=len(column) - first)
        for got, want in (
            (ratio[item], stats.velocity_ratio),
            (supply[item], stats.days_of_supply),
        ):
            if want is None:
                assert np.isnan(got)
            else:
                assert got == pytest.approx(want, rel=1e-12)
