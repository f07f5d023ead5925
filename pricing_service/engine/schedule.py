"""Decisions for the current window and the coming ones, up to the ruleset's horizon, so
that a lookup at a window boundary is right at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pricing_service.engine.compiled import CompiledRuleset
from pricing_service.engine.decision import Decision
from pricing_service.engine.inputs import DEFAULT_SEGMENT, PriceChange, PricingInputs, Segment
from pricing_service.engine.single import decide

#: A schedule never holds more windows than this, whatever the rules say.
MAX_WINDOWS = 512
#: The latest instant a schedule may start at: calendars and horizons past it would run
#: into the end of ``datetime`` (year 9999); nobody prices that far ahead.
LATEST_START = datetime(2200, 1, 1, tzinfo=UTC)


def schedule(
    ruleset: CompiledRuleset,
    inputs: PricingInputs,
    at: datetime,
    *,
    segment: Segment = DEFAULT_SEGMENT,
    horizon: timedelta | None = None,
) -> list[Decision]:
    """Consecutive decisions from ``at`` until ``at + horizon``.

    Each window's decision starts from the previous window's price, so change limits,
    cooldowns and loop protection apply to scheduled changes exactly as to live ones.
    """
    end = at + (horizon or ruleset.horizon)
    item = inputs.item
    moment = at
    decisions: list[Decision] = []
    while len(decisions) < MAX_WINDOWS:
        decision = decide(
            ruleset,
            item,
            moment,
            segment=segment,
            observations=inputs.observations,
            demand=inputs.demand,
            elasticity=inputs.elasticity,
            override=inputs.override,
        )
        decisions.append(decision)
        if decision.price is None or decision.valid_until is None or decision.valid_until >= end:
            break
        if decision.changed:
            item = item.model_copy(
                update={
                    "current_price": decision.price,
                    "last_changed_at": decision.valid_from,
                    "recent_changes": (
                        *item.recent_changes,
                        PriceChange(at=decision.valid_from, price=decision.price),
                    ),
                }
            )
        moment = decision.valid_until
    return decisions
