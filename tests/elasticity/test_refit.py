"""The refit against a real Redis: estimates stored per SKU, changed SKUs queued, the
repricer's inputs carry them, and the API serves and triggers them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import numpy as np
import pytest

from pricing_service.elasticity.refit import refit
from pricing_service.engine.compiled import CompiledRuleset
from pricing_service.engine.inputs import ItemFacts
from pricing_service.repricer.inputs import load_inputs, load_segments
from pricing_service.rules.loader import check_texts
from pricing_service.store import keys
from pricing_service.store.store import Sale, Store
from tests.api.conftest import ADMIN_KEY, READ_KEY, RULES, WRITE_KEY, auth

pytestmark = pytest.mark.anyio

TRUE_ELASTICITY = -2.0


def _history(sku: str, days: int, seed: int) -> list[Sale]:
    """A day's sales at a price that moves, on each of ``days`` past days."""
    rng = np.random.default_rng(seed)
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    sales = []
    for back in range(1, days + 1):
        price = Decimal(str(round(20 * float(np.exp(rng.normal(0, 0.1))), 2)))
        units = max(1, round(60 * (float(price) / 20) ** TRUE_ELASTICITY))
        sales.append(Sale(today - timedelta(days=back), units, price, f"{sku}-{back}"))
    return sales


async def catalogue(store: Store) -> None:
    items = [
        ItemFacts(sku=sku, currency="USD", list_price=Decimal("20.00"), category="tv")
        for sku in ("A", "B", "C", "NEW")
    ]
    await store.put_items(items)
    for seed, sku in enumerate(("A", "B", "C")):
        await store.add_sales(sku, "USD", _history(sku, 30, seed))
    await store.redis.delete(keys.DIRTY_STREAM)


async def _queued(store: Store) -> list[str]:
    entries = await store.redis.xrange(keys.DIRTY_STREAM)
    return sorted(fields[b"sku"].decode() for _, fields in entries)


async def test_refit_stores_estimates_and_queues_only_changes(store: Store) -> None:
    await catalogue(store)
    summary = await refit(store)
    assert (summary.items, summary.estimated, summary.changed) == (4, 3, 3)
    assert summary.observations == 90
    estimate = await store.get_elasticity("A")
    assert estimate is not None
    assert estimate.elasticity == pytest.approx(TRUE_ELASTICITY, abs=0.1)
    assert estimate.observations == 30
    assert estimate.category_elasticity == pytest.approx(TRUE_ELASTICITY, abs=0.1)
    assert await store.get_elasticity("NEW") is None
    assert await _queued(store) == ["A", "B", "C"]
    assert (await store.elasticity_fit_status())["estimated"] == "3"

    # The same data again: the same estimates, nothing queued.
    await store.redis.delete(keys.DIRTY_STREAM)
    assert (await refit(store)).changed == 0
    assert await _queued(store) == []


async def test_the_repricer_reads_the_estimate_and_its_fit_time_is_not_a_change(
    store: Store,
) -> None:
    await catalogue(store)
    ruleset, _ = check_texts({"rules.yaml": RULES})
    assert ruleset is not None
    compiled = CompiledRuleset(ruleset)
    now = datetime.now(UTC)
    await refit(store, now)
    first = (await load_inputs(store, compiled, ["A", "NEW"], now))["A"]
    assert first.elasticity is not None
    assert first.elasticity.observations == 30
    await refit(store, now + timedelta(hours=1))
    second = (await load_inputs(store, compiled, ["A"], now))["A"]
    assert second.elasticity is not None
    assert first.elasticity is not None
    assert second.elasticity.fitted_at != first.elasticity.fitted_at
    digests = [
        (await load_segments(store, compiled, ["A"], now, [""]))[""]["A"].digest for _ in range(2)
    ]
    await refit(store, now + timedelta(hours=2))
    digests.append((await load_segments(store, compiled, ["A"], now, [""]))[""]["A"].digest)
    assert len(set(digests)) == 1


async def test_claiming_the_scheduled_fit_lets_one_repricer_run_it(store: Store) -> None:
    assert await store.claim_elasticity_fit(timedelta(hours=1))
    assert not await store.claim_elasticity_fit(timedelta(hours=1))


def test_the_api_fits_on_demand_and_serves_estimates(api: httpx.Client) -> None:
    writer, admin, reader = auth(WRITE_KEY), auth(ADMIN_KEY), auth(READ_KEY)
    for sku in ("A", "B"):
        item = {"currency": "USD", "list_price": "20.00", "category": "tv"}
        assert api.put(f"/v1/items/{sku}", json=item, headers=writer).status_code == 201
    events = [
        {
            "id": sale.event_id,
            "sku": sku,
            "quantity": sale.quantity,
            "unit_price": str(sale.unit_price),
            "ts": sale.at.isoformat(),
        }
        for seed, sku in enumerate(("A", "B"))
        for sale in _history(sku, 30, seed)
    ]
    assert api.post("/v1/sales", json=events, headers=writer).json()["accepted"] == 60

    missing = api.get("/v1/items/A/elasticity", headers=reader)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert api.post("/v1/admin/elasticity/fit", headers=writer).status_code == 403
    fitted = api.post("/v1/admin/elasticity/fit", headers=admin)
    assert fitted.status_code == 200, fitted.text
    assert fitted.json()["estimated"] == 2

    body = api.get("/v1/items/A/elasticity", headers=reader).json()
    assert body["sku"] == "A"
    assert body["elasticity"] == pytest.approx(TRUE_ELASTICITY, abs=0.1)
    assert isinstance(body["standard_error"], float)
    assert body["observations"] == 30
    assert datetime.fromisoformat(body["fitted_at"]) <= datetime.now(UTC)
    assert set(body) >= {"category_elasticity", "raw_elasticity"}
