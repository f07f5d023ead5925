"""The market a crawled observation is judged against, read from the store."""

from __future__ import annotations

from collections.abc import Mapping
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
from pricing_service.store import keys
from pricing_service.store.store import OfferStatus, Store

#: How many of the listing's latest accepted prices make its own reference.
OWN_HISTORY_LENGTH = 10
#: History entries read to find them (the stream holds every competitor's offers).
_HISTORY_SCAN = 200


async def market_for(
    store: Store,
    item: ItemFacts,
    competitor: str,
    competitors: Mapping[str, Competitor],
    now: datetime,
    fx_rates: Mapping[str, Decimal],
) -> Market:
    offers = await store.get_offers(item.sku)
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
        own_history=await _own_history(store, item, competitor, fx_rates),
        peer_prices=peers,
        previous=previous,
    )


def _counts(competitor: str, competitors: Mapping[str, Competitor]) -> bool:
    known = competitors.get(competitor)
    return known is not None and not known.ours


async def _own_history(
    store: Store, item: ItemFacts, competitor: str, fx_rates: Mapping[str, Decimal]
) -> list[Decimal]:
    entries: Any = await store.redis.xrevrange(keys.offer_history(item.sku), count=_HISTORY_SCAN)
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
