"""Every competitor offer a decision could have read, and why each unused one was not.

A decision's inputs list only the offers its price came from. An analyst asking "why was
acme ignored?" needs the others too: each competitor's newest offer, judged by the
competitor strategy the decision's rule tried, with the engine's own filters
(:func:`~pricing_service.engine.single.offer_exclusion`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pricing_service.engine.compiled import CompiledRuleset, CompiledStrategy
from pricing_service.engine.decision import Decision, offer_value
from pricing_service.engine.history import latest_per_competitor
from pricing_service.engine.inputs import CompetitorObservation
from pricing_service.engine.single import offer_exclusion
from pricing_service.rules.model import Reference

USED = "used"


@dataclass(frozen=True, slots=True)
class OfferReview:
    """One competitor's newest offer and what the decision made of it."""

    competitor: str
    value: str
    source: str
    age_seconds: int
    verdict: str  # USED, or why the offer did not count


@dataclass(frozen=True, slots=True)
class OfferReviews:
    """The offers, and the strategy they were judged by (None: no competitor strategy was
    tried, so no offer was read)."""

    judged_by: CompiledStrategy | None
    offers: tuple[OfferReview, ...]


def _tried_strategies(ruleset: CompiledRuleset, decision: Decision) -> Sequence[CompiledStrategy]:
    """The strategies of the decision's rule that ran, in order: each one that could not
    price left a ``"<kind> skipped: ..."`` warning before the next ran."""
    if decision.strategy == "override":
        return ()
    rule = next(rule for rule in ruleset.rules if rule.id == decision.rule_id)
    skipped = 0
    for warning in decision.warnings:
        if skipped < len(rule.chain) and warning.startswith(f"{rule.chain[skipped].kind} skipped:"):
            skipped += 1
        else:
            break
    return rule.chain[: skipped + 1]


def review_offers(
    ruleset: CompiledRuleset,
    decision: Decision,
    observations: Sequence[CompetitorObservation],
) -> OfferReviews:
    """Each competitor's newest offer at the decision's instant, with a verdict."""
    competitor_strategies = [
        strategy
        for strategy in _tried_strategies(ruleset, decision)
        if strategy.kind == "competitor"
    ]
    # The last one tried priced, or was the last to fail before a non-competitor fallback.
    judged_by = competitor_strategies[-1] if competitor_strategies else None
    epoch = int(decision.valid_from.timestamp())
    used = {
        item.name.removeprefix("competitor:")
        for item in decision.inputs
        if item.name.startswith("competitor:")
    }
    reviews = []
    for offer in latest_per_competitor(observations):
        if judged_by is None:
            verdict = "not read: the rule's strategy does not use competitor prices"
        else:
            verdict = offer_exclusion(ruleset, judged_by, decision.currency, epoch, offer) or (
                USED if offer.competitor in used else _passed_over(judged_by)
            )
        reviews.append(
            OfferReview(
                competitor=offer.competitor,
                value=offer_value(
                    str(offer.price),
                    offer.currency,
                    None if offer.shipping is None else str(offer.shipping),
                    offer.in_stock,
                ),
                source=offer.source,
                age_seconds=max(0, epoch - int(offer.observed_at.timestamp())),
                verdict=verdict,
            )
        )
    return OfferReviews(judged_by, tuple(reviews))


def _passed_over(strategy: CompiledStrategy) -> str:
    """An offer that passed every filter and still did not set the reference."""
    if strategy.reference is Reference.competitor:
        return f"eligible; the strategy follows {strategy.reference_competitor} only"
    return "eligible; not the lowest"
