"""Rounding never holds a price the guardrails let move: the low-price trap.

With a ".99" ending and a 15% step limit, a 2.99 item's allowed range (2.55..3.43) holds
no .99 price but 2.99 itself, so rounding the bounded price gave the current price back on
every reprice and the item never moved toward its target."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pytest

from pricing_service.engine import (
    DEFAULT_SEGMENT,
    CompiledRuleset,
    Decision,
    ItemFacts,
    PriceChange,
    PricingInputs,
    decide,
    decide_batch,
    encode_batch,
)
from pricing_service.engine.batch_explanation import explain_row, row_facts
from pricing_service.engine.decision import decision_to_dict
from tests.engine.test_scenarios import AT, ruleset

#: The shipped guardrails (rules/pricing.yaml) that matter here.
SHIPPED: dict[str, Any] = {
    "min_margin": "8%",
    "max_change": "15%",
    "max_change_per_day": "30%",
    "cooldown": "15m",
    "rounding": {"ending": ".99"},
}


def engine(strategy: dict[str, Any], **guardrails: Any) -> CompiledRuleset:
    return ruleset([], default={"strategy": strategy}, guardrails={**SHIPPED, **guardrails})


def priced(compiled: CompiledRuleset, item: ItemFacts, at: Any = AT) -> Decision:
    """The single path's decision, after checking the batch path says the same."""
    single = decide(compiled, item, at)
    inputs = PricingInputs(item=item)
    columns = encode_batch(compiled, [inputs], at)
    batch = decide_batch(compiled, columns, at)
    told = explain_row(
        compiled,
        columns,
        batch,
        0,
        row_facts(compiled, inputs),
        int(at.timestamp()),
        str(DEFAULT_SEGMENT),
    )
    assert told == decision_to_dict(single)
    return single


def reprice_daily(compiled: CompiledRuleset, item: ItemFacts, times: int) -> list[Decision]:
    """Reprice once a day, publishing each price, as the repricer would."""
    decisions = []
    at = AT
    for _ in range(times):
        decision = priced(compiled, item, at)
        decisions.append(decision)
        assert decision.price is not None
        if decision.changed:
            item = item.model_copy(
                update={
                    "current_price": decision.price,
                    "last_changed_at": at,
                    "recent_changes": (
                        *item.recent_changes,
                        PriceChange(at=at, price=decision.price),
                    ),
                }
            )
        at += timedelta(days=1)
    return decisions


def within_step(before: Decimal, after: Decimal) -> bool:
    return before * Decimal("0.85") <= after <= before * Decimal("1.15")


def rounded_target(strategy: dict[str, Any], item: ItemFacts) -> Decimal | None:
    """The rules' own price rounded to the ending, with no other guardrail."""
    bare = ruleset([], default={"strategy": strategy}, guardrails={"rounding": {"ending": ".99"}})
    return decide(bare, item.model_copy(update={"current_price": None}), AT).price


CHIPS = ItemFacts(
    sku="CHIPS-SEA-SALT", currency="USD", cost=Decimal("1.10"), current_price=Decimal("2.99")
)


def test_a_low_price_falls_toward_its_target_instead_of_holding() -> None:
    strategy = {"cost_plus": "35%"}  # 1.10 + 35% = 1.49
    compiled = engine(strategy)
    decisions = reprice_daily(compiled, CHIPS, 8)
    first = decisions[0]
    assert first.price == Decimal("2.55")  # the max_change floor, unrounded
    assert first.warnings == (
        "rounding skipped: in the allowed range 2.55..3.43 the only price ending .99 on the "
        "way to the target 1.49 is the current price 2.99, which would hold the price from "
        "its target",
    )
    assert not any(step.stage == "rounding" for step in first.steps)
    prices = [Decimal("2.99"), *(d.price for d in decisions if d.price is not None)]
    for before, after in pairwise(prices):
        assert after <= before
        assert within_step(before, after)
    # It settles where rounding puts the target itself, and stays.
    assert prices[-1] == prices[-2] == rounded_target(strategy, CHIPS)
    assert prices[-1] < Decimal("2.55")


def test_a_low_price_rises_toward_its_target_instead_of_holding() -> None:
    mug = ItemFacts(
        sku="MUG-PLAIN", currency="USD", cost=Decimal("3.00"), current_price=Decimal("5.99")
    )
    strategy = {"fixed": "8.00"}
    decisions = reprice_daily(engine(strategy), mug, 6)
    assert decisions[0].price == Decimal("6.88")
    assert "the current price 5.99, which would hold" in decisions[0].warnings[0]
    prices = [Decimal("5.99"), *(d.price for d in decisions if d.price is not None)]
    for before, after in pairwise(prices):
        assert after >= before
        assert within_step(before, after)
    assert prices[-1] == prices[-2] == rounded_target(strategy, mug) == Decimal("7.99")


def test_price_points_do_not_hold_the_price_either() -> None:
    compiled = engine({"cost_plus": "35%"}, rounding={"price_points": ["1.99", "2.99", "4.99"]})
    decision = priced(compiled, CHIPS)
    assert decision.price == Decimal("2.55")
    assert "the only price point on the way to the target 1.49" in decision.warnings[0]


def test_a_point_toward_the_target_within_the_range_is_still_used() -> None:
    item = ItemFacts(
        sku="KETTLE", currency="USD", cost=Decimal("3.00"), current_price=Decimal("9.99")
    )
    decision = priced(engine({"fixed": "5.00"}), item)
    # The range 8.50..11.48 holds 8.99, a .99 price between the current price and the
    # target: rounding keeps its ending.
    assert decision.price == Decimal("8.99")
    assert decision.warnings == ()
    assert [step.stage for step in decision.steps][-1] == "rounding"


@pytest.mark.parametrize(("current", "target"), [("9.99", "9.60"), ("2.99", "2.80")])
def test_a_target_that_rounds_to_the_current_price_holds_without_flipping(
    current: str, target: str
) -> None:
    """The target is inside the range and its nearest .99 price is the current one: that
    hold is the rounding's own answer, not the trap. Jumping to the .99 price past the
    target would flip back the next day (9.99, 8.99, 9.99, ...)."""
    item = ItemFacts(
        sku="LAMP", currency="USD", cost=Decimal("1.00"), current_price=Decimal(current)
    )
    decisions = reprice_daily(engine({"fixed": target}), item, 3)
    assert [d.price for d in decisions] == [Decimal(current)] * 3
    assert all(not d.changed and d.warnings == () for d in decisions)


def test_a_cooldown_still_holds_the_current_price() -> None:
    cooling = CHIPS.model_copy(update={"last_changed_at": AT - timedelta(minutes=5)})
    decision = priced(engine({"cost_plus": "35%"}), cooling)
    assert decision.price == Decimal("2.99")
    assert not decision.changed
    assert "cooldown" in decision.guardrails_fired
    assert not any(w.startswith("rounding skipped") for w in decision.warnings)


def test_a_step_cut_short_by_a_step_limit_is_priced_again_when_its_cooldown_ends() -> None:
    # Its first step had no valid_until: nothing brought the repricer back, and a quiet
    # SKU stayed one step short of its target until an input changed.
    compiled = engine({"cost_plus": "35%"})
    item, at, prices = CHIPS, AT, []
    history: list[PriceChange] = []
    for _ in range(10):
        decision = priced(compiled, item, at)
        if not decision.changed:
            break
        assert decision.price is not None
        prices.append(decision.price)
        # Priced again when the cooldown this step starts ends, a quarter of an hour on.
        assert decision.valid_until == at + timedelta(minutes=15)
        history.append(PriceChange(at=at, price=decision.price))
        item = item.model_copy(
            update={
                "current_price": decision.price,
                "last_changed_at": at,
                "recent_changes": tuple(history[-8:]),
            }
        )
        at = decision.valid_until
    # 15% a step, down to 1.99: cost + 35% (1.485) within the 8% margin, ending .99. Held
    # there, the decision sets no time to come back: it would repeat every cooldown.
    assert prices == [Decimal("2.55"), Decimal("2.17"), Decimal("1.99")]
    assert decision.valid_until is None


@pytest.mark.parametrize(
    ("currency", "ending", "current", "target", "reason"),
    [
        (
            "JPY",
            ".99",
            "1500",
            "1400",
            "price ending .99 needs 2 decimal places and JPY has no minor unit",
        ),
        (
            "USD",
            ".995",
            "15.00",
            "14.00",
            "price ending .995 needs 3 decimal places and USD has only 2 decimal places",
        ),
    ],
)
def test_an_ending_the_currency_cannot_carry_says_so(
    currency: str, ending: str, current: str, target: str, reason: str
) -> None:
    """JPY has no minor unit: a .99 ending never fits, whatever the allowed range, and the
    skip says that rather than blaming the range (both paths say it word for word)."""
    item = ItemFacts(
        sku="TEA-SET", currency=currency, cost=Decimal(1), current_price=Decimal(current)
    )
    decision = priced(engine({"fixed": target}, rounding={"ending": ending}), item)
    assert decision.price == Decimal(target)  # published unrounded
    assert decision.warnings == (f"rounding skipped: {reason}, so no {currency} price ends in it",)


@pytest.mark.parametrize(
    ("currency", "ending", "price"),
    [("JPY", "9", "1399"), ("JPY", ".00", "1401"), ("KWD", ".995", "1400.995")],
)
def test_an_ending_the_currency_can_carry_rounds(currency: str, ending: str, price: str) -> None:
    item = ItemFacts(sku="TEA-SET", currency=currency, cost=Decimal(1), current_price=None)
    decision = priced(engine({"fixed": "1400.5"}, rounding={"ending": ending}), item)
    assert decision.warnings == ()
    assert decision.price == Decimal(price)
