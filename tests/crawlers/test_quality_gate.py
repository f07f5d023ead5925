"""The quality gate for crawled observations (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pricing_service.engine.inputs import CompetitorObservation, ItemFacts
from pricing_service.observations import (
    QUARANTINED,
    Market,
    QuarantineKind,
    convert_currency,
    gate_in_market,
)
from pricing_service.store.store import OfferStatus

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)
ITEM = ItemFacts(sku="A-1", currency="USD")


def seen(
    price: str, currency: str = "USD", *, age: timedelta = timedelta()
) -> CompetitorObservation:
    return CompetitorObservation(
        competitor="demo", price=Decimal(price), currency=currency, observed_at=NOW - age
    )


def test_a_plain_observation_is_accepted() -> None:
    verdict = gate_in_market(seen("10.00"), ITEM, NOW, Market())
    assert verdict.accepted
    assert verdict.offer.status == "accepted"


def test_a_foreign_currency_is_converted_through_the_fx_table() -> None:
    verdict = gate_in_market(
        seen("10.00", "EUR"), ITEM, NOW, Market(), fx_rates={"EUR/USD": Decimal("1.085")}
    )
    assert verdict.accepted
    assert (verdict.offer.observation.price, verdict.offer.observation.currency) == (
        Decimal("10.85"),
        "USD",
    )
    inverse = convert_currency(seen("10.85"), "EUR", {"EUR/USD": Decimal("1.085")})
    assert inverse is not None
    assert inverse.price == Decimal("10.00")


def test_a_foreign_currency_without_a_rate_is_quarantined() -> None:
    verdict = gate_in_market(
        seen("10.00", "GBP"), ITEM, NOW, Market(), fx_rates={"EUR/USD": Decimal(1)}
    )
    assert verdict.kind is QuarantineKind.CURRENCY
    assert verdict.offer.status == QUARANTINED


def test_zero_stale_and_future_prices_are_quarantined() -> None:
    assert gate_in_market(seen("0"), ITEM, NOW, Market()).kind is QuarantineKind.NOT_POSITIVE
    old = seen("10.00", age=timedelta(days=8))
    assert gate_in_market(old, ITEM, NOW, Market()).kind is QuarantineKind.STALE
    ahead = seen("10.00", age=-timedelta(hours=1))
    assert gate_in_market(ahead, ITEM, NOW, Market()).kind is QuarantineKind.FUTURE


def test_our_own_store_never_counts() -> None:
    verdict = gate_in_market(seen("10.00"), ITEM, NOW, Market(), own_store=True)
    assert verdict.kind is QuarantineKind.OWN_STORE


def test_a_sudden_drop_is_held_back_until_confirmed() -> None:
    history = Market(own_history=[Decimal("100.00"), Decimal("101.00"), Decimal("99.00")])
    first = gate_in_market(seen("10.00"), ITEM, NOW, history)
    assert first.kind is QuarantineKind.OUTLIER
    assert "-90%" in (first.offer.reason or "")

    confirmed = Market(own_history=history.own_history, previous=first.offer)
    assert gate_in_market(seen("10.10"), ITEM, NOW, confirmed).accepted
    # a different price does not confirm the held-back one
    assert gate_in_market(seen("30.00"), ITEM, NOW, confirmed).kind is QuarantineKind.OUTLIER


def test_an_outlier_against_the_other_competitors_median() -> None:
    peers = Market(peer_prices=[Decimal("50.00"), Decimal("52.00"), Decimal("49.00")])
    assert gate_in_market(seen("120.00"), ITEM, NOW, peers).kind is QuarantineKind.OUTLIER
    assert gate_in_market(seen("55.00"), ITEM, NOW, peers).accepted


def test_the_basic_reasons_read_as_they_always_did() -> None:
    stale = gate_in_market(seen("10.00", age=timedelta(days=8)), ITEM, NOW, Market())
    assert stale.offer.reason == "older than 7 days"
    foreign = gate_in_market(seen("10.00", "EUR"), ITEM, NOW, Market())
    assert foreign.offer.reason == "currency EUR differs from the item's USD (no FX rate)"


def test_a_held_back_outlier_carries_the_last_accepted_observation_forward() -> None:
    history = [Decimal("100.00"), Decimal("99.00")]
    accepted = gate_in_market(seen("99.00"), ITEM, NOW, Market(own_history=history)).offer
    first = gate_in_market(
        seen("10.00"), ITEM, NOW, Market(own_history=history, previous=accepted)
    ).offer
    assert first.status == QUARANTINED
    assert first.in_force == accepted.observation
    # A second outlier, far from the first: still held, still the same price in force.
    second = gate_in_market(
        seen("30.00"), ITEM, NOW, Market(own_history=history, previous=first)
    ).offer
    assert second.status == QUARANTINED
    assert second.in_force == accepted.observation
    # Confirmed: the new price is accepted and is the one in force.
    confirmed = gate_in_market(
        seen("30.00"), ITEM, NOW, Market(own_history=history, previous=second)
    ).offer
    assert confirmed.accepted
    assert confirmed.in_force == confirmed.observation
    assert confirmed.last_accepted is None


def test_a_quarantined_offer_without_an_earlier_accepted_one_has_none_in_force() -> None:
    offer = OfferStatus(observation=seen("0.01"), status=QUARANTINED, reason="x", received_at=NOW)
    assert offer.in_force is None
