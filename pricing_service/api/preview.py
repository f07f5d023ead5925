"""What a candidate ruleset would do to today's prices, without publishing anything."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from pricing_service.engine.compiled import CompiledRuleset
from pricing_service.engine.inputs import PricingInputs
from pricing_service.engine.single import decide

_PERCENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class PriceChangePreview:
    sku: str
    currency: str
    current: Decimal
    proposed: Decimal
    rule_id: str

    @property
    def change(self) -> Decimal:
        return self.proposed - self.current

    @property
    def change_percent(self) -> Decimal:
        return (self.change * 100 / self.current).quantize(_PERCENT)


@dataclass(frozen=True, slots=True)
class PreviewSummary:
    evaluated: int
    changed: int
    up: int
    down: int
    unpriced: int  # no current price to compare with, or no proposed price
    mean_abs_change_percent: Decimal | None
    median_abs_change_percent: Decimal | None
    max_abs_change_percent: Decimal | None


def preview_changes(
    compiled: CompiledRuleset, inputs: dict[str, PricingInputs], now: datetime
) -> tuple[list[PriceChangePreview], PreviewSummary]:
    """Each SKU's default-segment price under ``compiled`` against its price in force.
    CPU-bound: call it off the event loop."""
    changes: list[PriceChangePreview] = []
    unpriced = 0
    for sku, entry in sorted(inputs.items()):
        current = entry.item.current_price
        decision = decide(
            compiled,
            entry.item,
            now,
            observations=entry.observations,
            demand=entry.demand,
            elasticity=entry.elasticity,
            override=entry.override,
        )
        if current is None or current == 0 or decision.price is None:
            unpriced += 1
            continue
        if decision.price != current:
            changes.append(
                PriceChangePreview(
                    sku=sku,
                    currency=entry.item.currency,
                    current=current,
                    proposed=decision.price,
                    rule_id=decision.rule_id,
                )
            )
    magnitudes = [abs(change.change_percent) for change in changes]
    summary = PreviewSummary(
        evaluated=len(inputs),
        changed=len(changes),
        up=sum(change.change > 0 for change in changes),
        down=sum(change.change < 0 for change in changes),
        unpriced=unpriced,
        mean_abs_change_percent=(
            (sum(magnitudes, Decimal(0)) / len(magnitudes)).quantize(_PERCENT)
            if magnitudes
            else None
        ),
        median_abs_change_percent=_median(magnitudes),
        max_abs_change_percent=max(magnitudes) if magnitudes else None,
    )
    return changes, summary


def _median(values: list[Decimal]) -> Decimal | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return ((ordered[middle - 1] + ordered[middle]) / 2).quantize(_PERCENT)
