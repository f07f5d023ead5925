"""The field's hard lessons, replayed against the engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from pricing_service.engine import (
    CompetitorObservation,
    CompiledRuleset,
    DemandStats,
    ElasticityEstimate,
    ItemFacts,
    PriceChange,
    PricingInputs,
    Segment,
    decide,
    schedule,
)
from pricing_service.rules.model import Ruleset

AT = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


def ruleset(rules: list[dict[str, Any]], **settings: Any) -> CompiledRuleset:
    spec: dict[str, Any] = {
        "version": "test",
        "timezone": "America/New_York",
        "competitors": {
            "rival": {"name": "Rival"},
            "other": {"name": "Other"},
            "sister": {"name": "Sister store", "ours": True},
        },
        "segments": {"channel": ["web", "app"], "tier": ["member"]},
        "default": {"strategy": {"keep_current": True}},
        "rules": rules,
        **settings,
    }
    return CompiledRuleset(Ruleset.model_validate(spec))


def rule(strategy: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": "r",
        "description": "d",
        "owner": "o",
        "priority": 1,
        "strategy": strategy,
        **extra,
    }


def offer(
    price: str, competitor: str = "rival", hours_ago: float = 1, **extra: Any
) -> CompetitorObservation:
    return CompetitorObservation(
        competitor=competitor,
        price=Decimal(price),
        currency="USD",
        observed_at=AT - timedelta(hours=hours_ago),
        **extra,
    )


def item(**facts: Any) -> ItemFacts:
    return ItemFacts(**{"sku": "BOOK-1", "currency": "USD", **facts})


def test_two_chasing_repricers_do_not_run_away() -> None:
    """Two sellers each pricing 27% above the other drove a book to $23,698,655.93."""
    engine = ruleset(
        [
            rule(
                {
                    "competitor": {
                        "reference": "competitor",
                        "competitor": "rival",
                        "action": "stay_above",
                        "by": "27%",
                    }
                }
            )
        ],
        loop_protection={"max_same_direction": 3, "max_flips": 4},
    )
    price, rival = Decimal("100.00"), Decimal("100.00")
    changes: list[PriceChange] = []
    moment = AT
    for _ in range(20):
        moment += timedelta(hours=1)
        decision = decide(
            engine,
            item(
                current_price=price,
                last_changed_at=moment - timedelta(hours=1),
                recent_changes=tuple(changes),
            ),
            moment,
            observations=[offer(str(rival), hours_ago=0)],
        )
        assert decision.price is not None
        if decision.price != price:
            changes.append(PriceChange(at=moment, price=decision.price))
        price = decision.price
        rival = (price * Decimal("0.9983")).quantize(
            Decimal("0.01")
        )  # the other seller undercuts us
    assert price < Decimal("300.00")
    assert decision.held_by == "escalation"


def test_missing_inputs_never_become_a_zero_price() -> None:
    """The 1p bug: a cost-plus rule with no cost must not price at zero."""
    engine = ruleset([rule({"cost_plus": "30%"})])
    decision = decide(engine, item(current_price=Decimal("24.99")), AT)
    assert decision.price == Decimal("24.99")
    assert decision.strategy == "fallback:keep_current"
    assert any("no cost" in warning for warning in decision.warnings)


@pytest.mark.parametrize(
    ("facts", "price", "resort"),
    [
        (
            {"current_price": Decimal("24.99"), "list_price": Decimal("30.00")},
            "24.99",
            "keep_current",
        ),
        ({"list_price": Decimal("30.00")}, "30.00", "list_price"),
        ({}, None, None),
    ],
)
def test_a_price_taken_below_zero_is_not_published_as_one_cent(
    facts: dict[str, Any], price: str | None, resort: str | None
) -> None:
    """The 1p bug again: "-20" written for "-20%" on a 10.00 price computed -10.00, which
    the floor of one minor unit published as 0.01."""
    from pricing_service.engine import decide_batch, encode_batch

    engine = ruleset([rule({"fixed": "10.00"}, adjustments=[{"id": "promo", "change": -20}])])
    described = item(**facts)
    single = decide(engine, described, AT)
    batch = decide_batch(engine, encode_batch(engine, [PricingInputs(item=described)], AT), AT)
    expected = None if price is None else Decimal(price)
    assert single.price == expected  # a last resort, or none at all: never 0.01
    assert batch.summary(0, engine)["price"] == expected
    used = "no price" if resort is None else f"the {resort.replace('_', ' ')} is used"
    assert single.warnings == (f"not a price: the rules computed -10.00 USD; {used}",)
    if resort is not None:
        assert (single.steps[-1].stage, single.steps[-1].name) == ("fallback", resort)


def test_no_price_at_all_is_reported_not_invented() -> None:
    engine = ruleset([rule({"cost_plus": "30%"})])
    decision = decide(engine, item(), AT)
    assert decision.price is None
    assert decision.warnings


def test_our_own_and_sister_stores_never_count() -> None:
    """A rule that undercut its own offer every hour."""
    engine = ruleset([rule({"competitor": {"action": "beat", "by": "1%"}})])
    decision = decide(
        engine,
        item(current_price=Decimal("50.00")),
        AT,
        observations=[offer("40.00", competitor="sister"), offer("48.00")],
    )
    assert decision.price == Decimal("47.52")


def test_stale_and_out_of_stock_offers_fall_back() -> None:
    engine = ruleset([rule({"competitor": {"max_age": "6h"}}, fallback=[{"cost_plus": "50%"}])])
    decision = decide(
        engine,
        item(cost=Decimal("10.00"), current_price=Decimal("14.00")),
        AT,
        observations=[
            offer("9.00", hours_ago=7),
            offer("8.00", competitor="other", in_stock=False),
        ],
    )
    assert decision.price == Decimal("15.00")
    assert decision.strategy == "fallback:cost_plus"


def test_lowest_landed_in_stock_includes_shipping() -> None:
    engine = ruleset([rule({"competitor": {"reference": "lowest_landed_in_stock"}})])
    decision = decide(
        engine,
        item(current_price=Decimal("30.00")),
        AT,
        observations=[
            offer("25.00", shipping=Decimal("6.00")),
            offer("28.00", competitor="other", shipping=Decimal("0.00")),
        ],
    )
    assert decision.price == Decimal("28.00")


def test_median_of_an_even_count_rounds_half_up() -> None:
    engine = ruleset([rule({"competitor": {"reference": "median"}})])
    decision = decide(
        engine,
        item(current_price=Decimal("10.00")),
        AT,
        observations=[offer("10.00"), offer("10.01", competitor="other")],
    )
    assert decision.price == Decimal("10.01")


@pytest.mark.parametrize(
    ("guardrails", "expected", "fired"),
    [
        ({"max_change": "10%"}, Decimal("90.00"), ("max_change",)),
        ({"min_margin": "20%"}, Decimal("84.00"), ("min_margin",)),
        ({"direction": "up_only"}, Decimal("100.00"), ("direction",)),
        ({"cooldown": "2h"}, Decimal("100.00"), ("cooldown",)),
        ({"min_price": "95", "max_change": "2%"}, Decimal("98.00"), ("min_price", "max_change")),
    ],
)
def test_guardrails_clamp_and_report(
    guardrails: dict[str, str], expected: Decimal, fired: tuple[str, ...]
) -> None:
    engine = ruleset([rule({"fixed": "50.00"})], guardrails=guardrails)
    decision = decide(
        engine,
        item(
            cost=Decimal("70.00"),
            current_price=Decimal("100.00"),
            last_changed_at=AT - timedelta(hours=1),
        ),
        AT,
    )
    assert decision.price == expected
    assert decision.guardrails_fired == fired


def test_map_beats_a_competitor_match() -> None:
    engine = ruleset([rule({"competitor": {}})])
    decision = decide(
        engine,
        item(map_price=Decimal("45.00"), current_price=Decimal("50.00")),
        AT,
        observations=[offer("39.00")],
    )
    assert decision.price == Decimal("45.00")
    assert decision.guardrails_fired == ("map",)


@pytest.mark.parametrize(
    ("rounding", "currency", "price", "expected"),
    [
        ({"ending": ".99"}, "USD", "23.41", "22.99"),
        ({"ending": ".99"}, "USD", "23.60", "23.99"),
        ({"ending": ".95", "mode": "down"}, "USD", "23.99", "23.95"),
        ({"ending": "9"}, "JPY", "1234", "1239"),
        ({"ending": ".99"}, "JPY", "1234", "1234"),
        ({"price_points": ["9.99", "14.99", "19.99"]}, "USD", "13.00", "14.99"),
        ({"ending": ".990"}, "KWD", "4.123", "3.990"),
    ],
)
def test_rounding(rounding: dict[str, Any], currency: str, price: str, expected: str) -> None:
    engine = ruleset([rule({"fixed": price})], guardrails={"rounding": rounding})
    decision = decide(engine, ItemFacts(sku="X", currency=currency), AT)
    assert decision.price == Decimal(expected)


def test_segments_are_conditions_and_default_gets_the_default_price() -> None:
    engine = ruleset([rule({"discount": "10%"}, match={"segment": {"tier": "member"}})])
    facts = item(list_price=Decimal("20.00"), current_price=Decimal("20.00"))
    assert decide(engine, facts, AT).price == Decimal("20.00")
    member = decide(engine, facts, AT, segment=Segment.parse("tier:member,channel:app"))
    assert member.price == Decimal("18.00")
    assert member.segment == "channel:app,tier:member"


def test_elasticity_hook_uses_the_profit_optimum_and_falls_back_when_uncertain() -> None:
    engine = ruleset(
        [
            rule(
                {"elasticity": {"max_standard_error": "0.3", "min_observations": 10}},
                fallback=[{"cost_plus": "40%"}],
            )
        ]
    )
    facts = item(cost=Decimal("30.00"), current_price=Decimal("45.00"))
    good = ElasticityEstimate(elasticity=-3.0, standard_error=0.1, observations=100)
    optimal = decide(engine, facts, AT, elasticity=good)
    assert optimal.price == Decimal("45.00")  # 30·3/2
    # The explanation names both inputs of p* = c·e/(1+e), the cost once.
    named = [used.name for used in optimal.inputs]
    assert (named.count("cost"), named.count("elasticity")) == (1, 1)
    vague = ElasticityEstimate(elasticity=-3.0, standard_error=0.9, observations=100)
    fallen = decide(engine, facts, AT, elasticity=vague)
    assert fallen.strategy == "fallback:cost_plus"
    assert [used.name for used in fallen.inputs].count("cost") == 1
    inelastic = ElasticityEstimate(elasticity=-0.8, standard_error=0.1, observations=100)
    assert decide(engine, facts, AT, elasticity=inelastic).strategy == "fallback:cost_plus"


def test_demand_adjustment_applies_only_when_signals_hold() -> None:
    engine = ruleset(
        [
            rule(
                {"fixed": "100.00"},
                adjustments=[
                    {
                        "id": "hot",
                        "signals": {
                            "velocity_ratio": {"above": 1.5},
                            "days_of_supply": {"below": 14},
                        },
                        "change": "+5%",
                    }
                ],
            )
        ]
    )
    hot = DemandStats(velocity_7d=9, velocity_28d=4, days_of_supply=5)
    cold = DemandStats(velocity_7d=1, velocity_28d=4, days_of_supply=50)
    assert decide(engine, item(), AT, demand=hot).price == Decimal("105.00")
    assert decide(engine, item(), AT, demand=cold).price == Decimal("100.00")
    assert decide(engine, item(), AT).price == Decimal("100.00")


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ("-20%", "-20%: Slow stock, 20% off."),
        # A bare number is an amount: the explanation says so, next to the text that
        # meant a percentage, rather than repeating the description alone.
        (-20, "-20 JPY: Slow stock, 20% off."),
        ("+2.5%", "+2.5%: Slow stock, 20% off."),
    ],
)
def test_an_adjustment_step_says_what_it_applied_then_why(change: Any, detail: str) -> None:
    adjustment = {"id": "slow", "description": "Slow stock, 20% off.", "change": change}
    engine = ruleset([rule({"fixed": "1000"}, adjustments=[adjustment])])
    decision = decide(engine, item(currency="JPY"), AT)
    [step] = [step for step in decision.steps if step.stage == "adjustment"]
    assert step.detail == detail
    without = {"id": "slow", "change": change}
    bare = decide(ruleset([rule({"fixed": "1000"}, adjustments=[without])]), item(), AT)
    assert bare.steps[1].detail == "slow: " + detail.split(":")[0].replace("JPY", "USD")


def test_schedule_switches_exactly_at_the_window_boundary() -> None:
    engine = ruleset(
        [rule({"discount": "20%"}, when={"days": ["sat", "sun"]})],
        default={"strategy": {"list_price": True}},
    )
    facts = item(list_price=Decimal("50.00"), current_price=Decimal("50.00"))
    friday_noon = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)  # 12:00 in New York
    windows = schedule(engine, PricingInputs(item=facts), friday_noon)
    assert windows[0].price == Decimal("50.00")
    # Saturday 00:00 in New York is 05:00 UTC (EST, UTC-5).
    assert windows[0].valid_until == datetime(2026, 11, 21, 5, 0, tzinfo=UTC)
    assert windows[1].price == Decimal("40.00")
    assert windows[1].rule_id == "r"
    assert windows[1].valid_until == datetime(2026, 11, 23, 5, 0, tzinfo=UTC)


def test_extreme_amounts_agree_across_paths_without_overflow() -> None:
    """An elasticity just below -1 means a huge profit-optimal price: both paths cap it
    the same way instead of wrapping around in int64."""
    from pricing_service.engine import decide_batch, encode_batch

    engine = ruleset([], default={"strategy": {"elasticity": {"min_observations": 1}}})
    inputs = [
        PricingInputs(
            item=ItemFacts(sku="BIG", currency="USD", cost=Decimal("5000000.00")),
            elasticity=ElasticityEstimate(elasticity=-1.0001, standard_error=0.1, observations=100),
        ),
        PricingInputs(
            item=ItemFacts(
                sku="CLF",
                currency="CLF",
                cost=Decimal("9999999.9999"),
                list_price=Decimal("9999999.9999"),
            )
        ),
    ]
    for entry in inputs:
        single = decide(engine, entry.item, AT, elasticity=entry.elasticity)
        batch = decide_batch(engine, encode_batch(engine, [entry], AT), AT)
        assert batch.summary(0, engine)["price"] == single.price
        assert single.price is not None
        assert single.price > 0
