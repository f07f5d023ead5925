"""Full and targeted reprices, overrides through the pricer, and the CLI commands."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from pricing_service.engine.batch import MISSING, decide_batch, encode_batch
from pricing_service.engine.inputs import CompetitorObservation, ItemFacts
from pricing_service.money import from_minor
from pricing_service.repricer import cli
from pricing_service.repricer.full import reprice_all, reprice_skus
from pricing_service.repricer.inputs import load_inputs
from pricing_service.repricer.pricer import Pricer
from pricing_service.settings import get_settings
from pricing_service.store.store import OfferStatus, Override, Store
from tests.repricer.helpers import (
    WEEKEND_RULES,
    compile_rules,
    item,
    store_item_with_unknown_field,
    write_rules,
)

FRIDAY_NOON = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)


def _catalogue() -> list[ItemFacts]:
    items = [item(f"SKU-{n:02d}", f"{20 + n}.00") for n in range(12)]
    items += [
        item(f"GAD-{n:02d}", f"{100 + n}.00", category="gadgets", current_price=Decimal("99.00"))
        for n in range(6)
    ]
    items.append(ItemFacts(sku="YEN-1", currency="JPY", list_price=Decimal(1200)))
    return items


async def _offer(store: Store, sku: str, price: str) -> None:
    observation = CompetitorObservation(
        competitor="rival",
        price=Decimal(price),
        currency="USD",
        observed_at=FRIDAY_NOON - timedelta(hours=1),
    )
    await store.put_offers(sku, [OfferStatus(observation=observation, received_at=FRIDAY_NOON)])


@pytest.mark.anyio
async def test_a_full_reprice_publishes_every_sku_as_both_paths_price_it(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    compiled = compile_rules(write_rules(tmp_path / "rules", WEEKEND_RULES))
    catalogue = _catalogue()
    await store.put_items(catalogue)
    for n in range(3):
        await _offer(store, f"GAD-{n:02d}", f"{90 + n}.00")
    pricer = Pricer(store, boundary_lead_seconds=60)
    progress: list[int] = []

    with caplog.at_level(logging.ERROR):
        counts = await reprice_all(
            pricer, compiled, FRIDAY_NOON, chunk_size=5, on_progress=progress.append
        )
    assert "disagree" not in caplog.text
    assert sum(progress) == len(catalogue)
    assert (counts.priced, counts.published, counts.errors) == (len(catalogue),) * 2 + (0,)

    loaded = await load_inputs(
        store, compiled, [i.sku for i in catalogue if i.currency == "USD"], FRIDAY_NOON
    )
    # The batch path on the inputs as they were before publishing: drop our own prices.
    before = [
        entry.model_copy(update={"item": next(i for i in catalogue if i.sku == sku)})
        for sku, entry in loaded.items()
    ]
    batch = decide_batch(compiled, encode_batch(compiled, before, FRIDAY_NOON), FRIDAY_NOON)
    for index, sku in enumerate(batch.skus):
        published = await store.get_schedule(sku, "")
        assert published is not None
        assert int(batch.price[index]) != MISSING
        assert published.windows[0].price == from_minor(int(batch.price[index]), "USD")
        # Friday's price, then the weekend's from Saturday 00:00 New York time.
        assert len(published.windows) >= 2
    beaten = await store.get_schedule("GAD-00", "")
    assert beaten is not None
    assert beaten.windows[0].price == Decimal("89.10")  # the rival's 90.00 beaten by 1%

    again = await reprice_all(pricer, compiled, FRIDAY_NOON, chunk_size=5)
    assert (again.priced, again.published) == (len(catalogue), 0)
    assert len((await store.history("SKU-00"))[0]) == 1


@pytest.mark.anyio
async def test_a_quarantined_offer_leaves_the_last_accepted_one_in_force(
    store: Store, tmp_path: Path
) -> None:
    compiled = compile_rules(write_rules(tmp_path / "rules", WEEKEND_RULES))
    await store.put_items([item("GAD-00", "100.00", category="gadgets")])
    accepted = CompetitorObservation(
        competitor="rival",
        price=Decimal("90.00"),
        currency="USD",
        observed_at=FRIDAY_NOON - timedelta(hours=2),
    )
    outlier = accepted.model_copy(
        update={"price": Decimal("9.00"), "observed_at": FRIDAY_NOON - timedelta(hours=1)}
    )
    held = OfferStatus(
        observation=outlier,
        status="quarantined",
        reason="outlier: -90%",
        received_at=FRIDAY_NOON,
        last_accepted=accepted,
    )
    await store.put_offers("GAD-00", [held])
    loaded = await load_inputs(store, compiled, ["GAD-00"], FRIDAY_NOON)
    assert [o.price for o in loaded["GAD-00"].observations] == [Decimal("90.00")]
    await reprice_skus(Pricer(store, boundary_lead_seconds=60), compiled, ["GAD-00"], FRIDAY_NOON)
    published = await store.get_schedule("GAD-00", "")
    assert published is not None
    assert published.windows[0].price == Decimal("89.10")  # the 90.00 beaten by 1%

    await store.put_offers("GAD-00", [held.model_copy(update={"last_accepted": None})])
    loaded = await load_inputs(store, compiled, ["GAD-00"], FRIDAY_NOON)
    assert loaded["GAD-00"].observations == ()


@pytest.mark.anyio
async def test_an_override_is_published_through_the_pricer(store: Store, tmp_path: Path) -> None:
    compiled = compile_rules(write_rules(tmp_path / "rules"))
    await store.put_items([item("SKU-1", cost=Decimal("30.00"))])
    until = FRIDAY_NOON + timedelta(hours=2)
    await store.set_override(
        "SKU-1", Override(price=Decimal("35.00"), until=until, reason="launch")
    )
    counts = await reprice_skus(
        Pricer(store, boundary_lead_seconds=60), compiled, ["SKU-1"], FRIDAY_NOON
    )
    assert counts.published == 2  # default and app segments
    published = await store.get_schedule("SKU-1", "channel:app")
    assert published is not None
    assert [w.price for w in published.windows] == [Decimal("35.00"), Decimal("47.50")]
    assert published.windows[0].valid_until == int(until.timestamp())
    records, _ = await store.history("SKU-1")
    assert {r.decisions[0]["strategy"] for r in records} == {"override"}
    assert "launch" in records[0].decisions[0]["steps"][0]["detail"]


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("reprice")(cli.reprice)
    app.command("explain-sku")(cli.explain_sku)
    return app


def test_the_cli_reprices_and_explains_a_stored_sku(
    clean_redis: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = write_rules(tmp_path / "rules")
    monkeypatch.setenv("REDIS_URL", clean_redis)
    monkeypatch.setenv("PRICING_RULES_DIR", str(rules))
    get_settings.cache_clear()

    async def seed() -> None:
        store = Store.from_url(clean_redis, retention=timedelta(days=35))
        try:
            await store.put_items([item("SKU-1")])
        finally:
            await store.close()

    asyncio.run(seed())
    runner = CliRunner()
    try:
        reprice = runner.invoke(_app(), ["reprice", "--all"])
        assert reprice.exit_code == 0, reprice.output
        assert "published" in reprice.output
        explained = runner.invoke(
            _app(), ["explain-sku", "SKU-1", "--segment", "channel:app,region:us", "--json"]
        )
        assert explained.exit_code == 0, explained.output
        # The note goes to stderr, which click before 8.2 mixes into the output.
        assert "segment dimension 'region' is not in the ruleset: ignored" in explained.output
        payload = json.loads(explained.output[explained.output.index("{") :])
        assert (payload["price"], payload["segment"]) == ("47.50", "channel:app")
        missing = runner.invoke(_app(), ["explain-sku", "NOPE"])
        assert missing.exit_code == 1
        # An item stored around the API that does not validate is not priced: a script
        # running the command must see it (it exited 0).
        store_item_with_unknown_field(clean_redis, "SKU-1")
        failed = runner.invoke(_app(), ["reprice", "SKU-1"])
        assert failed.exit_code == 1, failed.output
        assert "pricing(s) failed" in failed.output
    finally:
        get_settings.cache_clear()


@pytest.mark.anyio
async def test_an_unchanged_single_window_is_settled_by_the_vectorised_path(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled = compile_rules(write_rules(tmp_path / "rules"))
    await store.put_items([item(f"SKU-{n}") for n in range(8)])
    pricer = Pricer(store, boundary_lead_seconds=60)
    first = await reprice_all(pricer, compiled, FRIDAY_NOON)
    assert first.published == 16  # 8 SKUs in the default and app segments

    single_path_calls: list[str] = []
    compute = pricer.compute

    def counted(*args: Any) -> Any:
        single_path_calls.append(args[1])
        return compute(*args)

    monkeypatch.setattr(pricer, "compute", counted)
    again = await reprice_all(pricer, compiled, FRIDAY_NOON + timedelta(minutes=5))
    assert (again.priced, again.unchanged, again.published) == (16, 16, 0)
    assert single_path_calls == []
