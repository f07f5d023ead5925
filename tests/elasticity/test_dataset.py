"""Item-day rows from the stored day-bucket hashes (pure, no Redis)."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np

from pricing_service.elasticity.dataset import fit_days, fit_rows

TODAY = date(2026, 11, 26)  # a Thursday
DAYS = fit_days(TODAY, timedelta(days=35))


def test_fit_days_are_the_complete_days_held() -> None:
    assert DAYS[0] == date(2026, 10, 22)
    assert DAYS[-1] == date(2026, 11, 25)
    assert len(DAYS) == 35


def test_rows_are_the_days_with_units_and_revenue() -> None:
    raws = [
        {
            b"u:20261125": b"4",
            b"r:20261125": b"3996",
            b"i:20261125": b"17",  # inventory: not a sale
            b"pruned": b"20261126",  # bookkeeping
            b"u:20261124": b"-2",  # net returns: no price paid
            b"r:20261124": b"-1998",
            b"u:20261123": b"3",  # units without revenue (given away): no price paid
            b"u:20261126": b"5",  # today: incomplete
            b"r:20261126": b"5000",
            b"u:20200101": b"1",  # past the retention
            b"r:20200101": b"100",
        },
        {},
        {b"u:20261122": b"2", b"r:20261122": b"3000"},
    ]
    rows = fit_rows(raws, DAYS, ["tv", None, "tv"], ["USD", "USD", "USD"])
    assert rows.item.tolist() == [0, 2]
    assert rows.price.tolist() == [999.0, 1500.0]
    assert rows.units.tolist() == [4.0, 2.0]
    assert rows.day_of_week.tolist() == [2, 6]  # Wednesday, Sunday
    assert rows.categories == ("", "tv")
    assert rows.item_category.tolist() == [1, 0, 1]


def test_a_days_returns_do_not_move_its_price_or_units() -> None:
    # Ten sold at 10.00 on the 25th, two bought at 12.00 earlier came back: net 8 units
    # and 76.00 would read as 9.50 each. A day of returns alone gives no row.
    raw = {
        b"u:20261125": b"8",
        b"r:20261125": b"7600",
        b"n:20261125": b"2",
        b"x:20261125": b"2400",
        b"u:20261124": b"-1",
        b"r:20261124": b"-1200",
        b"n:20261124": b"1",
        b"x:20261124": b"1200",
    }
    rows = fit_rows([raw], DAYS, ["tv"], ["USD"])
    assert rows.units.tolist() == [10.0]
    assert rows.price.tolist() == [1000.0]


def test_a_day_that_ended_out_of_stock_gives_no_row() -> None:
    # Its units were capped by the stock, not set by the price.
    raw = {
        b"u:20261124": b"9",
        b"r:20261124": b"8991",
        b"i:20261124": b"0",  # sold out
        b"u:20261125": b"4",
        b"r:20261125": b"3996",
        b"i:20261125": b"12",
    }
    rows = fit_rows([raw], DAYS, ["tv"], ["USD"])
    assert rows.units.tolist() == [4.0]


def test_no_items_give_no_rows() -> None:
    rows = fit_rows([], DAYS, [], [])
    assert rows.item.shape == (0,)
    assert rows.item_category.dtype == np.int64


def test_days_whose_revenue_is_in_another_currency_give_no_row() -> None:
    changed = {
        b"cur": b"=USD,20261120=EUR",  # the item moved from dollars to euros
        b"u:20261118": b"2",  # in dollars
        b"r:20261118": b"2000",
        b"u:20261119": b"1",  # a late sale after the change, alone in a day of dollars
        b"r:20261119": b"900",
        b"m:20261119": b"EUR",
        b"u:20261120": b"2",  # the change fell within the day
        b"r:20261120": b"1900",
        b"m:20261120": b"*",
        b"u:20261121": b"1",
        b"r:20261121": b"900",
    }
    legacy = {b"u:20261121": b"1", b"r:20261121": b"1000"}  # written before `cur` existed
    rows = fit_rows([changed, legacy], DAYS, [None, None], ["EUR", "USD"])
    assert list(zip(rows.item.tolist(), rows.price.tolist(), strict=True)) == [
        (0, 900.0),  # 2026-11-19
        (0, 900.0),  # 2026-11-21
        (1, 1000.0),
    ]
