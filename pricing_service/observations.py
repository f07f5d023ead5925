"""The gate every competitor observation passes, from a crawler or a third-party feed.

Pure functions: an observation that fails a check is kept, quarantined with its reason,
so it can be inspected, but pricing only uses accepted ones (and, behind a quarantined
one, the competitor's last accepted observation).

:func:`gate_in_market` converts a foreign currency through an FX table, refuses our own
and sister stores, checks the price is positive and the observation fresh, and holds back
outliers against the listing's own history or the other competitors' median until a
second observation confirms them. The crawlers and ``POST /v1/observations`` both use it,
with the market :func:`build_market` makes from what the store holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from statistics import median
from typing import Any

from pricing_service.engine.inputs import CompetitorObservation, ItemFacts
from pricing_service.money import MoneyError, from_minor, to_minor
from pricing_service.rules.model import Competitor
from pricing_service.store.offers import (
    HISTORY_STREAM_KEPT,
    OfferStatus,
    history_competitor,
    history_offer,
)

#: Older observations say little about today's market.
FRESHNESS_TTL = timedelta(days=7)
#: Clocks differ a little between us and a feed; more than this is a bad timestamp.
MAX_CLOCK_SKEW = timedelta(minutes=5)
#: A price this far (as a share) from its reference is held back until confirmed.
OUTLIER_RATIO = Decimal("0.4")
#: A second crawl confirms a held-back price when it is this close to it.
CONFIRMATION_TOLERANCE = Decimal("0.02")

ACCEPTED = "accepted"
QUARANTINED = "quarantined"


class QuarantineKind(StrEnum):
    """Why an observation was held back, as a small fixed set (metric labels)."""

    CURRENCY = "currency"
    NOT_POSITIVE = "not_positive"
    FUTURE = "future"
    STALE = "stale"
    OWN_STORE = "own_store"
    OUTLIER = "outlier"


#: Stored reasons start with their kind, so a later crawl can tell an outlier held back.
_KIND_SEPARATOR = ": "


@dataclass(frozen=True, slots=True)
class Market:
    """What a crawled observation is compared with, all in the item's currency.

    ``own_history``: this competitor's recent accepted prices for the item;
    ``peer_prices``: the other competitors' latest accepted prices;
    ``previous``: this competitor's latest stored offer, accepted or not.
    """

    own_history: Sequence[Decimal] = ()
    peer_prices: Sequence[Decimal] = ()
    previous: OfferStatus | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    offer: OfferStatus
    kind: QuarantineKind | None

    @property
    def accepted(self) -> bool:
        return self.kind is None


def convert_currency(
    observation: CompetitorObservation, currency: str, fx_rates: Mapping[str, Decimal]
) -> CompetitorObservation | None:
    """The observation in ``currency``, through ``fx_rates`` (``{"EUR/USD": 1.08}`` means
    1 EUR = 1.08 USD; the inverse pair is used too); None when no rate converts it."""
    source = observation.currency
    if source == currency:
        return observation
    rate = fx_rates.get(f"{source}/{currency}")
    if rate is None:
        inverse = fx_rates.get(f"{currency}/{source}")
        if not inverse:
            return None
        rate = 1 / inverse
    try:
        price = _round_to(observation.price * rate, currency)
        shipping = (
            None
            if observation.shipping is None
            else _round_to(observation.shipping * rate, currency)
        )
    except MoneyError:
        return None
    return observation.model_copy(
        update={"price": price, "shipping": shipping, "currency": currency}
    )


def gate_in_market(
    observation: CompetitorObservation,
    item: ItemFacts,
    now: datetime,
    market: Market,
    *,
    own_store: bool = False,
    fx_rates: Mapping[str, Decimal] | None = None,
    ttl: timedelta = FRESHNESS_TTL,
    outlier_ratio: Decimal = OUTLIER_RATIO,
) -> Verdict:
    """The full gate for a crawled observation (see the module docstring)."""
    in_force = market.previous.in_force if market.previous is not None else None
    if own_store:
        reason = "our own or a sister store: never counted as a competitor"
        return _offer(observation, now, (QuarantineKind.OWN_STORE, reason))
    converted = convert_currency(observation, item.currency, fx_rates or {})
    if converted is None:
        reason = f"currency {observation.currency} differs from the item's {item.currency}"
        no_rate = (QuarantineKind.CURRENCY, reason + " (no FX rate)")
        return _offer(observation, now, no_rate, in_force)
    problem = _basic_problem(converted, item, now, ttl) or _outlier(
        converted.price, market, outlier_ratio
    )
    return _offer(converted, now, problem, in_force)


def _basic_problem(
    observation: CompetitorObservation, item: ItemFacts, now: datetime, ttl: timedelta
) -> tuple[QuarantineKind, str] | None:
    if observation.currency != item.currency:
        reason = f"currency {observation.currency} differs from the item's {item.currency}"
        return QuarantineKind.CURRENCY, reason
    if observation.price <= 0:
        return QuarantineKind.NOT_POSITIVE, "price is not positive"
    if observation.observed_at > now + MAX_CLOCK_SKEW:
        return QuarantineKind.FUTURE, "observed in the future"
    if now - observation.observed_at > ttl:
        return QuarantineKind.STALE, f"older than {_days(ttl)}"
    return None


def _outlier(price: Decimal, market: Market, ratio: Decimal) -> tuple[QuarantineKind, str] | None:
    references = (
        ("this listing's recent median", market.own_history),
        ("the other competitors' median", market.peer_prices),
    )
    for name, prices in references:
        if not prices:
            continue
        reference = Decimal(median(prices))
        change = (price - reference) / reference
        if abs(change) > ratio and not _confirms_held_back(price, market.previous):
            reason = (
                f"{change:+.0%} against {name} of {reference}; held back until a second "
                "crawl confirms it"
            )
            return QuarantineKind.OUTLIER, reason
    return None


def _confirms_held_back(price: Decimal, previous: OfferStatus | None) -> bool:
    """Whether the previous crawl was held back as an outlier at (nearly) this price."""
    if previous is None or previous.status != QUARANTINED or previous.reason is None:
        return False
    if not previous.reason.startswith(QuarantineKind.OUTLIER + _KIND_SEPARATOR):
        return False
    held = previous.observation.price
    return held > 0 and abs(price - held) / held <= CONFIRMATION_TOLERANCE


def _offer(
    observation: CompetitorObservation,
    now: datetime,
    problem: tuple[QuarantineKind, str] | None,
    in_force: CompetitorObservation | None = None,
) -> Verdict:
    """The verdict; a quarantined offer keeps ``in_force``, the competitor's last accepted
    observation, as the one pricing goes on using."""
    if problem is None:
        offer = OfferStatus(observation=observation, status=ACCEPTED, received_at=now)
        return Verdict(offer, None)
    kind, reason = problem
    # The API has always shown the basic reasons as they are; the crawler-only kinds
    # carry their kind in front so a later crawl can recognise them.
    text = reason if kind in _BASIC_KINDS else f"{kind}{_KIND_SEPARATOR}{reason}"
    offer = OfferStatus(
        observation=observation,
        status=QUARANTINED,
        reason=text,
        received_at=now,
        last_accepted=in_force,
    )
    return Verdict(offer, kind)


_BASIC_KINDS = frozenset(
    {
        QuarantineKind.CURRENCY,
        QuarantineKind.NOT_POSITIVE,
        QuarantineKind.FUTURE,
        QuarantineKind.STALE,
    }
)


def _round_to(amount: Decimal, currency: str) -> Decimal:
    return from_minor(to_minor(amount, currency), currency)


def _days(ttl: timedelta) -> str:
    if ttl % timedelta(days=1):
        return f"{ttl.total_seconds():.0f} seconds"
    return f"{ttl.days} days"


# -- the market an observation is judged against, from what the store holds ----------------

#: How many of the listing's latest accepted prices make its own reference.
OWN_HISTORY_LENGTH = 10
#: History entries read to find them (the stream holds every competitor's offers, and
#: always its newest ones).
HISTORY_SCAN = HISTORY_STREAM_KEPT


def build_market(
    raw_offers: Mapping[Any, bytes],
    history: Sequence[tuple[Any, Mapping[bytes, bytes]]],
    item: ItemFacts,
    competitor: str,
    competitors: Mapping[str, Competitor],
    now: datetime,
    fx_rates: Mapping[str, Decimal],
) -> Market:
    """The market from the SKU's offers hash (as ``Store.get_offers`` reads it) and its
    latest history entries, newest first."""
    offers = sorted(
        (OfferStatus.model_validate_json(value) for value in raw_offers.values()),
        key=lambda o: o.observation.competitor,
    )
    previous = next((o for o in offers if o.observation.competitor == competitor), None)
    peers = [
        converted.price
        for offer in offers
        if (in_force := offer.in_force) is not None
        and in_force.competitor != competitor
        and _counts(in_force.competitor, competitors)
        and now - in_force.observed_at <= FRESHNESS_TTL
        and (converted := convert_currency(in_force, item.currency, fx_rates)) is not None
    ]
    return Market(
        own_history=_own_history(history, item, competitor, fx_rates),
        peer_prices=peers,
        previous=previous,
    )


def _counts(competitor: str, competitors: Mapping[str, Competitor]) -> bool:
    known = competitors.get(competitor)
    return known is not None and not known.ours


def _own_history(
    entries: Sequence[tuple[Any, Mapping[bytes, bytes]]],
    item: ItemFacts,
    competitor: str,
    fx_rates: Mapping[str, Decimal],
) -> list[Decimal]:
    prices: list[Decimal] = []
    for _, fields in entries:
        if history_competitor(fields) not in (None, competitor):
            continue  # another competitor's, not worth decoding
        offer = history_offer(fields)
        if offer.status != ACCEPTED or offer.observation.competitor != competitor:
            continue
        converted = convert_currency(offer.observation, item.currency, fx_rates)
        if converted is not None:
            prices.append(converted.price)
            if len(prices) == OWN_HISTORY_LENGTH:
                break
    return prices
