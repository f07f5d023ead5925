"""Competitor crawl settings in the rule files, and `pricing listings import|list|delete`."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
import typer
from typer.testing import CliRunner, Result

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


THREE_LISTINGS = (
    "sku,competitor,url,frequency\n"
    "A-1,megamart,https://megamart.example/p/1,6h\n"
    "A-2,megamart,https://megamart.example/p/2,1d12h\n"
    "A-1,shopright,https://shopright.example/p/1,1d\n"
)


@pytest.fixture
def listings_cli(configured: str, tmp_path: Path) -> typer.Typer:
    """The listings commands, with THREE_LISTINGS imported."""
    app = typer.Typer()
    app.add_typer(cli.listings_app, name="listings")
    csv_file = tmp_path / "three.csv"
    csv_file.write_text(THREE_LISTINGS)
    imported = runner.invoke(app, ["listings", "import", str(csv_file), "--rules", str(RULES)])
    assert imported.exit_code == 0, imported.output
    return app


def test_listings_list_prints_csv_that_imports_back(
    listings_cli: typer.Typer, configured: str, tmp_path: Path
) -> None:
    listed = runner.invoke(listings_cli, ["listings", "list", "--format", "csv"])

    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0] == "sku,competitor,url,frequency,next_crawl_at"
    assert sorted(line.rsplit(",", 1)[0] for line in lines[1:]) == sorted(
        THREE_LISTINGS.splitlines()[1:]
    )
    next_crawl = datetime.fromisoformat(lines[1].rsplit(",", 1)[1])
    assert next_crawl.utcoffset() == timedelta(0)
    assert abs(next_crawl.timestamp() - time.time()) < 60  # new listings are due at once

    exported = tmp_path / "exported.csv"
    exported.write_text(listed.output)
    redis.Redis.from_url(configured).flushdb()
    again = runner.invoke(
        listings_cli, ["listings", "import", str(exported), "--rules", str(RULES)]
    )
    assert again.exit_code == 0, again.output
    assert "3 listing(s) stored, 0 error(s)" in again.output
    relisted = runner.invoke(listings_cli, ["listings", "list", "--format", "csv"])
    assert sorted(line.rsplit(",", 1)[0] for line in relisted.output.splitlines()) == sorted(
        line.rsplit(",", 1)[0] for line in lines
    )


def test_listings_list_filters_by_competitor_and_sku(listings_cli: typer.Typer) -> None:
    def listed(*options: str) -> list[tuple[str, str]]:
        result = runner.invoke(listings_cli, ["listings", "list", "--format", "json", *options])
        assert result.exit_code == 0, result.output
        return sorted((row["sku"], row["competitor"]) for row in json.loads(result.output))

    assert listed() == [("A-1", "megamart"), ("A-1", "shopright"), ("A-2", "megamart")]
    assert listed("--competitor", "megamart") == [("A-1", "megamart"), ("A-2", "megamart")]
    assert listed("--sku", "A-1") == [("A-1", "megamart"), ("A-1", "shopright")]
    assert listed("--sku", "A-1", "--sku", "A-2", "--competitor", "megamart") == [
        ("A-1", "megamart"),
        ("A-2", "megamart"),
    ]
    assert listed("--competitor", "bargainhub") == []

    table = runner.invoke(listings_cli, ["listings", "list", "--competitor", "shopright"])
    assert table.exit_code == 0, table.output
    [header, row, *_] = table.output.splitlines()
    assert header.split()[:4] == ["sku", "competitor", "url", "frequency"]
    assert row.split()[:2] == ["A-1", "shopright"]
    assert table.output.splitlines()[-1] == "1 listing(s)"
    bad = runner.invoke(listings_cli, ["listings", "list", "--sku", "A 1"])
    assert bad.exit_code == 2
    assert "Invalid value for --sku: not a valid id: 'A 1'" in bad.output


def test_listings_delete_by_competitor_sku_and_file(
    listings_cli: typer.Typer, configured: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(configured)

    def delete(*options: str) -> Result:
        return runner.invoke(listings_cli, ["listings", "delete", *options])

    def stored() -> set[tuple[str, str]]:
        due: Any = client.zrange(keys.CrawlQueue(0).due, 0, -1)
        return {keys.parse_due_member(member.decode()) for member in due}

    try:
        dry = delete("--competitor", "megamart", "--dry-run")
        assert dry.exit_code == 0, dry.output
        assert "2 listing(s) would be deleted (dry run)" in dry.output
        assert len(stored()) == 3

        one = delete("--competitor", "megamart", "--sku", "A-2", "--sku", "A-9")
        assert one.exit_code == 0, one.output
        assert "1 listing(s) deleted, 1 not found" in one.output
        assert stored() == {("A-1", "megamart"), ("A-1", "shopright")}
        assert client.hget(keys.listings("A-2"), "megamart") is None
        assert client.zscore(keys.competitor_periods("megamart"), "A-2") is None

        refs = tmp_path / "refs.csv"
        refs.write_text("competitor,sku\nshopright,A-1\nshop right,A-1\n")
        refused = delete("--file", str(refs))
        assert refused.exit_code == 1
        assert f"{refs}:3: competitor: String should match pattern" in refused.output
        assert "1 error(s); nothing deleted" in refused.output
        assert len(stored()) == 2

        refs.write_text("competitor,sku\nshopright,A-1\n")
        from_file = delete("--file", str(refs))
        assert from_file.exit_code == 0, from_file.output
        assert "1 listing(s) deleted" in from_file.output

        every = delete("--competitor", "megamart")
        assert every.exit_code == 0, every.output
        assert "1 listing(s) deleted" in every.output
        assert stored() == set()
        assert client.exists(keys.listings("A-1")) == 0

        nothing = delete("--competitor", "megamart")
        assert nothing.exit_code == 0, nothing.output
        assert "no listing matched; nothing deleted" in nothing.output
    finally:
        client.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ([], "give either --competitor or --file"),
        (["--competitor", "megamart", "--file", "x.csv"], "give either --competitor or --file"),
        (["--sku", "A-1"], "give either --competitor or --file"),
        (["--competitor", "Mega Mart"], "Invalid value for --competitor: not a valid id"),
    ],
)
def test_listings_delete_refuses_unclear_requests(
    listings_cli: typer.Typer, tmp_path: Path, options: list[str], message: str
) -> None:
    (tmp_path / "x.csv").write_text("sku,competitor\n")
    options = [str(tmp_path / o) if o == "x.csv" else o for o in options]
    result = runner.invoke(listings_cli, ["listings", "delete", *options])
    assert result.exit_code == 2
    assert message in result.output


def test_demo_site_prices_and_stock_move_over_time() -> None:
    state = SiteState(period_seconds=100)
    prices = {state.price("A-1", now=moment) for moment in range(0, 100, 10)}
    stock = {state.in_stock(sku, now=0) for sku in (f"S-{n}" for n in range(50))}
    assert len(prices) > 5
    assert stock == {True, False}
    state.fixed_prices["A-1"] = Decimal("9.99")
    assert state.price("A-1", now=42) == Decimal("9.99")
