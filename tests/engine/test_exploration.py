"""Exploration: a bounded, deterministic perturbation and Thompson sampling, per rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pricing_service.engine import (
    CompiledRuleset,
    ElasticityEstimate,
    ItemFacts,
    PricingInputs,
    decide,
    decide_batch,
    encode_batch,
)
from pricing_service.rules.model import Exploration, Ruleset
from tests.engine.strategies import CURRENCIES, instants, rulesets
from tests.engine.test_properties import _assert_paths_agree

AT = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


def _ruleset(default: dict[str, Any], **settings: Any) -> CompiledRuleset:
    spec = {"version": "v1", "timezone": "UTC", "default": default, **settings}
    return CompiledRuleset(Ruleset.model_validate(spec))


def _item(sku: str, **extra: Any) -> ItemFacts:
    return ItemFacts.model_validate(
        {"sku": sku, "currency": "USD", "cost": "10.00", "list_price": "20.00", **extra}
    )


PERTURBED = {"strategy": {"list_price": True}, "exploration": {"perturbation": "10%"}}


def test_the_perturbation_is_bounded_varied_and_explained() -> None:
    ruleset = _ruleset(PERTURBED)
    prices = []
    for number in range(200):
        decision = decide(ruleset, _item(f"SKU-{number}"), AT)
        assert decision.price is not None
        assert Decimal("18.00") <= decision.price <= Decimal("22.00")
        prices.append(decision.price)
        [step] = [s for s in decision.steps if s.stage == "exploration"]
        assert step.input == Decimal("20.00")
        assert step.output == decision.price
        assert "within ±10%" in step.detail
        assert "seed v1" in step.detail
    assert len(set(prices)) > 150, "different SKUs explore different prices"
    assert min(prices) < Decimal("18.50")
    assert max(prices) > Decimal("21.50")


def test_a_draw_holds_for_its_period_and_changes_with_the_next() -> None:
    ruleset = _ruleset(PERTURBED)
    item = _item("SKU-1")
    midnight = datetime(2026, 3, 4, tzinfo=UTC)
    same_day = {decide(ruleset, item, midnight + timedelta(hours=h)).price for h in range(24)}
    assert len(same_day) == 1, "one draw per (daily) period: a replay gives the same price"
    days = {decide(ruleset, item, midnight + timedelta(days=d)).price for d in range(30)}
    assert len(days) > 20


def test_the_seed_changes_the_draws() -> None:
    seeded = _ruleset({**PERTURBED, "exploration": {"perturbation": "10%", "seed": "other"}})
    unseeded = _ruleset(PERTURBED)
    items = [_item(f"SKU-{n}") for n in range(20)]
    assert [decide(seeded, i, AT).price for i in items] != [
        decide(unseeded, i, AT).price for i in items
    ]


def test_guardrails_still_run_last() -> None:
    ruleset = _ruleset(PERTURBED, guardrails={"max_price": "20.50", "min_price": "19.50"})
    for number in range(100):
        decision = decide(ruleset, _item(f"SKU-{number}"), AT)
        assert decision.price is not None
        assert Decimal("19.50") <= decision.price <= Decimal("20.50")


def test_off_by_default() -> None:
    ruleset = _ruleset({"strategy": {"list_price": True}})
    decision = decide(ruleset, _item("SKU-1"), AT)
    assert decision.price == Decimal("20.00")
    assert not [s for s in decision.steps if s.stage == "exploration"]


THOMPSON = {
    "strategy": {"elasticity": {"min_observations": 10, "max_standard_error": "0.5"}},
    "exploration": {"thompson": True},
}


def test_thompson_prices_from_a_posterior_draw() -> None:
    ruleset = _ruleset(THOMPSON)
    sharp = ElasticityEstimate(elasticity=-2.0, standard_error=0.0, observations=50)
    wide = ElasticityEstimate(elasticity=-2.0, standard_error=0.3, observations=50)
    # With no uncertainty the draw is the estimate: p* = 10 * 2 = 20.
    assert decide(ruleset, _item("SKU-1"), AT, elasticity=sharp).price == Decimal("20.00")
    prices = set()
    for number in range(100):
        decision = decide(ruleset, _item(f"SKU-{number}"), AT, elasticity=wide)
        assert decision.price is not None
        prices.add(decision.price)
        [step] = [s for s in decision.steps if s.stage in ("strategy", "fallback")]
        if step.stage == "strategy":
            assert "Thompson draw" in step.detail
            # A draw within 3 standard errors: e in [-2.9, -1.1] -> p* in [15.26, 110].
            assert Decimal("15.26") <= decision.price <= Decimal("110.00")
    assert len(prices) > 50


def test_exploration_must_say_what_it_does() -> None:
    with pytest.raises(ValidationError, match="needs `perturbation` or `thompson"):
        Exploration.model_validate({})
    with pytest.raises(ValidationError, match="between 0%"):
        Exploration.model_validate({"perturbation": "60%"})
    with pytest.raises(ValidationError, match="needs an elasticity strategy"):
        _ruleset({"strategy": {"list_price": True}, "exploration": {"thompson": True}})


def _with_exploration(ruleset: Ruleset, exploration: Exploration) -> Ruleset:
    def explore(rule: Any) -> Any:
        chain = [rule.strategy, *rule.fallback]
        thompson = exploration.thompson and any(s.elasticity is not None for s in chain)
        own = exploration.model_copy(update={"thompson": thompson})
        if own.perturbation is None and not own.thompson:
            return rule
        return rule.model_copy(update={"exploration": own})

    return ruleset.model_copy(
        update={
            "rules": [explore(rule) for rule in ruleset.rules],
            "default": explore(ruleset.default),
        }
    )


explorations = st.builds(
    lambda perturbation, thompson, period: Exploration.model_validate(
        {"perturbation": perturbation, "thompson": thompson, "period": period}
    ),
    st.sampled_from(["0.5%", "5%", "12.5%", "50%"]),
    st.booleans(),
    st.sampled_from(["1h", "1d", "7d"]),
) | st.builds(
    lambda period: Exploration.model_validate({"thompson": True, "period": period}),
    st.sampled_from(["1h", "1d"]),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    ruleset=rulesets(),
    exploration=explorations,
    at=instants,
    currency=st.sampled_from(CURRENCIES),
    segment=st.sampled_from([None, "channel:web"]),
)
def test_batch_and_single_paths_agree_with_exploration(
    data: st.DataObject,
    ruleset: Ruleset,
    exploration: Exploration,
    at: datetime,
    currency: str,
    segment: str | None,
) -> None:
    _assert_paths_agree(data, _with_exploration(ruleset, exploration), at, currency, segment)


def test_batch_and_single_agree_on_many_thompson_draws() -> None:
    ruleset = _ruleset(
        {**THOMPSON, "exploration": {"thompson": True, "perturbation": "5%"}},
        guardrails={"rounding": {"ending": ".99"}},
    )
    items = [
        PricingInputs(
            item=_item(f"SKU-{n}"),
            elasticity=ElasticityEstimate(
                elasticity=-1.2 - n / 50, standard_error=(n % 9) / 20, observations=40
            ),
        )
        for n in range(300)
    ]
    batch = decide_batch(ruleset, encode_batch(ruleset, items, AT), AT)
    for index, entry in enumerate(items):
        single = decide(ruleset, entry.item, AT, elasticity=entry.elasticity)
        assert batch.summary(index, ruleset)["price"] == single.price
        assert batch.summary(index, ruleset)["strategy"] == single.strategy
