"""Facts both engine paths derive the same way from an item's inputs: its recent price
moves (for loop protection and the 24-hour change limit), the latest offer of each
competitor, and the elasticity in fixed point."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from itertools import pairwise
from operator import itemgetter

from pricing_service.engine.inputs import CompetitorObservation, ItemFacts
from pricing_service.money import minor_unit_digits

DAY_SECONDS = 86_400
#: Elasticities are compared in basis points (1e-4) so both paths agree exactly.
ELASTICITY_SCALE = 10_000


# Not frozen, though never changed: a full reprice builds one or more per SKU, and a
# frozen dataclass costs about five times as much to build.
@dataclass(slots=True)
class MoveHistory:
    """The shape of an item's recent price moves, as of one instant."""

    last_direction: int  # -1, 0 or +1
    run_length: int  # trailing moves in last_direction
    flips: int  # direction reversals within the window
    price_day_ago: int | None  # minor units: the price 24 hours earlier


def move_history(item: ItemFacts, at_epoch: int, window_seconds: int) -> MoveHistory:
    """Summarise the published changes before ``at`` (changes after it are ignored)."""
    # ItemFacts guarantees amounts are exact in the currency's minor unit, so scaling
    # needs no rounding: this runs once per decision on the hot path.
    digits = minor_unit_digits(item.currency)
    points = [
        (int(change.at.timestamp()), int(change.price.scaleb(digits)))
        for change in item.recent_changes
    ]
    current = None if item.current_price is None else int(item.current_price.scaleb(digits))
    changed_at = None if item.last_changed_at is None else int(item.last_changed_at.timestamp())
    return move_history_of(points, current, changed_at, at_epoch, window_seconds)


def move_history_of(
    points: list[tuple[int, int]],
    current: int | None,
    changed_at: int | None,
    at_epoch: int,
    window_seconds: int,
) -> MoveHistory:
    """:func:`move_history` from minor units: ``points`` are the recent changes as
    (epoch, price), oldest first; ``current`` the price in force, set at ``changed_at``."""
    if current is not None:
        if changed_at is None:
            changed_at = at_epoch
        if not points or points[-1][1] != current:
            points = [*points, (changed_at, current)]
    points = sorted((p for p in points if p[0] <= at_epoch), key=itemgetter(0))
    window_start = at_epoch - window_seconds
    directions: list[int] = []
    previous = None
    for moment, price in points:
        if previous is not None and moment >= window_start and price != previous:
            directions.append(1 if price > previous else -1)
        previous = price
    last = directions[-1] if directions else 0
    run = 0
    for direction in reversed(directions):
        if direction != last:
            break
        run += 1
    flips = sum(1 for a, b in pairwise(directions) if a != b)
    day_ago = at_epoch - DAY_SECONDS
    price_day_ago: int | None = points[0][1] if points else None
    # Without a change as old as a day, the oldest known price is the best reference.
    for moment, price in points:
        if moment > day_ago:
            break
        price_day_ago = price
    return MoveHistory(last, run, flips, price_day_ago)


def latest_per_competitor(
    observations: Iterable[CompetitorObservation],
) -> list[CompetitorObservation]:
    """Each competitor's newest observation, in competitor-id order."""
    latest: dict[str, CompetitorObservation] = {}
    for observation in observations:
        seen = latest.get(observation.competitor)
        if seen is None or observation.observed_at > seen.observed_at:
            latest[observation.competitor] = observation
    return [latest[key] for key in sorted(latest)]


def elasticity_basis_points(elasticity: float) -> int:
    """The estimate rounded half up to 1e-4, as an integer."""
    scaled = Decimal(repr(elasticity)) * ELASTICITY_SCALE
    return int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_UP))
