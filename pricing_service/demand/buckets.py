"""The per-SKU sales buckets as stored in Redis, and their decoding (pure).

A SKU's day buckets are one hash (``keys.sales``), its hour buckets another
(``keys.sales_hourly``), with the same fields: ``u:BUCKET`` units, ``r:BUCKET`` revenue
in the currency's minor units, ``i:BUCKET`` the inventory level last reported in the
bucket. ``BUCKET`` is ``YYYYMMDD`` (UTC day) or ``YYYYMMDDHH`` (UTC hour). The average
price paid in a bucket is its revenue over its units.

Revenue is recorded in the item's currency at the time, which can change: ``cur`` says
from which bucket on which currency applies (``=USD``, ``=USD,20261203=EUR``; a hash
written before it existed has none), and ``m:BUCKET`` marks a bucket whose revenue is in
two currencies, so has no meaningful total (``*``), or names the currency of a bucket
that the timeline would get wrong (late sales after a change, alone in their bucket).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import NamedTuple

from pricing_service.money import div_round_half_up

DAY_FORMAT = "%Y%m%d"
HOUR_FORMAT = "%Y%m%d%H"
_FORMAT_BY_LENGTH = {8: DAY_FORMAT, 10: HOUR_FORMAT}


def day_bucket(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(DAY_FORMAT)


def hour_bucket(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(HOUR_FORMAT)


class Bucket(NamedTuple):
    """One day's or hour's sales of a SKU."""

    units: int = 0
    revenue_minor: int = 0
    inventory: int | None = None
    #: The currency of the revenue; None when it is in two (or, from a hash that does not
    #: say, when no currency was given to :func:`decode_buckets`).
    currency: str | None = None

    @property
    def average_price_minor(self) -> int | None:
        """Revenue per unit sold in minor units, rounded half away from zero; None
        without net units sold."""
        return div_round_half_up(self.revenue_minor, self.units) if self.units > 0 else None


def decode_buckets(raw: Mapping[bytes, bytes], currency: str | None = None) -> dict[str, Bucket]:
    """``{BUCKET: Bucket}`` from a bucket hash as read (other fields are ignored). A hash
    that does not say its revenue's currency (written before it did) is taken to be in
    ``currency``."""
    fields: dict[str, dict[str, int]] = {}
    marked: dict[str, str] = {}
    for field, value in raw.items():
        kind, _, bucket = field.decode().partition(":")
        if kind in ("u", "r", "i") and bucket:
            fields.setdefault(bucket, {})[kind] = int(value)
        elif kind == "m" and bucket:
            marked[bucket] = value.decode()
    timeline = revenue_currencies(raw.get(b"cur"), currency)
    return {
        bucket: Bucket(
            units=f.get("u", 0),
            revenue_minor=f.get("r", 0),
            inventory=f.get("i"),
            currency=_currency_of(bucket, marked.get(bucket), timeline),
        )
        for bucket, f in fields.items()
    }


def _currency_of(
    bucket: str, marked: str | None, timeline: Sequence[tuple[str, str | None]]
) -> str | None:
    if marked == "*":
        return None  # revenue in two currencies
    return marked or currency_in_force(timeline, bucket)


def revenue_currencies(raw: bytes | None, currency: str | None) -> list[tuple[str, str | None]]:
    """``[(first bucket, currency)]`` from a hash's ``cur`` field, oldest first (the first
    from ``""``, every bucket); ``[("", currency)]`` without one."""
    if raw is None:
        return [("", currency)]
    timeline: list[tuple[str, str | None]] = []
    for entry in raw.decode().split(","):
        start, _, named = entry.partition("=")
        timeline.append((start, named))
    return timeline


def currency_in_force(timeline: Sequence[tuple[str, str | None]], bucket: str) -> str | None:
    """The currency of ``bucket``'s revenue by the timeline of :func:`revenue_currencies`."""
    found = timeline[0][1] if timeline else None
    for start, currency in timeline:
        if start <= bucket:
            found = currency
    return found


def bucket_start(bucket: str) -> datetime | None:
    """The first instant of a day (``YYYYMMDD``) or hour (``YYYYMMDDHH``) bucket, UTC;
    None for a name that is neither (a field written around the service)."""
    if len(bucket) not in _FORMAT_BY_LENGTH or not (bucket.isascii() and bucket.isdigit()):
        return None
    try:
        return datetime.strptime(bucket, _FORMAT_BY_LENGTH[len(bucket)]).replace(tzinfo=UTC)
    except ValueError:
        return None


def units_by_day(raw: Mapping[bytes, bytes], last_day: date, days: int) -> list[int] | None:
    """Units sold on each of the ``days`` days ending with ``last_day``, oldest first,
    from a day-bucket hash as read; None if no bucket records a unit. The rest of the
    hash is looked at only when none of those days sold anything, and no :class:`Bucket`
    is built: a full reprice reads a million of these hashes."""
    units = [int(raw.get(field, 0)) for field in unit_fields(last_day, days)]
    if any(units):
        return units
    # Nothing sold in those days: the whole hash says whether anything ever sold.
    if not any(int(value) for field, value in raw.items() if field[:2] == b"u:" and field[2:]):
        return None
    return units


#: The day-bucket hash's field holding the day of the item's first sale (``YYYYMMDD``).
FIRST_SALE_FIELD = b"first"


def selling_days(raw: Mapping[bytes, bytes], today: date) -> int | None:
    """Days since the item's first sale, today included, from a day-bucket hash as read;
    None where the hash predates the field (sales recorded before it was kept)."""
    first = raw.get(FIRST_SALE_FIELD)
    if not first:
        return None
    started = datetime.strptime(first.decode(), DAY_FORMAT).date()
    return max(1, (today - started).days + 1)


@lru_cache(maxsize=64)
def unit_fields(last_day: date, days: int) -> tuple[bytes, ...]:
    """The units fields of the ``days`` days ending with ``last_day``, oldest first
    (cached: a full reprice asks for the same days for every SKU)."""
    ordinal = last_day.toordinal()
    return tuple(
        b"u:" + date.fromordinal(ordinal - back).strftime(DAY_FORMAT).encode()
        for back in range(days - 1, -1, -1)
    )
