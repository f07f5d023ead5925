"""Real pages from the shared benchmark (see tests/fixtures/pages/README.md)."""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from pathlib import Path

import pytest

from crawlers.extraction import extract_product

REAL = Path(__file__).resolve().parent.parent / "fixtures" / "pages" / "real"
TRUTH = json.loads((REAL / "ground-truth.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("page_id", sorted(TRUTH))
def test_real_page_matches_annotation(page_id: str) -> None:
    expected = TRUTH[page_id]
    html = gzip.decompress((REAL / f"{page_id}.html.gz").read_bytes())
    result = extract_product(html, expected["url"])
    if "price" in expected:
        assert result.price in {Decimal(p) for p in expected["price"]}
    else:
        assert result.price is None
    assert (result.availability or "InStock") in expected["availability"]
    assert result.sku in expected["sku"]
