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
from pricing_service.engine.compiled import BOUND_NAMES, STEP_LIMITS, CompiledRule
from pricing_service.engine.decision import Decision
from pricing_service.engine.history import move_history
from pricing_service.engine.single import NO_CEILING, round_price
from pricing_service.money import RATIO_SCALE, ceil_ratio, floor_ratio, from_minor, to_minor
from pricing_service.rules.model import Ruleset
from tests.engine.strategies import (
    CURRENCIES,
    clamped_inputs,
    clamped_rulesets,
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
        # Which guardrail bound the price, for every row: the explanations' property test
        # compares the rows batch_explanation tells, and it leaves out conflicts.
        guarded = int(batch.guarded_price[index])
        low, high = int(batch.low[index]), int(batch.high[index])
        named = [step.name for step in single.steps if step.stage == "guardrail"]
        if named:
            codes = batch.low_by if guarded < low else batch.high_by
            assert [BOUND_NAMES[int(codes[index])]] == named, f"item {index}"
        else:
            assert single.price is None or low <= guarded <= high


def _own_bound(rule: CompiledRule, inputs: PricingInputs, at: datetime, name: str, up: bool) -> int:
    """The bound guardrail ``name`` alone sets on the side the price was moved from
    (``up``: a floor), computed afresh from the item rather than by the engine."""
    item, guardrails, currency = inputs.item, rule.guardrails, inputs.item.currency
    current = None if item.current_price is None else to_minor(item.current_price, currency)
    if name == "min_price":
        floors = [to_minor(v, currency) for v in (item.min_price, guardrails.min_price) if v]
        return max([1, *floors])
    if name == "max_price":
        return min(to_minor(v, currency) for v in (item.max_price, guardrails.max_price) if v)
    if name == "min_margin":
        assert item.cost is not None
        assert guardrails.min_margin_ppm is not None
        return ceil_ratio(to_minor(item.cost, currency), RATIO_SCALE + guardrails.min_margin_ppm)
    if name == "map":
        assert item.map_price is not None
        return to_minor(item.map_price, currency)
    assert current is not None, "a soft guardrail needs a price in force"
    if name in ("direction", "cooldown", STEP_LIMITS):
        return current
    if name == "max_change":
        base, step = current, guardrails.max_change_ppm
    else:
        assert name == "max_change_per_day"
        # The price a day ago does not depend on the loop protection's window.
        base = move_history(item, int(at.timestamp()), 0).price_day_ago
        step = guardrails.max_change_per_day_ppm
    assert base is not None
    assert step is not None
    return ceil_ratio(base, RATIO_SCALE - step) if up else floor_ratio(base, RATIO_SCALE + step)


@SETTINGS
@given(
    data=st.data(),
    ruleset=rulesets(),
    at=instants,
    currency=st.sampled_from(CURRENCIES),
    segment=segments,
)
def test_the_guardrail_step_names_the_guardrail_whose_bound_the_price_moved_to(
    data: st.DataObject, ruleset: Ruleset, at: datetime, currency: str, segment: str | None
) -> None:
    _assert_names_the_bound(CompiledRuleset(ruleset), data.draw(pricing_inputs(currency, at)), at)


@SETTINGS
@given(
    data=st.data(), ruleset=clamped_rulesets(), at=instants, currency=st.sampled_from(CURRENCIES)
)
def test_the_guardrail_step_names_the_bound_under_tight_guardrails(
    data: st.DataObject, ruleset: Ruleset, at: datetime, currency: str
) -> None:
    _assert_names_the_bound(CompiledRuleset(ruleset), data.draw(clamped_inputs(currency, at)), at)


def _assert_names_the_bound(compiled: CompiledRuleset, inputs: PricingInputs, at: datetime) -> None:
    currency = inputs.item.currency
    decision = _decide(compiled, inputs, at, None)
    steps = [step for step in decision.steps if step.stage == "guardrail"]
    if not steps:
        return
    [step] = steps
    assert step.input is not None
    assert step.output is not None
    rule = next(r for r in compiled.rules if r.id == decision.rule_id)
    moved_to = to_minor(step.output, currency)
    up = step.output > step.input
    if step.name == STEP_LIMITS:
        assert inputs.item.current_price == step.output
    else:
        assert step.name in BOUND_NAMES
        # A hard bound that wins over a soft limit on the other side keeps its kind: the
        # max_price ceiling raises a price a step limit would push above it.
        floor = {"max_price": False, "min_price": True, "min_margin": True, "map": True}
        assert _own_bound(rule, inputs, at, step.name, floor.get(step.name, up)) == moved_to
        assert (
            step.name in decision.guardrails_fired
            or "conflict" in decision.guardrails_fired
            or (f"{step.output}..{step.output})" in step.detail)
        ), "a guardrail that did not fire binds only a range of one price"
    others = [name for name in decision.guardrails_fired if name != step.name]
    if others:
        assert step.detail.endswith("; also fired: " + ", ".join(others))
    else:
        assert "also fired" not in step.detail


@SETTINGS
@given(
    data=st.data(), ruleset=clamped_rulesets(), at=instants, currency=st.sampled_from(CURRENCIES)
)
def test_rounding_never_holds_a_price_the_guardrails_move(
    data: st.DataObject, ruleset: Ruleset, at: datetime, currency: str
) -> None:
    compiled = CompiledRuleset(ruleset)
    items = data.draw(st.lists(clamped_inputs(currency, at), min_size=1, max_size=8))
    batch = decide_batch(compiled, encode_batch(compiled, items, at), at)
    for index, inputs in enumerate(items):
        decision = _decide(compiled, inputs, at, None)
        item = inputs.item
        if decision.price is None or item.current_price is None:
            continue
        current = to_minor(item.current_price, currency)
        target = int(batch.guarded_price[index])
        clamped = min(max(target, int(batch.low[index])), int(batch.high[index]))
        if clamped == current:
            continue  # a hold the guardrails or the loop breaker want
        rule = next(r for r in compiled.rules if r.id == decision.rule_id)
        rounding = rule.guardrails.rounding
        if rounding is not None:
            own, _ = round_price(compiled, rounding, target, 1, NO_CEILING, currency)
            if own == current:
                continue  # the target itself rounds to the current price
        assert to_minor(decision.price, currency) != current, f"item {index}"
