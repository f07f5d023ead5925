"""The batch path's explanations say word for word what the single path's say."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from pricing_service.engine import (
    CompiledRuleset,
    PricingInputs,
    Segment,
    decide_batch,
    encode_batch,
)
from pricing_service.engine.batch_explanation import explain_row, money_text, row_facts
from pricing_service.engine.decision import decision_to_dict
from pricing_service.money import from_minor
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
from tests.engine.test_properties import SETTINGS, _decide, segments


def _assert_explanations_agree(
    data: st.DataObject,
    ruleset: Ruleset,
    at: datetime,
    currency: str,
    segment: str | None,
    inputs_of: Callable[[str, datetime], st.SearchStrategy[PricingInputs]] = pricing_inputs,
) -> int:
    compiled = CompiledRuleset(ruleset)
    items = data.draw(st.lists(inputs_of(currency, at), min_size=1, max_size=8))
    columns = encode_batch(compiled, items, at)
    batch = decide_batch(compiled, columns, at, segment=Segment.parse(segment))
    epoch = int(at.timestamp())
    explained = 0
    for index, inputs in enumerate(items):
        facts = row_facts(compiled, inputs)
        told = explain_row(
            compiled, columns, batch, index, facts, epoch, str(Segment.parse(segment))
        )
        if told is None:
            continue
        explained += 1
        single = decision_to_dict(_decide(compiled, inputs, at, segment))
        assert told == single, f"item {index}: {inputs.model_dump_json()}"
    return explained


@SETTINGS
@given(
    data=st.data(),
    ruleset=rulesets(),
    at=instants,
    currency=st.sampled_from(CURRENCIES),
    segment=segments,
)
def test_batch_explanations_match_the_single_path(
    data: st.DataObject, ruleset: Ruleset, at: datetime, currency: str, segment: str | None
) -> None:
    _assert_explanations_agree(data, ruleset, at, currency, segment)


@SETTINGS
@given(
    data=st.data(), ruleset=competitor_rulesets(), at=instants, currency=st.sampled_from(CURRENCIES)
)
def test_batch_explanations_match_on_competitor_references_and_rounding(
    data: st.DataObject, ruleset: Ruleset, at: datetime, currency: str
) -> None:
    _assert_explanations_agree(data, ruleset, at, currency, None)


@SETTINGS
@given(
    data=st.data(), ruleset=clamped_rulesets(), at=instants, currency=st.sampled_from(CURRENCIES)
)
def test_batch_explanations_match_on_the_guardrail_that_bound_the_price(
    data: st.DataObject, ruleset: Ruleset, at: datetime, currency: str
) -> None:
    _assert_explanations_agree(data, ruleset, at, currency, None, clamped_inputs)


def test_money_text_is_the_decimal_text() -> None:
    for currency in CURRENCIES:
        digits = {"USD": 2, "JPY": 0, "KWD": 3}[currency]
        for minor in (0, 1, 5, 99, 100, 101, 1999, 123_456_789_012, -1, -150):
            assert money_text(minor, digits) == str(from_minor(minor, currency))


@given(minor=st.integers(min_value=-(10**15), max_value=10**15), digits=st.integers(0, 4))
def test_money_text_is_the_decimal_text_for_any_amount(minor: int, digits: int) -> None:
    assert money_text(minor, digits) == str(Decimal(minor).scaleb(-digits))
