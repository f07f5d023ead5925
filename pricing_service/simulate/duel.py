"""Two sellers, both priced by this engine, reacting to each other round after round.

Each round the first seller reprices seeing the second's current price as a competitor
offer, then the second reprices seeing the first's new price. Every decision is kept
with its explanation, so a test (or an analyst) can see where loop protection held a
price and why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from pricing_service.engine import (
    CompetitorObservation,
    CompiledRuleset,
    Decision,
    ItemFacts,
    PriceChange,
    decide,
)


@dataclass
class Seller:
    """One seller's name (its competitor id for the other), rules and item."""

    name: str
    ruleset: CompiledRuleset
    item: ItemFacts

    @property
    def price(self) -> Decimal:
        assert self.item.current_price is not None
        return self.item.current_price

    def observed_by_rival(self, at: datetime) -> CompetitorObservation:
        return CompetitorObservation(
            competitor=self.name,
            price=self.price,
            currency=self.item.currency,
            observed_at=at,
            source="duel",
        )

    def reprice(self, rival: Seller, at: datetime) -> Decision:
        decision = decide(self.ruleset, self.item, at, observations=[rival.observed_by_rival(at)])
        if decision.price is not None and decision.price != self.price:
            changes = self.item.recent_changes
            if not changes and self.item.last_changed_at is not None:
                # Keep the opening price, or the first move would not count as a move.
                changes = (PriceChange(at=self.item.last_changed_at, price=self.price),)
            changes = (*changes, PriceChange(at=at, price=decision.price))
            self.item = self.item.model_copy(
                update={
                    "current_price": decision.price,
                    "last_changed_at": at,
                    # The engine only looks back one loop-protection window.
                    "recent_changes": changes[-50:],
                }
            )
        return decision


def duel(
    first: Seller, second: Seller, start: datetime, rounds: int, every: timedelta
) -> list[tuple[Decision, Decision]]:
    """``rounds`` rounds, ``every`` apart; each seller's decision per round."""
    history = []
    for round_number in range(rounds):
        at = start + round_number * every
        first_decision = first.reprice(second, at)
        second_decision = second.reprice(first, at + every / 2)
        history.append((first_decision, second_decision))
    return history
