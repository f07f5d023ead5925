"""Item-day rows for :func:`pricing_service.elasticity.fit.fit_elasticities` from the
stored day buckets (pure, vectorised: no per-row Python work)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np

from pricing_service.demand.buckets import DAY_FORMAT, decode_buckets
from pricing_service.elasticity.fit import FloatArray, IntArray

#: A day bucket's field: a kind letter, a colon and ``YYYYMMDD``.
_FIELD_WIDTH = 10


@dataclass(frozen=True)
class FitRows:
    """One row per item and complete day with units sold; categories indexed."""

    item: IntArray
    price: FloatArray  # average price paid, minor units
    units: FloatArray
    day_of_week: IntArray
    item_category: IntArray
    categories: tuple[str, ...]


def fit_days(today: date, retention: timedelta) -> list[date]:
    """The complete days the buckets still hold, oldest first: today is in progress, its
    units not comparable with whole days."""
    return [today - timedelta(days=back) for back in range(retention.days, 0, -1)]


def fit_rows(
    raws: Sequence[Mapping[bytes, bytes]],
    days: Sequence[date],
    categories: Sequence[str | None],
    currencies: Sequence[str],
) -> FitRows:
    """Rows from each item's day-bucket hash as read (``Store.sales_buckets``), for
    ``days`` only. The fields of all items are parsed at once as fixed-width bytes
    (``u:YYYYMMDD``), not one by one. Days without units sold or without positive
    revenue carry no price paid and give no row, and so do days whose revenue is not in
    the item's currency (``currencies``: it changed since) and days that ended with no
    stock (their sales were capped by the stock, not set by the price). A day's units
    and revenue are its sales alone, without the returns it took (``n:``, ``x:``). Items
    without a category share one category of their own."""
    names = tuple(sorted({category or "" for category in categories}))
    index = {name: position for position, name in enumerate(names)}
    fields: list[bytes] = []
    values: list[bytes] = []
    for raw in raws:
        fields.extend(raw.keys())
        values.extend(raw.values())
    owner = np.repeat(np.arange(len(raws), dtype=np.int64), [len(raw) for raw in raws])

    # Day numbers (YYYYMMDD) held, then a sentinel no field can match.
    wanted = np.array([int(day.strftime(DAY_FORMAT)) for day in days] + [10**8])
    units = np.zeros((len(raws), len(days)), dtype=np.int64)
    revenue = np.zeros_like(units)
    inventory = np.full_like(units, -1)  # -1: no level reported that day
    chars = np.array(fields or [b""], dtype=f"S{_FIELD_WIDTH}").view(np.uint8)
    chars = chars.reshape(-1, _FIELD_WIDTH)[: len(fields)]
    digits = chars[:, 2:].astype(np.int64) - ord("0")
    is_day = (chars[:, 1] == ord(":")) & np.all((digits >= 0) & (digits <= 9), axis=1)
    number = digits @ (10 ** np.arange(_FIELD_WIDTH - 3, -1, -1, dtype=np.int64))
    position = np.searchsorted(wanted, number).clip(0, len(days))
    held = is_day & (wanted[position] == number)
    amounts = np.array(values or [b"0"], dtype=np.bytes_)
    returned, refunded = np.zeros_like(units), np.zeros_like(units)
    columns = (
        (b"u", units),
        (b"r", revenue),
        (b"i", inventory),
        (b"n", returned),
        (b"x", refunded),
    )
    for kind, target in columns:
        picked = np.flatnonzero(held & (chars[:, 0] == kind[0]))
        target[owner[picked], position[picked]] = amounts[picked].astype(np.int64)
    # The day's own sales, returns added back: a refund is at the price of the day the
    # unit was bought, and says nothing of the demand at this day's price.
    units += returned
    revenue += refunded

    # A day that ended out of stock sold what there was, not what was wanted: its units
    # say nothing about the price (the simulator leaves such days out too).
    sold = (units > 0) & (revenue > 0) & (inventory != 0)
    marked = np.unique(owner[is_day & (chars[:, 0] == ord("m"))]).tolist()
    changed = [i for i, raw in enumerate(raws) if b"," in raw.get(b"cur", b"")]
    for i in sorted({*marked, *changed}):  # a currency change: rare, so one by one
        buckets = decode_buckets(raws[i], currencies[i])
        for column, held_day in enumerate(days):
            bucket = buckets.get(held_day.strftime(DAY_FORMAT))
            if bucket is not None and bucket.currency != currencies[i]:
                sold[i, column] = False
    item, day = np.nonzero(sold)
    weekdays = np.array([d.weekday() for d in days], dtype=np.int64)
    return FitRows(
        item=item.astype(np.int64),
        price=revenue[sold] / units[sold],
        units=units[sold].astype(np.float64),
        day_of_week=weekdays[day],
        item_category=np.asarray([index[c or ""] for c in categories], dtype=np.int64),
        categories=names,
    )
