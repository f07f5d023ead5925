"""Fit every SKU's elasticity from its sales buckets and store the estimates.

Used by ``pricing elasticity fit``, ``POST /v1/admin/elasticity/fit`` and the repricer's
schedule.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime

from pricing_service import metrics
from pricing_service.elasticity.dataset import fit_days, fit_rows
from pricing_service.elasticity.fit import ElasticityFit, fit_elasticities
from pricing_service.store.store import InvalidStoredItemError, Store, StoredElasticity

logger = logging.getLogger(__name__)

#: Stored statistics keep this many decimals: finer digits are noise, and would make
#: every refit look like a change.
DECIMALS = 6


@dataclass(frozen=True, slots=True)
class FitSummary:
    fitted_at: datetime
    items: int  # SKUs in the catalogue
    estimated: int  # SKUs with an estimate now
    changed: int  # SKUs whose estimate changed (queued for repricing)
    observations: int  # item-days used
    seconds: float

    def as_status(self) -> dict[str, str]:
        return {
            "fitted_at": self.fitted_at.isoformat(),
            "items": str(self.items),
            "estimated": str(self.estimated),
            "changed": str(self.changed),
            "observations": str(self.observations),
            "seconds": f"{self.seconds:.3f}",
        }


def _number(value: float) -> float | None:
    return round(float(value), DECIMALS) if math.isfinite(value) else None


def estimates_from_fit(fit: ElasticityFit, fitted_at: datetime) -> list[StoredElasticity | None]:
    """One stored estimate per item (None where the fit has none)."""
    estimates: list[StoredElasticity | None] = []
    for row in range(fit.elasticity.shape[0]):
        elasticity = _number(fit.elasticity[row])
        error = _number(fit.standard_error[row])
        if elasticity is None or error is None:
            estimates.append(None)
            continue
        estimates.append(
            StoredElasticity(
                elasticity=elasticity,
                standard_error=error,
                observations=int(fit.observations[row]),
                fitted_at=fitted_at,
                category_elasticity=_number(fit.category_elasticity[row]),
                raw_elasticity=_number(fit.raw_elasticity[row]),
            )
        )
    return estimates


def _engine_view(estimate: StoredElasticity | None) -> tuple[float, float, int] | None:
    """What the engine reads of an estimate: a change here needs a reprice."""
    if estimate is None:
        return None
    return estimate.elasticity, estimate.standard_error, estimate.observations


@dataclass(frozen=True, slots=True)
class _Fitted:
    estimates: list[StoredElasticity | None]
    observations: int


def _fit(
    raws: list[dict[bytes, bytes]],
    days: list[date],
    categories: list[str | None],
    currencies: list[str],
    fitted_at: datetime,
) -> _Fitted:
    """The CPU part of a refit, run in a worker thread."""
    rows = fit_rows(raws, days, categories, currencies)
    fit = fit_elasticities(
        rows.item,
        rows.price,
        rows.units,
        rows.day_of_week,
        rows.item_category,
        len(raws),
        units_are_counts=True,
    )
    return _Fitted(estimates_from_fit(fit, fitted_at), int(rows.item.shape[0]))


async def refit(store: Store, now: datetime | None = None) -> FitSummary:
    """Fit all SKUs, store their estimates, and queue the SKUs whose estimate changed.
    Only Redis round trips run on the event loop; the rows, the fit and the estimates are
    built in a worker thread."""
    started = time.perf_counter()
    fitted_at = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    days = fit_days(fitted_at.date(), store.retention)
    skus: list[str] = []
    categories: list[str | None] = []
    currencies: list[str] = []
    raws: list[dict[bytes, bytes]] = []
    previous: list[StoredElasticity | None] = []
    async for chunk in store.iter_skus():
        items = await store.get_items(chunk)
        buckets = await store.sales_buckets(chunk)
        stored = await store.get_elasticities(chunk)
        for sku, item, raw, old in zip(chunk, items, buckets, stored, strict=True):
            if isinstance(item, InvalidStoredItemError):
                logger.warning("%s: not fitted", item)
                continue
            if item is None:
                continue
            skus.append(sku)
            categories.append(item.category)
            currencies.append(item.currency)
            raws.append(raw)
            previous.append(old)
    fitted = await asyncio.to_thread(_fit, raws, days, categories, currencies, fitted_at)
    estimates = fitted.estimates
    writes = {
        sku: new
        for sku, new, old in zip(skus, estimates, previous, strict=True)
        if new is not None or old is not None
    }
    changed = [
        sku
        for sku, new, old in zip(skus, estimates, previous, strict=True)
        if _engine_view(new) != _engine_view(old)
    ]
    await store.put_elasticities(writes, changed=changed)
    summary = FitSummary(
        fitted_at=fitted_at,
        items=len(skus),
        estimated=sum(estimate is not None for estimate in estimates),
        changed=len(changed),
        observations=fitted.observations,
        seconds=time.perf_counter() - started,
    )
    await store.set_elasticity_fit_status(summary.as_status())
    metrics.ELASTICITY_FIT_SECONDS.observe(summary.seconds)
    metrics.ELASTICITY_ITEMS_FITTED.inc(summary.estimated)
    return summary
