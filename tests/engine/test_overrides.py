"""Manual overrides: they replace the rules' price until they end, inside the hard bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from pricing_service.engine import CompiledRuleset, ItemFacts, PriceChange, PricingInputs, decide
from pricing_service.engine import schedule as build_schedule
from pricing_service.engine.inputs import PriceOverride
from pricing_service.rules.model import Ruleset

AT = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


def engine(**guardrails: Any) -> CompiledRuleset:
    return CompiledRuleset(
        Ruleset.model_validate(
            {
                "version": "test",
                "timezone": "America/New_York",
                "horizon": "2d",
                "guardrails": guardrails,
                "loop_protection": {"max_same_direction": 2, "max_flips": 2, "window": "24h"},
                "default": {"strategy": {"list_price": True}},
                "rules": [],
            }
        )
    )


def item(**facts: Any) -> ItemFacts:
    defaults = {"sku": "TV-1", "currency": "USD", "list_price": "100.00", "cost": "60.00"}
    return ItemFacts(**{**defaults, **facts})


def override(price: str, hours: float = 6, **extra: Any) -> PriceOverride:
    return PriceOverride(
        price=Decimal(price), until=AT + timedelta(hours=hours), reason="clearance", **extra
    )


def test_an_override_replaces_the_strategy_and_is_recorded() -> None:
    decision = decide(engine(), item(), AT, override=override("79.00"))
    assert decision.price == Decimal("79.00")
    assert decision.strategy == "override"
    assert decision.steps[0].stage == "override"
    assert "clearance" in decision.steps[0].detail
    assert any(used.name == "override" for used in decision.inputs)
    assert decision.valid_until == AT + timedelta(hours=6)


def test_soft_guardrails_rounding_and_loop_protection_do_not_apply() -> None:
    rules = engine(
        max_change="5%",
        max_change_per_day="5%",
        direction="up_only",
        cooldown="1d",
        rounding={"ending": ".99"},
    )
    moves = (
        PriceChange(at=AT - timedelta(hours=3), price=Decimal("90.00")),
        PriceChange(at=AT - timedelta(hours=2), price=Decimal("95.00")),
    )
    facts = item(
        current_price="100.00",
        last_changed_at=AT - timedelta(hours=1),
        recent_changes=(*moves, PriceChange(at=AT - timedelta(hours=1), price=Decimal("100.00"))),
    )
    decision = decide(rules, facts, AT, override=override("72.50"))
    assert decision.price == Decimal("72.50")
    assert decision.guardrails_fired == ()
    assert decision.held_by is None
    assert decision.changed


def test_the_hard_floor_and_ceiling_still_bound_an_override() -> None:
    rules = engine(min_margin="10%", enforce_map=True)
    below_margin = decide(rules, item(), AT, override=override("50.00"))
    assert below_margin.price == Decimal("66.00")
    assert below_margin.guardrails_fired == ("min_margin",)
    above_ceiling = decide(rules, item(max_price="120.00"), AT, override=override("150.00"))
    assert above_ceiling.price == Decimal("120.00")
    assert above_ceiling.guardrails_fired == ("max_price",)
    below_map = decide(rules, item(map_price="80.00"), AT, override=override("70.00"))
    assert below_map.price == Decimal("80.00")
    assert below_map.guardrails_fired == ("map",)


def test_a_forced_override_passes_the_hard_bounds_too() -> None:
    rules = engine(min_margin="10%")
    decision = decide(rules, item(max_price="80.00"), AT, override=override("50.00", force=True))
    assert decision.price == Decimal("50.00")
    assert decision.guardrails_fired == ()
    assert "forced" in decision.steps[0].detail


def test_an_ended_override_is_ignored() -> None:
    decision = decide(engine(), item(), AT, override=override("79.00", hours=-1))
    assert decision.price == Decimal("100.00")
    assert decision.strategy == "list_price"


def test_the_schedule_returns_to_the_rules_when_the_override_ends() -> None:
    inputs = PricingInputs(item=item(current_price="100.00"), override=override("79.00"))
    decisions = build_schedule(engine(max_change="10%"), inputs, AT)
    assert [d.price for d in decisions] == [Decimal("79.00"), Decimal("86.90")]
    assert decisions[0].valid_until == decisions[1].valid_from == AT + timedelta(hours=6)
    # Back under the rules, step limits start from the override's price, the live one.
    assert decisions[1].strategy == "list_price"
    assert decisions[1].guardrails_fired == ("max_change",)


def test_an_override_ending_mid_second_still_ends_the_window() -> None:
    until = AT + timedelta(seconds=0.5)
    inputs = PricingInputs(
        item=item(), override=PriceOverride(price=Decimal("79.00"), until=until, reason="r")
    )
    decisions = build_schedule(engine(), inputs, AT)
    assert [d.price for d in decisions] == [Decimal("79.00"), Decimal("100.00")]
    assert decisions[0].valid_until == AT + timedelta(seconds=1)


def test_override_amounts_must_be_exact_in_the_item_currency() -> None:
    with pytest.raises(ValidationError, match="decimals"):
        PricingInputs(item=item(), override=override("79.001"))
    with pytest.raises(ValidationError):
        override("0")
