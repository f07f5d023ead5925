"""Exploration draws: pseudo-random, yet a pure function of (seed, rule, SKU, period).

Both engine paths call :func:`exploration_draw` with the same arguments, so they agree
exactly, and replaying a decision gives the same price. The integers a draw yields are
what the paths apply: a perturbation in parts per million, and a Thompson shift of the
elasticity in basis points.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from statistics import NormalDist

from pricing_service.engine.history import ELASTICITY_SCALE

#: A Thompson draw is bounded: a posterior tail must not price an item absurdly.
MAX_THOMPSON_SIGMAS = 3.0
_STANDARD_NORMAL = NormalDist()
_MANTISSA = 1 << 53


@dataclass(frozen=True, slots=True)
class CompiledExploration:
    perturbation_ppm: int | None  # the bound: a draw lies in [-bound, +bound]
    thompson: bool
    period_seconds: int
    seed: str


@dataclass(frozen=True, slots=True)
class Draw:
    """One item's exploration for one period."""

    period_start: int  # epoch seconds
    perturbation_ppm: int | None  # added to 1,000,000 ppm: the price's multiplier
    thompson_z: float | None  # standard normal, bounded to ±MAX_THOMPSON_SIGMAS


def exploration_draw(exploration: CompiledExploration, rule_id: str, sku: str, epoch: int) -> Draw:
    """The draw for ``sku`` priced by ``rule_id`` in the period holding ``epoch``."""
    start = epoch - epoch % exploration.period_seconds
    key = f"{exploration.seed}\x1f{rule_id}\x1f{sku}\x1f{start}".encode()
    digest = hashlib.blake2b(key, digest_size=16).digest()
    first = int.from_bytes(digest[:8], "big")
    second = int.from_bytes(digest[8:], "big")
    perturbation = None
    bound = exploration.perturbation_ppm
    if bound is not None:
        perturbation = first % (2 * bound + 1) - bound
    z = None
    if exploration.thompson:
        uniform = ((second >> 11) + 0.5) / _MANTISSA  # strictly inside (0, 1)
        z = _STANDARD_NORMAL.inv_cdf(uniform)
        z = max(-MAX_THOMPSON_SIGMAS, min(MAX_THOMPSON_SIGMAS, z))
    return Draw(start, perturbation, z)


def thompson_shift_bp(standard_error: float, z: float) -> int:
    """The posterior draw's distance from the estimate, in elasticity basis points."""
    return round(standard_error * z * ELASTICITY_SCALE)
