"""`pricing import` through a local typer app, against the test Redis."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
import typer
from typer.testing import CliRunner

from pricing_service.api.cli import import_items, serve
from pricing_service.store import keys

app = typer.Typer()
app.command("import")(import_items)
app.command("serve")(serve)


@pytest.fixture
def env(clean_redis: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("REDIS_URL", clean_redis)
    return clean_redis


def _skus(redis_url: str) -> set[str]:
    client = redis.Redis.from_url(redis_url)
    try:
        return {sku.decode() for sku in client.smembers(keys.SKU_INDEX)}
    finally:
        client.close()


def test_import_csv_stores_valid_rows_and_reports_bad_lines(env: str, tmp_path: Path) -> None:
    catalogue = tmp_path / "items.csv"
    catalogue.write_text(
        "sku,currency,list_price,cost,tags\n"
        "A-1,USD,19.99,10.00,sale|new\n"
        "B-2,USD,19.999,,\n"
        "C-3,EUR,5,,\n"
    )
    result = CliRunner().invoke(app, ["import", str(catalogue)])
    assert result.exit_code == 1, result.output
    assert f"{catalogue}:3: list_price" in result.output
    assert "2 item(s) stored, 1 error(s)" in result.output
    assert _skus(env) == {"A-1", "C-3"}


def test_import_jsonl(env: str, tmp_path: Path) -> None:
    catalogue = tmp_path / "items.jsonl"
    catalogue.write_text('{"sku": "A", "currency": "USD", "list_price": "1.00"}\n\n')
    result = CliRunner().invoke(app, ["import", str(catalogue)])
    assert result.exit_code == 0, result.output
    assert _skus(env) == {"A"}


def test_import_reads_excels_utf8_csv_and_refuses_other_encodings(env: str, tmp_path: Path) -> None:
    excel = tmp_path / "excel.csv"  # "CSV UTF-8" starts with a byte-order mark
    excel.write_bytes("\ufeffsku,currency,brand\nA-1,EUR,Café\n".encode())
    result = CliRunner().invoke(app, ["import", str(excel)])
    assert result.exit_code == 0, result.output
    legacy = tmp_path / "legacy.csv"  # Windows-1252
    legacy.write_bytes("sku,currency,brand\nB-1,EUR,Caf\xe9\n".encode("latin-1"))
    refused = CliRunner().invoke(app, ["import", str(legacy)])
    assert refused.exit_code == 1
    assert f"{legacy}:2: not UTF-8 text (byte 0xe9 at column 12)" in refused.output
    assert _skus(env) == {"A-1"}  # nothing of the refused file


def test_import_refuses_other_files(env: str, tmp_path: Path) -> None:
    other = tmp_path / "items.xml"
    other.write_text("<x/>")
    assert CliRunner().invoke(app, ["import", str(other)]).exit_code == 2


def test_serve_has_help() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"])
    assert result.exit_code == 0
    assert "--workers" in result.output
