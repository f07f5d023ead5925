"""The market a crawled observation is judged against, from what the store holds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from pricing_service.engine.inputs import ItemFacts
from pricing_service.observations import (
    ACCEPTED,
    FRESHNESS_TTL,
    Market,
    convert_currency,
)
from pricing_service.rules.model import Competitor
from pricing_service.store.store import OfferStatus

#: How many of the listing's latest accepted prices make its own reference.
OWN_HISTORY_LENGTH = 10
#: History entries read to find them (the stream holds every competitor's offers).
HISTORY_SCAN = 200


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
        if offer.status == ACCEPTED
        and offer.observation.competitor != competitor
        and _counts(offer.observation.competitor, competitors)
        and now - offer.observation.observed_at <= FRESHNESS_TTL
        and (converted := convert_currency(offer.observation, item.currency, fx_rates)) is not None
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
        offer = OfferStatus.model_validate_json(fields[b"o"])
        if offer.status != ACCEPTED or offer.observation.competitor != competitor:
            continue
        converted = convert_currency(offer.observation, item.currency, fx_rates)
        if converted is not None:
            prices.append(converted.price)
            if len(prices) == OWN_HISTORY_LENGTH:
                break
    return prices
