"""Competitor offers as stored: the latest per competitor (``keys.offers``), and the
entries of the offer history (``keys.offer_history``), every observation received.

The history is kept for the retention, so it is most of what a crawled SKU costs in
Redis (``bench/footprint.py``). An entry holds the offer as short fields, the same names
in the same order every time, with the instants as integer microseconds (when it was
received as an offset from when it was observed, mostly 0): a stream node stores the
names once and integers as integers, so an entry costs about 90 bytes, where the offer's
JSON in one field (what earlier versions wrote) cost about 330-390. What it
leaves out is ``last_accepted``: the history's own earlier entries hold it.

Both forms are read; entries of the earlier one age out with the retention.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal

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
