"""Every competitor offer a decision could have read, with why each unused one was not."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from pricing_service.engine import CompetitorObservation, decide
from pricing_service.engine.inputs import PriceOverride
from pricing_service.engine.offers import USED, review_offers
from tests.engine.test_scenarios import AT, item, offer, rule, ruleset


def _verdicts(
    strategy: dict[str, Any],
    offers: list[CompetitorObservation],
    *,
    fallback: list[dict[str, Any]] | None = None,
    **decide_options: Any,
) -> tuple[str | None, dict[str, str]]:
    extra = {} if fallback is None else {"fallback": fallback}
    engine = ruleset([rule(strategy, **extra)])
    decision = decide(
        engine, item(current_price=Decimal("50.00")), AT, observations=offers, **decide_options
    )
    reviews = review_offers(engine, decision, offers)
    judged = None if reviews.judged_by is None else reviews.judged_by.description
    return judged, {review.competitor: review.verdict for review in reviews.offers}


def test_each_filter_names_itself() -> None:
    judged, verdicts = _verdicts(
        {"competitor": {"action": "match", "max_age": "6h", "include_shipping": True}},
        [
            offer("40.00", "rival", shipping=Decimal("5.00")),
            offer("41.00", "other", hours_ago=7, shipping=Decimal("0")),
            offer("30.00", "sister", shipping=Decimal("0")),
            offer("20.00", "stranger", shipping=Decimal("0")),
            offer("42.00", "rival", hours_ago=30, shipping=Decimal("0")),
        ],
    )
    assert judged == "match the lowest competitor price"
    assert verdicts == {
        "other": "too old (max_age 6h)",
        "rival": USED,  # its newest offer; the older one is superseded, not listed
        "sister": "our own store (ours: true in competitors.yaml)",
        "stranger": "not a competitor in competitors.yaml",
    }


def test_an_eligible_offer_that_did_not_set_the_reference_says_so() -> None:
    _, lowest = _verdicts(
        {"competitor": {"action": "match"}}, [offer("40.00", "rival"), offer("45.00", "other")]
    )
    assert lowest == {"other": "eligible; not the lowest", "rival": USED}
    _, named = _verdicts(
        {"competitor": {"reference": "competitor", "competitor": "other", "action": "match"}},
        [offer("40.00", "rival"), offer("45.00", "other")],
    )
    assert named == {"other": USED, "rival": "eligible; the strategy follows other only"}


def test_stock_currency_shipping_and_the_strategys_list() -> None:
    _, verdicts = _verdicts(
        {"competitor": {"action": "match", "competitors": ["rival"], "include_shipping": True}},
        [
            offer("40.00", "rival", in_stock=False, shipping=Decimal("0")),
            offer("41.00", "other", shipping=Decimal("0")),
        ],
    )
    assert verdicts == {
        "other": "not in the strategy's competitors",
        "rival": "out of stock (the strategy reads in-stock offers only)",
    }
    _, shipping = _verdicts(
        {"competitor": {"action": "match", "include_shipping": True}}, [offer("40.00", "rival")]
    )
    assert shipping == {"rival": "shipping unknown (the strategy adds shipping)"}
    euro = CompetitorObservation(
        competitor="rival", price=Decimal("40.00"), currency="EUR", observed_at=AT
    )
    _, currency = _verdicts({"competitor": {"action": "match"}}, [euro])
    assert currency == {"rival": "priced in EUR; the item is in USD"}


def test_offers_are_judged_by_the_competitor_strategy_that_failed_before_a_fallback() -> None:
    judged, verdicts = _verdicts(
        {"competitor": {"action": "beat", "by": "1%", "max_age": "1h"}},
        [offer("40.00", "rival", hours_ago=2)],
        fallback=[{"cost_plus": "20%"}, {"fixed": "55.00"}],
    )
    # cost_plus has no cost to work from, so the fixed price priced; the offer was
    # still judged by the competitor strategy that ran first.
    assert judged == "beat by 1.00% the lowest competitor price"
    assert verdicts == {"rival": "too old (max_age 1h)"}


def test_a_later_competitor_fallback_is_the_one_that_judged() -> None:
    judged, verdicts = _verdicts(
        {"competitor": {"action": "match", "max_age": "1h"}},
        [offer("40.00", "rival", hours_ago=2)],
        fallback=[{"competitor": {"action": "match", "max_age": "1d"}}],
    )
    assert judged == "match the lowest competitor price"
    assert verdicts == {"rival": USED}


def test_offers_are_not_read_when_no_competitor_strategy_ran() -> None:
    judged, fixed = _verdicts({"fixed": "55.00"}, [offer("40.00", "rival")])
    assert judged is None
    assert fixed == {"rival": "not read: the rule's strategy does not use competitor prices"}
    override = PriceOverride(
        price=Decimal("60.00"), reason="clearance", until=AT + timedelta(days=1)
    )
    judged, overridden = _verdicts(
        {"competitor": {"action": "match"}}, [offer("40.00", "rival")], override=override
    )
    assert judged is None
    assert overridden == {"rival": "not read: the rule's strategy does not use competitor prices"}
