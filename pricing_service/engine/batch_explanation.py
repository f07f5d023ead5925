"""Explanations for the batch path: a decision's full story from its columns.

The single path builds its explanation as it goes, at about 40 µs an item. A full reprice
of a large catalogue cannot afford that, so for the common shapes of decision the story
is told again from what :func:`~pricing_service.engine.batch.decide_batch` returns: the
same steps, inputs and warnings, word for word (a property test holds the two equal).
Shapes it does not tell return None, and the caller asks the single path: a rule with
exploration, and a guardrail conflict (its warning names bounds the columns do not keep).

Amounts in an explanation are quoted as the inputs wrote them (``19.9`` stays ``19.9``),
which minor units cannot recover: :class:`RowFacts` carries those texts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from pricing_service.engine.batch import (
    HELD_NAMES,
    LIST_PRICE_FALLBACK,
    MISSING,
    UNPRICED,
    BatchDecisions,
    BatchInputs,
    Vocabulary,
    strategy_name,
)
from pricing_service.engine.compiled import (
    BOUND_NAMES,
    GUARDRAIL_NAMES,
    CompiledRuleset,
    CompiledStrategy,
    fired_names,
)
from pricing_service.engine.decision import demand_value, elasticity_value, offer_value
from pricing_service.engine.history import ELASTICITY_SCALE, latest_per_competitor
from pricing_service.engine.inputs import (
    ElasticityEstimate,
    PricingInputs,
)
from pricing_service.engine.single import (
    NO_CEILING,
    guardrail_detail,
    rounding_hold_warning,
    rounding_skip_warning,
)
from pricing_service.money import apply_ratio, clamp_minor, minor_unit_digits

_CONFLICT = 1 << GUARDRAIL_NAMES.index("conflict")
#: Why a strategy of each kind could not price, as the single path words it (elasticity
#: has several reasons: see _elasticity_step).
_SKIPPED = {
    "cost_plus": "no cost",
    "discount": "no list price",
    "list_price": "no list price",
    "competitor": "no fresh competitor offer passes the filters",
    "keep_current": "no current price",
}


# Not frozen, though never changed: a full reprice builds one or more per SKU, and a
# frozen dataclass costs about five times as much to build.
@dataclass(slots=True)
class OfferFacts:
    """One competitor slot of the columns, as an explanation quotes it."""

    competitor: str
    value: str  # "15.00 USD", with shipping and stock as the single path adds them
    source: str


# Not frozen, though never changed: a full reprice builds one or more per SKU, and a
# frozen dataclass costs about five times as much to build.
@dataclass(slots=True)
class RowFacts:
    """The texts an explanation quotes for one row of :class:`BatchInputs`."""

    current_price: str | None
    current_since: int | None  # when the price in force was set (epoch s), if known
    cost: str | None
    list_price: str | None
    offers: Sequence[OfferFacts]  # one per offer slot of the row, in slot order
    demand: str | None = None  # "velocity_ratio=... days_of_supply=..."
    demand_as_of: int | None = None  # when the demand signals were computed (epoch s)
    elasticity: str | None = None  # "-2.5000 ± 0.1000 (n=40)"
    elasticity_fitted_at: int | None = None  # epoch s, if known

    def at_price(self, current_price: str | None, current_since: int | None) -> RowFacts:
        """These facts with another price in force: built whole, in field order, where
        ``dataclasses.replace`` costs seven times as much."""
        return RowFacts(
            current_price,
            current_since,
            self.cost,
            self.list_price,
            self.offers,
            self.demand,
            self.demand_as_of,
            self.elasticity,
            self.elasticity_fitted_at,
        )


def row_facts(ruleset: CompiledRuleset, inputs: PricingInputs) -> RowFacts:
    """:class:`RowFacts` for items given as objects (what ``encode_batch`` encodes)."""
    item = inputs.item
    known = Vocabulary(ruleset).competitors
    offers = [
        OfferFacts(
            offer.competitor,
            offer_value(
                str(offer.price),
                offer.currency,
                None if offer.shipping is None else str(offer.shipping),
                offer.in_stock,
            ),
            offer.source,
        )
        for offer in latest_per_competitor(inputs.observations)
        if offer.competitor in known
    ]
    demand = inputs.demand
    estimate = inputs.elasticity
    changed = item.last_changed_at
    return RowFacts(
        current_price=None if item.current_price is None else str(item.current_price),
        current_since=None if changed is None else int(changed.timestamp()),
        cost=None if item.cost is None else str(item.cost),
        list_price=None if item.list_price is None else str(item.list_price),
        offers=offers,
        demand=None
        if demand is None
        else demand_value(demand.velocity_ratio, demand.days_of_supply),
        demand_as_of=None
        if demand is None or demand.as_of is None
        else int(demand.as_of.timestamp()),
        **estimate_facts(estimate),
    )


def estimate_facts(estimate: ElasticityEstimate | None) -> dict[str, Any]:
    """The elasticity fields of :class:`RowFacts` for ``estimate``."""
    if estimate is None:
        return {"elasticity": None, "elasticity_fitted_at": None}
    fitted = estimate.fitted_at
    return {
        "elasticity": elasticity_value(
            estimate.elasticity, estimate.standard_error, estimate.observations
        ),
        "elasticity_fitted_at": None if fitted is None else int(fitted.timestamp()),
    }


def money_text(minor: int, digits: int) -> str:
    """``str(Decimal(minor).scaleb(-digits))`` without building a Decimal."""
    if digits == 0 or minor < 0:
        return str(Decimal(minor).scaleb(-digits))
    # Cut from the digits' text: a third of the time of divmod and a nested format spec,
    # and a full reprice writes several amounts per SKU.
    text = str(minor).rjust(digits + 1, "0")
    return f"{text[:-digits]}.{text[-digits:]}"


@lru_cache(maxsize=1024)
def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat()


def _age(epoch: int, since: int | None) -> int | None:
    return None if since is None else max(0, epoch - since)


def _step(stage: str, name: str, before: str | None, after: str | None, detail: str) -> Any:
    return {"stage": stage, "name": name, "input": before, "output": after, "detail": detail}


def _input(name: str, value: str | None, source: str, age: int | None) -> Any:
    return {"name": name, "value": value, "source": source, "age_seconds": age}


def _elasticity_step(
    strategy: CompiledStrategy,
    columns: BatchInputs,
    index: int,
    facts: RowFacts,
    inputs: list[Any],
    epoch: int,
) -> str:
    """Why an elasticity strategy could not price ('' if it could), adding the estimate
    to the inputs once it is read, as the single path does."""
    basis_points = int(columns.elasticity_bp[index])
    if basis_points == MISSING:
        return "no elasticity estimate"
    cost = int(columns.cost[index])
    if cost == MISSING or cost <= 0:
        return "no cost"
    age = _age(epoch, facts.elasticity_fitted_at)
    inputs.append(_input("elasticity", facts.elasticity, "estimator", age))
    if float(columns.elasticity_se[index]) > strategy.max_standard_error:
        return "estimate too uncertain"
    if int(columns.elasticity_n[index]) < strategy.min_observations:
        return "too few observations"
    if basis_points >= -ELASTICITY_SCALE:
        return "demand is not elastic (|e| <= 1)"
    inputs.append(_input("cost", facts.cost, "catalogue", None))  # what p* is a markup on
    return ""


def explain_row(
    ruleset: CompiledRuleset,
    columns: BatchInputs,
    result: BatchDecisions,
    index: int,
    facts: RowFacts,
    epoch: int,
    segment: str = "",
) -> dict[str, Any] | None:
    """Row ``index`` of ``result`` as ``decision_to_dict`` gives the single path's decision
    for the same inputs at ``epoch``, or None for a shape this module does not tell."""
    rule = ruleset.rules[int(result.rule_index[index])]
    position = int(result.strategy_position[index])
    fired = int(result.guardrails_fired[index])
    if rule.exploration is not None or fired & _CONFLICT or result.not_a_price[index]:
        return None
    tried = rule.chain if position < 0 else rule.chain[: position + 1]
    digits = minor_unit_digits(columns.currency)
    current = int(columns.current[index])
    inputs: list[Any] = []
    steps: list[Any] = []
    warnings: list[str] = []
    if current != MISSING:
        age = _age(epoch, facts.current_since)
        inputs.append(_input("current_price", facts.current_price, "catalogue", age))
    for at, strategy in enumerate(tried):
        kind = strategy.kind
        if kind == "elasticity":
            why = _elasticity_step(strategy, columns, index, facts, inputs, epoch)
            if at != position:
                warnings.append(f"{kind} skipped: {why}")
                continue
        elif at != position:
            warnings.append(f"{kind} skipped: {_SKIPPED[kind]}")
            continue
        detail = strategy.description
        if kind == "cost_plus":
            inputs.append(_input("cost", facts.cost, "catalogue", None))
        elif kind in ("discount", "list_price"):
            inputs.append(_input("list_price", facts.list_price, "catalogue", None))
        elif kind == "competitor":
            for slot, offer in enumerate(facts.offers):
                if result.offers_used[index, slot]:
                    age = max(0, epoch - int(columns.offer_observed[index, slot]))
                    name = f"competitor:{offer.competitor}"
                    inputs.append(_input(name, offer.value, offer.source, age))
            reference = money_text(int(result.reference[index]), digits)
            detail += f": reference {reference}"
        elif kind == "elasticity":
            detail += f": p* = c·e/(1+e) with e={int(columns.elasticity_bp[index]) / 1e4}"
        stage = "strategy" if at == 0 else "fallback"
        price = money_text(int(result.strategy_price[index]), digits)
        steps.append(_step(stage, kind, None, price, detail))
    if position == LIST_PRICE_FALLBACK:
        price = money_text(int(result.strategy_price[index]), digits)
        steps.append(
            _step("fallback", "list_price", None, price, "no current price; the list price")
        )
    decision: dict[str, Any] = {
        "sku": columns.skus[index],
        "segment": segment,
        "price": None,
        "currency": columns.currency,
        "valid_from": _iso(epoch),
        "valid_until": None,
        "rule_id": rule.id,
        "ruleset_version": ruleset.version,
        "strategy": strategy_name(rule, position),
        "held_by": None,
        "changed": False,
        "guardrails_fired": [],
        "steps": steps,
        "inputs": inputs,
        "warnings": warnings,
    }
    until = int(result.valid_until[index])
    if until != MISSING:
        decision["valid_until"] = _iso(until)
    if position == UNPRICED:
        warnings.append("no price: every strategy lacked inputs and the item has no price")
        return decision

    price_minor = int(result.strategy_price[index])
    applied = int(result.adjustments_applied[index])
    for number, adjustment in enumerate(rule.adjustments):
        if not applied >> number & 1:
            continue
        before = price_minor
        if adjustment.change_ppm is not None:
            price_minor = apply_ratio(price_minor, adjustment.change_ppm)
        else:
            price_minor += ruleset.minor(adjustment.change_amount, columns.currency)  # type: ignore[arg-type]
        price_minor = clamp_minor(price_minor)
        steps.append(
            _step(
                "adjustment",
                adjustment.id,
                money_text(before, digits),
                money_text(price_minor, digits),
                adjustment.detail(columns.currency),
            )
        )
    if price_minor != int(result.adjusted_price[index]):
        return None  # cannot happen while the paths agree; never explain a different price
    if facts.demand is not None and rule.reads_demand:
        inputs.append(_input("demand", facts.demand, "sales", _age(epoch, facts.demand_as_of)))

    held = HELD_NAMES.get(int(result.held[index]))
    if held is not None:
        steps.append(
            _step(
                "loop_breaker",
                held,
                money_text(price_minor, digits),
                money_text(current, digits),
                f"held: {held.replace('_', ' ')} detected in recent changes",
            )
        )
        warnings.append(f"loop breaker: {held}")
        price_minor = current

    low, high = int(result.low[index]), int(result.high[index])
    clamped = min(max(price_minor, low), high)
    ceiling = money_text(high, digits) if high < NO_CEILING else "no ceiling"
    low_text = money_text(low, digits)
    if clamped != price_minor:
        raised = clamped > price_minor
        bound_by = BOUND_NAMES[int((result.low_by if raised else result.high_by)[index])]
        bound = money_text(clamped, digits)
        detail = guardrail_detail(
            bound_by, raised, bound, low_text, ceiling, fired, "allowed range"
        )
        steps.append(_step("guardrail", bound_by, money_text(price_minor, digits), bound, detail))
    final = int(result.price[index])
    if rule.guardrails.rounding is not None and clamped != current:
        if result.rounding_skipped_to_move[index]:
            warnings.append(
                rounding_hold_warning(
                    rule.guardrails.rounding,
                    money_text(current, digits),
                    money_text(price_minor, digits),
                    low_text,
                    ceiling,
                )
            )
        elif not result.rounding_ok[index]:
            warnings.append(rounding_skip_warning(rule.guardrails.rounding, columns.currency))
        elif final != clamped:
            steps.append(
                _step(
                    "rounding",
                    "rounding",
                    money_text(clamped, digits),
                    money_text(final, digits),
                    rule.guardrails.rounding.detail,
                )
            )
    decision["price"] = money_text(final, digits)
    decision["held_by"] = held
    decision["changed"] = final != current
    decision["guardrails_fired"] = list(fired_names(fired))
    return decision
