"""What the engine returns: a price and the full story of how it was reached."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Step:
    """One stage of the computation: ``input`` went in, ``output`` came out.

    A guardrail step is named after the guardrail whose bound ``output`` is (see
    ``single.guardrail_detail``), not after every guardrail that fired: the decision's
    ``guardrails_fired`` lists those."""

    # strategy | fallback | adjustment | exploration | loop_breaker | guardrail | rounding
    stage: str
    name: str
    input: Decimal | None
    output: Decimal | None
    detail: str


@dataclass(frozen=True, slots=True)
class InputUsed:
    """An input the decision relied on, with its source and age at decision time."""

    name: str
    value: str
    source: str
    age_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """A price for one item, segment and time window, with its explanation.

    ``price`` is None only when no strategy could produce a price and the item has no
    current or list price to keep: the engine never invents a price, least of all zero.
    """

    sku: str
    segment: str
    currency: str
    price: Decimal | None
    valid_from: datetime
    valid_until: datetime | None
    rule_id: str
    ruleset_version: str
    strategy: str
    steps: tuple[Step, ...]
    guardrails_fired: tuple[str, ...]
    inputs: tuple[InputUsed, ...]
    warnings: tuple[str, ...] = ()
    held_by: str | None = None
    changed: bool = field(default=False)


def offer_value(price: str, currency: str, shipping: str | None, in_stock: bool) -> str:
    """A competitor offer as a decision's inputs list it (amounts as the offer wrote them)."""
    value = f"{price} {currency}"
    if shipping is not None:
        value += f" + {shipping} shipping"
    return value + ("" if in_stock else " (out of stock)")


def demand_value(velocity_ratio: float | None, days_of_supply: float | None) -> str:
    """Demand signals as a decision's inputs list them, to 4 decimals (1.7143, not
    1.7142857142857142: the rules' thresholds still compare every digit)."""
    return f"velocity_ratio={_signal(velocity_ratio)} days_of_supply={_signal(days_of_supply)}"


def _signal(value: float | None) -> str:
    return "None" if value is None else repr(round(value, 4))


def elasticity_value(elasticity: float, standard_error: float, observations: int) -> str:
    """An elasticity estimate as a decision's inputs list it."""
    return f"{elasticity:.4f} ± {standard_error:.4f} (n={observations})"


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def decision_to_dict(decision: Decision) -> dict[str, object]:
    """JSON-ready form: money as decimal strings, instants as ISO 8601."""
    return {
        "sku": decision.sku,
        "segment": decision.segment,
        "price": _money(decision.price),
        "currency": decision.currency,
        "valid_from": decision.valid_from.isoformat(),
        "valid_until": None if decision.valid_until is None else decision.valid_until.isoformat(),
        "rule_id": decision.rule_id,
        "ruleset_version": decision.ruleset_version,
        "strategy": decision.strategy,
        "held_by": decision.held_by,
        "changed": decision.changed,
        "guardrails_fired": list(decision.guardrails_fired),
        "steps": [
            {
                "stage": step.stage,
                "name": step.name,
                "input": _money(step.input),
                "output": _money(step.output),
                "detail": step.detail,
            }
            for step in decision.steps
        ],
        "inputs": [
            {
                "name": used.name,
                "value": used.value,
                "source": used.source,
                "age_seconds": used.age_seconds,
            }
            for used in decision.inputs
        ],
        "warnings": list(decision.warnings),
    }
