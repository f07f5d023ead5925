"""Competitor offers as stored: the latest per competitor (``keys.offers``), and the
entries of the offer history (``keys.offer_history``), every observation received.

The history is kept for the retention, so its encoding decides much of what a crawled
SKU costs in Redis (``bench/footprint.py``). An entry holds the offer as short fields,
the same names in the same order every time, with the instants as integer microseconds
(when it was received as an offset from when it was observed, mostly 0): a stream node
stores the names once and integers as integers, so an entry costs about 90 bytes, where
the offer's JSON in one field (what earlier versions wrote) cost about 330-390. What it
leaves out is ``last_accepted``: the history's own earlier entries hold it.

Both forms are read; entries of the earlier one age out with the retention.

The stream itself keeps only the newest few hundred entries, which the quality gate
reads: a sweep (``Store.archive_offer_history``) moves older ones, a hundred or more at a
time, into deflated blocks of a list, where an entry takes about an eighth of its bytes in
the stream. ``Store.offer_history`` reads both.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
from pydantic import BaseModel, ConfigDict

from pricing_service.engine.inputs import AwareDatetime, CompetitorObservation

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
#: The JSON of an earlier version's entry.
_LEGACY_FIELD = b"o"


class OfferStatus(BaseModel):
    """A competitor observation as stored: accepted, or quarantined with a reason.

    A quarantined observation does not replace what pricing uses for its competitor:
    ``last_accepted`` carries the competitor's latest accepted observation forward (it
    still ages out by the engine's freshness rules), so one bad crawl neither moves the
    price nor drops the competitor from the market.
    """

    model_config = ConfigDict(frozen=True)

    observation: CompetitorObservation
    status: str = "accepted"
    reason: str | None = None
    received_at: AwareDatetime
    last_accepted: CompetitorObservation | None = None

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"

    @property
    def in_force(self) -> CompetitorObservation | None:
        """The observation pricing uses for this competitor: this one when accepted, else
        the last accepted one, if any."""
        return self.observation if self.accepted else self.last_accepted


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def history_entry(offer: OfferStatus) -> dict[str, str]:
    """The stream fields of one offer, in the order every entry has them."""
    observation = offer.observation
    return {
        "c": observation.competitor,
        "p": str(observation.price),
        "cur": observation.currency,
        "ship": "" if observation.shipping is None else str(observation.shipping),
        "in": "1" if observation.in_stock else "0",
        "at": str(_micros(observation.observed_at)),
        "src": observation.source,
        "st": offer.status,
        "why": offer.reason or "",
        "rcv": str(_micros(offer.received_at) - _micros(observation.observed_at)),
    }


def history_entry_as_read(offer: OfferStatus) -> dict[bytes, bytes]:
    """:func:`history_entry` as Redis returns it."""
    return {name.encode(): value.encode() for name, value in history_entry(offer).items()}


def history_offer(fields: Mapping[bytes, bytes]) -> OfferStatus:
    """The offer of an entry as read, in either form (``last_accepted`` is not kept)."""
    legacy = fields.get(_LEGACY_FIELD)
    if legacy is not None:
        return OfferStatus.model_validate_json(legacy).model_copy(update={"last_accepted": None})
    shipping = fields[b"ship"]
    reason = fields[b"why"]
    observed_at = _EPOCH + int(fields[b"at"]) * _MICROSECOND
    return OfferStatus(
        observation=CompetitorObservation(
            competitor=fields[b"c"].decode(),
            price=Decimal(fields[b"p"].decode()),
            currency=fields[b"cur"].decode(),
            shipping=Decimal(shipping.decode()) if shipping else None,
            in_stock=fields[b"in"] == b"1",
            observed_at=observed_at,
            source=fields[b"src"].decode(),
        ),
        status=fields[b"st"].decode(),
        reason=reason.decode() if reason else None,
        received_at=observed_at + int(fields[b"rcv"]) * _MICROSECOND,
    )


def history_competitor(fields: Mapping[bytes, bytes]) -> str | None:
    """The competitor of an entry in the compact form, without decoding the rest; None
    for an entry of the earlier form."""
    competitor = fields.get(b"c")
    return None if competitor is None else competitor.decode()


# -- the history's older entries, packed into blocks ----------------------------------------

#: The stream keeps the newest entries, which the quality gate reads...
HISTORY_STREAM_KEPT = 200
#: ...and up to this many more; a sweep then moves the older ones into one block of a list
#: (``keys.offer_history_blocks``), newest block first.
HISTORY_BLOCK_MIN = 100
#: At most this many entries go into one block.
HISTORY_BLOCK_MAX = 2_000

HistoryEntry = tuple[str, dict[bytes, bytes]]


def pack_history(entries: Sequence[HistoryEntry]) -> bytes:
    """One block of history entries (``(entry id, fields)``, newest first):
    ``<newest entry's ms> <count>``, a newline, the deflated JSON of the entries. Entries
    of one SKU repeat each other, so a block takes about an eighth of the stream's bytes."""
    rows = [
        [entry_id, {name.decode(): value.decode() for name, value in fields.items()}]
        for entry_id, fields in entries
    ]
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = compressor.compress(orjson.dumps(rows)) + compressor.flush()
    newest_ms = entries[0][0].partition("-")[0]
    return b"%s %d\n%s" % (newest_ms.encode(), len(entries), body)


def block_newest_ms(block: bytes) -> int:
    return int(block.partition(b" ")[0])


def unpack_history(block: bytes) -> list[HistoryEntry]:
    """The entries of a block, newest first, as the stream gave them."""
    _, _, body = block.partition(b"\n")
    rows = orjson.loads(zlib.decompress(body, -15))
    return [
        (entry_id, {name.encode(): value.encode() for name, value in fields.items()})
        for entry_id, fields in rows
    ]
