"""Competitor crawl settings in the rule files, and `pricing listings import`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import redis
import typer
from typer.testing import CliRunner

from crawlers import cli, keys
from crawlers.demo_site import SiteState
from crawlers.worker import extraction_override
from pricing_service.rules.loader import check_texts
from pricing_service.settings import get_settings

RULES = Path(__file__).parents[2] / "rules"
runner = CliRunner()


def competitors_file(body: str) -> dict[str, str]:
    files = {p.name: p.read_text() for p in RULES.glob("*.yaml") if p.name != "competitors.yaml"}
    return {**files, "competitors.yaml": body}


def test_crawl_settings_are_read_with_defaults() -> None:
    ruleset, diagnostics = check_texts(
        competitors_file(
            "competitors:\n"
            "  megamart:\n"
            "    name: MegaMart\n"
            "    domains: [megamart.example]\n"
            "    requests_per_second: 0.5\n"
            "    crawl_delay: 3s\n"
            "    headers: {Accept-Language: en-GB}\n"
            "    extraction:\n"
            "      megamart.example:\n"
            '        price: {css: "span.now"}\n'
            "        sku: {xpath: \"//meta[@name='sku']\", attribute: content}\n"
            "  shopright:\n"
            "    name: ShopRight\n"
            "  bargainhub:\n"
            "    name: BargainHub\n"
        )
    )
    assert ruleset is not None, diagnostics
    megamart, shopright = ruleset.competitors["megamart"], ruleset.competitors["shopright"]
    assert (float(megamart.requests_per_second), megamart.crawl_delay) == (
        0.5,
        timedelta(seconds=3),
    )
    override = extraction_override(megamart, "www.megamart.example")
    assert override is not None
    assert override.price is not None
    assert override.price.css == "span.now"
    assert (shopright.concurrency, shopright.proxy, shopright.extraction) == (2, None, {})


def test_crawl_settings_errors_point_at_file_line_column() -> None:
    _, diagnostics = check_texts(
        competitors_file(
            "competitors:\n"
            "  megamart:\n"
            "    name: MegaMart\n"
            "    domains: [megamart.example]\n"
            "    concurrency: 0\n"
            "    proxy: ftp://proxy\n"
            "    extraction:\n"
            "      megamart.example:\n"
            '        price: {css: "span[[", xpath: "//a"}\n'
        )
    )
    messages = {
        f"{d.line}:{d.column}: {d.message}" for d in diagnostics if d.file == "competitors.yaml"
    }
    assert "5:18: must be at least 1" in messages
    assert any(m.startswith("6:12: ") for m in messages)
    assert "9:16: a field selector needs exactly one of css, xpath, json_path" in messages


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch, clean_redis: str) -> Iterator[str]:
    monkeypatch.setenv("REDIS_URL", clean_redis)
    get_settings.cache_clear()
    try:
        yield clean_redis
    finally:
        get_settings.cache_clear()


def test_listings_import_stores_valid_rows_and_reports_the_rest(
    configured: str, tmp_path: Path
) -> None:
    csv_file = tmp_path / "listings.csv"
    csv_file.write_text(
        "sku,competitor,url,frequency\n"
        "A-1,megamart,https://megamart.example/p/1,6h\n"
        "A-2,nobody,https://megamart.example/p/2,6h\n"
        "A-3,megamart,https://elsewhere.example/p/3,6h\n"
        "A-4,megamart,https://megamart.example/p/4,often\n"
        "A-5,shopright,https://www.shopright.example/p/5,1d\n"
        "A-1,megamart,https://megamart.example/p/9,1h\n"
        "A-6,megamart,https://megamart.example/p/6,6h,extra\n"
        "A-7,megamart,https://megamart.example/p/7,1000d\n"
    )
    app = typer.Typer()
    app.add_typer(cli.listings_app, name="listings")

    result = runner.invoke(app, ["listings", "import", str(csv_file), "--rules", str(RULES)])

    assert result.exit_code == 1
    assert "2 listing(s) stored, 6 error(s)" in result.output
    assert f"{csv_file}:7: A-1 at megamart is on line 2 too" in result.output
    assert f"{csv_file}:8: more cells than the header has columns" in result.output
    assert (
        f"{csv_file}:9: frequency: crawl at least every 90 days, got every 1000d" in result.output
    )
    assert f"{csv_file}:3: unknown competitor 'nobody'" in result.output
    assert f"{csv_file}:4: elsewhere.example is not among megamart's domains" in result.output
    assert f"{csv_file}:5: frequency:" in result.output
    client = redis.Redis.from_url(configured)
    try:
        assert client.zcard(keys.CrawlQueue(0).due) == 2
        assert client.hget(keys.listings("A-5"), "shopright") is not None
    finally:
        client.close()


def test_listings_import_reads_a_bom_and_refuses_other_encodings(
    configured: str, tmp_path: Path
) -> None:
    app = typer.Typer()
    app.add_typer(cli.listings_app, name="listings")
    excel = tmp_path / "excel.csv"
    excel.write_bytes(
        "\ufeffsku,competitor,url,frequency\nA-1,megamart,https://megamart.example/p/1,6h\n".encode()
    )
    result = runner.invoke(app, ["listings", "import", str(excel), "--rules", str(RULES)])
    assert result.exit_code == 0, result.output
    legacy = tmp_path / "legacy.csv"
    legacy.write_bytes(
        b"sku,competitor,url,frequency\nA-\xe9,megamart,https://megamart.example/p/2,6h\n"
    )
    refused = runner.invoke(app, ["listings", "import", str(legacy), "--rules", str(RULES)])
    assert refused.exit_code == 1
    assert f"{legacy}:2: not UTF-8 text (byte 0xe9 at column 3)" in refused.output


def test_demo_site_prices_and_stock_move_over_time() -> None:
    state = SiteState(period_seconds=100)
    prices = {state.price("A-1", now=moment) for moment in range(0, 100, 10)}
    stock = {state.in_stock(sku, now=0) for sku in (f"S-{n}" for n in range(50))}
    assert len(prices) > 5
    assert stock == {True, False}
    state.fixed_prices["A-1"] = Decimal("9.99")
    assert state.price("A-1", now=42) == Decimal("9.99")
