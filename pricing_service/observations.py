"""The gate every competitor observation passes, from a crawler or a third-party feed.

A pure function: an observation that fails a check is kept, quarantined with its reason,
so it can be inspected, but pricing only uses accepted ones.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pricing_service.engine.inputs import CompetitorObservation, ItemFacts
from pricing_service.store.store import OfferStatus

#: Older observations say little about today's market.
FRESHNESS_TTL = timedelta(days=7)
#: Clocks differ a little between us and a feed; more than this is a bad timestamp.
MAX_CLOCK_SKEW = timedelta(minutes=5)

ACCEPTED = "accepted"
QUARANTINED = "quarantined"


def quarantine_reason(
    observation: CompetitorObservation,
    item: ItemFacts,
    now: datetime,
    *,
    ttl: timedelta = FRESHNESS_TTL,
) -> str | None:
    """Why ``observation`` must not be used to price ``item``; None when it may be."""
    if observation.currency != item.currency:
        return f"currency {observation.currency} differs from the item's {item.currency}"
    if observation.price <= 0:
        return "price is not positive"
    if observation.observed_at > now + MAX_CLOCK_SKEW:
        return "observed in the future"
    if now - observation.observed_at > ttl:
        return f"older than {_days(ttl)}"
    return None


def gate_observation(
    observation: CompetitorObservation,
    item: ItemFacts,
    now: datetime,
    *,
    ttl: timedelta = FRESHNESS_TTL,
) -> OfferStatus:
    """The observation as stored: accepted, or quarantined with the reason."""
    reason = quarantine_reason(observation, item, now, ttl=ttl)
    return OfferStatus(
        observation=observation,
        status=ACCEPTED if reason is None else QUARANTINED,
        reason=reason,
        received_at=now,
    )


def _days(ttl: timedelta) -> str:
    if ttl % timedelta(days=1):
        return f"{ttl.total_seconds():.0f} seconds"
    return f"{ttl.days} days"
