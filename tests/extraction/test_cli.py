"""The `pricing extract` contract, through a small typer app hosting the command."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from crawlers.cli import extract

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "pages"
app = typer.Typer()
app.command("extract")(extract)
app.command("noop")(lambda: None)  # two commands, so `extract` stays a subcommand
runner = CliRunner()


def test_jsonl_one_object_per_file(tmp_path: Path) -> None:
    gz = tmp_path / "page.html.gz"
    gz.write_bytes(gzip.compress((FIXTURES / "jsonld_product.html").read_bytes()))
    outcome = runner.invoke(app, ["extract", "--jsonl", str(FIXTURES / "microdata.html"), str(gz)])
    assert outcome.exit_code == 0, outcome.output
    records = [json.loads(line) for line in outcome.output.splitlines()]
    assert [r["price"] for r in records] == ["59.00", "89.90"]
    expected_keys = {"file", "price", "currency", "availability", "sku", "gtin", "method"}
    assert expected_keys | {"confidence"} <= set(records[0])
    assert records[1]["file"] == str(gz)
    # The option's help names every field a record has.
    helped = runner.invoke(app, ["extract", "--help"], terminal_width=400).output
    assert all(f'"{key}"' in " ".join(helped.split()) for key in records[0]), helped


def test_readable_output() -> None:
    outcome = runner.invoke(app, ["extract", str(FIXTURES / "captcha_dressed.html")])
    assert outcome.exit_code == 0
    assert "blocked" in outcome.output


def test_missing_file_fails() -> None:
    outcome = runner.invoke(app, ["extract", "--jsonl", "/nonexistent/page.html"])
    assert outcome.exit_code == 1
