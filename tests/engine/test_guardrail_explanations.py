"""The guardrail step names the guardrail whose bound the price was moved to, with that
bound, and the others that fired; both engine paths word it the same."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from pricing_service.engine import (
    CompiledRuleset,
    PriceChange,
    PricingInputs,
    decide,
    decide_batch,
    encode_batch,
)
from pricing_service.engine.batch_explanation import explain_row, row_facts
from pricing_service.engine.decision import decision_to_dict
from pricing_service.engine.inputs import PriceOverride
from tests.engine.test_scenarios import AT, item, rule, ruleset


def _explained(
    engine: CompiledRuleset, **facts: Any
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The single path's decision as a dict, and the batch path's telling of it (None
    where the batch path leaves the explanation to the single path)."""
    inputs = PricingInputs(item=item(**facts))
    single = decision_to_dict(decide(engine, inputs.item, AT))
    columns = encode_batch(engine, [inputs], AT)
    batch = decide_batch(engine, columns, AT)
    facts_row = row_facts(engine, inputs)
    told = explain_row(engine, columns, batch, 0, facts_row, int(AT.timestamp()))
    return single, told


def _guardrail_step(decision: dict[str, Any]) -> dict[str, Any]:
    [step] = [step for step in decision["steps"] if step["stage"] == "guardrail"]
    return step  # type: ignore[no-any-return]


def test_map_raising_a_price_is_named_with_its_floor_and_the_margin_that_also_fired() -> None:
    engine = ruleset([rule({"fixed": "39.00"})], guardrails={"min_margin": "20%"})
    single, told = _explained(
        engine, cost=Decimal("35.00"), map_price=Decimal("45.00"), current_price=Decimal("50.00")
    )
    assert told == single
    assert single["price"] == "45.00"
    assert single["guardrails_fired"] == ["min_margin", "map"]
    assert _guardrail_step(single) == {
        "stage": "guardrail",
        "name": "map",
        "input": "39.00",
        "output": "45.00",
        "detail": "raised to the map floor 45.00 (allowed range 45.00..no ceiling); "
        "also fired: min_margin",
    }


def test_a_ceiling_lowering_a_price_is_named() -> None:
    engine = ruleset([rule({"fixed": "80.00"})])
    single, told = _explained(engine, max_price=Decimal("60.00"))
    assert told == single
    step = _guardrail_step(single)
    assert (step["name"], step["output"]) == ("max_price", "60.00")
    assert step["detail"] == "lowered to the max_price ceiling 60.00 (allowed range 0.01..60.00)"


def test_the_step_limit_is_named_when_it_binds_though_the_margin_fired_too() -> None:
    engine = ruleset(
        [rule({"fixed": "50.00"})], guardrails={"min_margin": "20%", "max_change": "10%"}
    )
    facts = {"current_price": Decimal("100.00")}
    # The margin floor (84.00) is below the step limit's (90.00): the step limit binds.
    single, told = _explained(engine, cost=Decimal("70.00"), **facts)
    assert told == single
    assert single["guardrails_fired"] == ["min_margin", "max_change"]
    step = _guardrail_step(single)
    assert (step["name"], step["output"]) == ("max_change", "90.00")
    assert step["detail"] == (
        "raised to the max_change floor 90.00 (allowed range 90.00..110.00); also fired: min_margin"
    )
    # A dearer cost puts the margin floor (96.00) above it: now the margin binds.
    single, told = _explained(engine, cost=Decimal("80.00"), **facts)
    assert told == single
    step = _guardrail_step(single)
    assert (step["name"], step["output"]) == ("min_margin", "96.00")
    assert step["detail"].endswith("(allowed range 96.00..110.00); also fired: max_change")


def test_a_hard_ceiling_below_a_step_limit_raises_the_price_to_the_ceiling() -> None:
    engine = ruleset(
        [rule({"fixed": "50.00"})], guardrails={"max_change": "10%", "max_price": "80"}
    )
    single, told = _explained(engine, current_price=Decimal("100.00"))
    assert told == single
    assert single["guardrails_fired"] == ["max_change"]
    step = _guardrail_step(single)
    assert (step["name"], step["input"], step["output"]) == ("max_price", "50.00", "80.00")
    assert step["detail"] == (
        "raised to the max_price ceiling 80.00 (allowed range 80.00..80.00); also fired: max_change"
    )


def test_a_guardrail_conflict_names_the_floor_that_won() -> None:
    engine = ruleset([rule({"fixed": "45.00"})])
    bounds = {"min_price": Decimal("50.00"), "max_price": Decimal("40.00")}
    single, told = _explained(engine, **bounds)
    # The batch path leaves conflicts to the single path (its warning quotes both bounds).
    assert told is None
    assert single["price"] == "50.00"
    assert single["warnings"] == [
        "guardrail conflict: floor 50.00 above ceiling 40.00; the floor wins"
    ]
    step = _guardrail_step(single)
    assert step["name"] == "min_price"
    assert step["detail"] == (
        "raised to the min_price floor 50.00 (allowed range 50.00..50.00); "
        "also fired: max_price, conflict"
    )
    # Above both, the floor still wins: the price is lowered to it.
    engine = ruleset([rule({"fixed": "70.00"})])
    single, _ = _explained(engine, **bounds)
    step = _guardrail_step(single)
    assert (step["name"], step["output"]) == ("min_price", "50.00")
    assert step["detail"].startswith("lowered to the min_price floor 50.00 ")


def test_rounding_after_the_clamp_leaves_the_guardrail_step_true() -> None:
    engine = ruleset(
        [rule({"fixed": "30.00"})], guardrails={"rounding": {"ending": ".95", "mode": "nearest"}}
    )
    single, told = _explained(engine, map_price=Decimal("41.99"))
    assert told == single
    # The step says what the guardrail did; the rounding step then moves the price on,
    # up (41.95 is below the MAP floor the guardrail step quotes).
    guardrail, rounding = single["steps"][1:]
    assert guardrail["detail"] == "raised to the map floor 41.99 (allowed range 41.99..no ceiling)"
    assert (rounding["input"], rounding["output"]) == ("41.99", "42.95")
    assert single["price"] == "42.95"


def test_step_limits_that_leave_no_range_hold_the_current_price() -> None:
    engine = ruleset(
        [rule({"fixed": "150.00"})],
        guardrails={"max_change": "10%", "max_change_per_day": "5%"},
    )
    # A day ago 100.00, now 120.00: the day's limit allows 95.00..105.00 and the step
    # limit 108.00..132.00; no price is in both.
    single, told = _explained(
        engine,
        current_price=Decimal("120.00"),
        last_changed_at=AT - timedelta(hours=1),
        recent_changes=(PriceChange(at=AT - timedelta(hours=30), price=Decimal("100.00")),),
    )
    assert told == single
    step = _guardrail_step(single)
    assert (step["name"], step["output"]) == ("step_limits", "120.00")
    assert step["detail"] == (
        "held at the current price 120.00: the step limits leave no range; "
        "also fired: max_change, max_change_per_day"
    )


def test_an_override_bounded_by_map_names_it() -> None:
    engine = ruleset([rule({"fixed": "60.00"})])
    facts = item(map_price=Decimal("45.00"), current_price=Decimal("50.00"))
    override = PriceOverride(
        price=Decimal("30.00"), until=AT + timedelta(days=1), reason="clearance"
    )
    decision = decide(engine, facts, AT, override=override)
    [step] = [step for step in decision.steps if step.stage == "guardrail"]
    assert (step.name, step.output) == ("map", Decimal("45.00"))
    assert step.detail == "raised to the map floor 45.00 (override bounded by 45.00..no ceiling)"
