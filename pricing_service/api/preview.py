"""What a candidate ruleset would do to today's prices, without publishing anything.

Every SKU is priced in every segment the candidate distinguishes, and compared with the
price in force for that segment now: the published schedule's, or the item's current
price where nothing is published for the segment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from pricing_service.engine.compiled import CompiledRuleset
from pricing_service.engine.inputs import PricingInputs
from pricing_service.engine.segments import priced_segments
from pricing_service.engine.single import decide

_PERCENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class PriceChangePreview:
    sku: str
    segment: str  # canonical; '' is the default segment
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
    unpriced: int  # no price in force to compare with, or no proposed price
    mean_abs_change_percent: Decimal | None
    median_abs_change_percent: Decimal | None
    max_abs_change_percent: Decimal | None


def preview_changes(
    compiled: CompiledRuleset,
    inputs: dict[str, PricingInputs],
    in_force: Mapping[tuple[str, str], Decimal],
    now: datetime,
) -> tuple[list[PriceChangePreview], PreviewSummary]:
    """Each SKU's price in each of ``compiled``'s segments against the price in force
    (``in_force`` by SKU and segment, else the item's current price). CPU-bound: call it
    off the event loop."""
    changes: list[PriceChangePreview] = []
    unpriced = evaluated = 0
    segments = priced_segments(compiled)
    for sku, entry in sorted(inputs.items()):
        for segment in segments:
            evaluated += 1
            name = str(segment)
            current = in_force.get((sku, name), entry.item.current_price)
            decision = decide(
                compiled,
                entry.item,
                now,
                segment=segment,
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
                        segment=name,
                        currency=entry.item.currency,
                        current=current,
                        proposed=decision.price,
                        rule_id=decision.rule_id,
                    )
                )
    magnitudes = [abs(change.change_percent) for change in changes]
    summary = PreviewSummary(
        evaluated=evaluated,
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
