"""Loop test: "beat the lowest by 1%" against "stay 27% above", both priced by the engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any

from pricing_service.engine import CompiledRuleset, Decision, ItemFacts
from pricing_service.rules.model import Ruleset
from pricing_service.simulate.duel import Seller, duel

START = datetime(2026, 5, 4, tzinfo=UTC)
FLOOR, CEILING = Decimal("60.00"), Decimal("400.00")
ROUNDS, EVERY = 24 * 14, timedelta(hours=1)  # two weeks of hourly repricing


def _seller(name: str, rival: str, action: dict[str, Any], *, protected: bool) -> Seller:
    ruleset = Ruleset.model_validate(
        {
            "version": f"duel-{name}",
            "timezone": "UTC",
            "competitors": {rival: {"name": rival}},
            "guardrails": {"min_price": str(FLOOR), "max_price": str(CEILING), "max_change": "15%"},
            "loop_protection": {"enabled": protected, "max_same_direction": 4, "max_flips": 4},
            "default": {
                "id": f"{name}-rule",
                "strategy": {"competitor": {"reference": "lowest", **action}},
            },
        }
    )
    item = ItemFacts(
        sku="SHARED-1",
        currency="USD",
        cost=Decimal("50.00"),
        current_price=Decimal("100.00"),
        last_changed_at=START - timedelta(days=2),
    )
    return Seller(name, CompiledRuleset(ruleset), item)


def _duel(*, protected: bool) -> list[tuple[Decision, Decision]]:
    beat = _seller("beater", "climber", {"action": "beat", "by": "1%"}, protected=protected)
    above = _seller("climber", "beater", {"action": "stay_above", "by": "27%"}, protected=protected)
    return duel(beat, above, START, ROUNDS, EVERY)


def _decisions(rounds: list[tuple[Decision, Decision]]) -> list[Decision]:
    return [decision for pair in rounds for decision in pair]


def test_prices_stay_between_the_floor_and_the_ceiling() -> None:
    for decision in _decisions(_duel(protected=True)):
        assert decision.price is not None
        assert FLOOR <= decision.price <= CEILING


def test_loop_detection_flags_the_escalation_and_explains_it() -> None:
    decisions = _decisions(_duel(protected=True))
    held = [d for d in decisions if d.held_by is not None]
    assert held, "the engine must flag the spiral"
    assert {d.held_by for d in held} == {"escalation"}
    for decision in held:
        [step] = [s for s in decision.steps if s.stage == "loop_breaker"]
        assert step.name == "escalation"
        assert "escalation detected in recent changes" in step.detail
        assert step.output != step.input, "the held price is the current one, not the rule's"
        assert "loop breaker: escalation" in decision.warnings
        assert any(used.name.startswith("competitor:") for used in decision.inputs)


def test_no_seller_moves_the_same_way_more_than_allowed_within_a_day() -> None:
    for seller_index in (0, 1):
        rounds = _duel(protected=True)
        prices = [Decimal("100.00")] + [pair[seller_index].price or 0 for pair in rounds]
        raises = [b > a for a, b in pairwise(prices)]
        for start in range(len(raises) - 24):
            assert sum(raises[start : start + 24]) < 4, "at most 3 rises in any 24 hours"


def test_loop_protection_slows_the_spiral_it_cannot_forbid() -> None:
    unprotected = [pair[1].price for pair in _duel(protected=False)]
    protected = [pair[1].price for pair in _duel(protected=True)]
    # Without protection the climber reaches the ceiling within a day ...
    assert unprotected[23] == CEILING
    # ... with it, the climb is held for most of each day, and never passes the ceiling.
    assert protected[23] is not None
    assert protected[23] < CEILING / 2
    assert max(p or 0 for p in protected) <= CEILING
