"""`pricing elasticity fit` against the test Redis."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from pricing_service.cli import app
from pricing_service.settings import get_settings
from pricing_service.store.store import Store
from tests.elasticity.test_refit import TRUE_ELASTICITY, catalogue


def test_the_cli_fits_stores_and_summarises(
    clean_redis: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", clean_redis)
    get_settings.cache_clear()

    async def seed() -> None:
        store = Store.from_url(clean_redis, retention=timedelta(days=35))
        try:
            await catalogue(store)
        finally:
            await store.close()

    async def stored() -> float | None:
        store = Store.from_url(clean_redis, retention=timedelta(days=35))
        try:
            estimate = await store.get_elasticity("A")
            return None if estimate is None else estimate.elasticity
        finally:
            await store.close()

    asyncio.run(seed())
    try:
        result = CliRunner().invoke(app, ["elasticity", "fit"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "with an estimate" in result.output
    assert "changed (queued)" in result.output
    assert asyncio.run(stored()) == pytest.approx(TRUE_ELASTICITY, abs=0.1)
