"""Properties that hold for any valid ruleset and any inputs."""

from __future__ import annotations

from datetime import datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pricing_service.engine import (
    CompiledRuleset,
    PricingInputs,
    Segment,
    decide,
    decide_batch,
    encode_batch,
)
from pricing_service.engine.compiled import CompiledRule
from pricing_service.engine.decision import Decision
from pricing_service.money import RATIO_SCALE, ceil_ratio, floor_ratio, from_minor, to_minor
from pricing_service.rules.model import Ruleset
from tests.engine.strategies import (
    CURRENCIES,
    competitor_rulesets,
    instants,
    pricing_inputs,
    rulesets,
)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
segments = st.sampled_from([None, "channel:web", "channel:app"])


def _decide(
    ruleset: CompiledRuleset, inputs: PricingInputs, at: datetime, segment: str | None
) -> Decision:
    return decide(
        ruleset,
        inputs.item,
        at,
        segment=Segment.parse(segment),
        observations=inputs.observations,
        demand=inputs.demand,
        elasticity=inputs.elasticity,
    )


def _hard_bounds(rule: CompiledRule, inputs: PricingInputs) -> tuple[int, int | None]:
    item, guardrails, currency = inputs.item, rule.guardrails, inputs.item.currency
    floors = [1]
    ceilings = []
    for value in (item.min_price, guardrails.min_price):
        if value is not None:
            floors.append(to_minor(value, currency))
    if guardrails.min_margin_ppm is not None and item.cost is not None:
        floors.append(
            ceil_ratio(to_minor(item.cost, currency), RATIO_SCALE + guardrails.min_margin_ppm)
        )
    if guardrails.enforce_map and item.map_price is not None:
        floors.append(to_minor(item.map_price, currency))
    for value in (item.max_price, guardrails.max_price):
        if value is not None:
            ceilings.append(to_minor(value, currency))
    return max(floors), (min(ceilings) if ceilings else None)


@SETTINGS
@given(
    data=st.data(),
    ruleset=rulesets(),
    at=instants,
    currency=st.sampled_from(CURRENCIES),
    segment=segments,
)
def test_price_respects_every_guardrail(
    data: st.DataObject, ruleset: Ruleset, at: datetime, currency: str, segment: str | None
) -> None:
    compiled = CompiledRuleset(ruleset)
    inputs = data.draw(pricing_inputs(currency, at))
    decision = _decide(compiled, inputs, at, segment)
    item = inputs.item
    if decision.price is None:
        # Only when there is nothing to keep: never a made-up price, never zero.
        assert item.current_price is None
        assert item.list_price is None
        return
    assert decision.price.is_finite()
    price = to_minor(decision.price, currency)
    assert price >= 1, "never zero or negative"
    assert decision.price == from_minor(price, currency), "exact in the currency's minor unit"
    rule = next(r for r in compiled.rules if r.id == decision.rule_id)
    floor, ceiling = _hard_bounds(rule, inputs)
    if ceiling is not None and floor > ceiling:
        assert "conflict" in decision.guardrails_fired
        assert price == floor
        return
    assert price >= floor
    if ceiling is not None:
        assert price <= ceiling
    if rule.guardrails.enforce_map and item.map_price is not None:
        assert decision.price >= item.map_price
    current = None if item.current_price is None else to_minor(item.current_price, currency)
    step = rule.guardrails.max_change_ppm
    if (
        current is not None
        and step is not None
        and floor <= current
        and (ceiling is None or current <= ceiling)
    ):
        # The current price is allowed, so the step limit holds too.
        assert (
            ceil_ratio(current, RATIO_SCALE - step)
            <= price
            <= floor_ratio(current, RATIO_SCALE + step)
        )


@SETTINGS
@given(
    data=st.data(),
    ruleset=rulesets(),
    at=instants,
    currency=st.sampled_from(CURRENCIES),
    segment=segments,
)
def test_decisions_are_deterministic(
    data: st.DataObject, ruleset: Ruleset, at: datetime, currency: str, segment: str | None
) -> None:
    inputs = data.draw(pricing_inputs(currency, at))
    first = _decide(CompiledRuleset(ruleset), inputs, at, segment)
    second = _decide(CompiledRuleset(ruleset), inputs, at, segment)
    assert first == second


@SETTINGS
@given(
    data=st.data(),
    ruleset=rulesets(),
    at=instants,
    currency=st.sampled_from(CURRENCIES),
    segment=segments,
)
def test_batch_and_single_paths_agree(
    data: st.DataObject, ruleset: Ruleset, at: datetime, currency: str, segment: str | None
) -> None:
    _assert_paths_agree(data, ruleset, at, currency, segment)


@SETTINGS
@given(
    data=st.data(), ruleset=competitor_rulesets(), at=instants, currency=st.sampled_from(CURRENCIES)
)
def test_batch_and_single_agree_on_competitor_references_and_rounding(
    data: st.DataObject, ruleset: Ruleset, at: datetime, currency: str
) -> None:
    _assert_paths_agree(data, ruleset, at, currency, None)


def _assert_paths_agree(
    data: st.DataObject, ruleset: Ruleset, at: datetime, currency: str, segment: str | None
) -> None:
    compiled = CompiledRuleset(ruleset)
    items = data.draw(st.lists(pricing_inputs(currency, at), min_size=1, max_size=8))
    batch = decide_batch(
        compiled, encode_batch(compiled, items, at), at, segment=Segment.parse(segment)
    )
    for index, inputs in enumerate(items):
        single = _decide(compiled, inputs, at, segment)
        summary = batch.summary(index, compiled)
        expected = {
            "sku": single.sku,
            "price": single.price,
            "rule_id": single.rule_id,
            "strategy": single.strategy,
            "guardrails_fired": single.guardrails_fired,
            "held_by": single.held_by,
            "valid_until": None
            if single.valid_until is None
            else int(single.valid_until.timestamp()),
            "adjustments": tuple(step.name for step in single.steps if step.stage == "adjustment"),
        }
        assert summary == expected, f"item {index}: {inputs.model_dump_json()}"
