"""Generic rules added for real pages: each on a small hand-written page."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from crawlers.extraction import Method, ProductResult, extract_product

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "pages"


def extract(name: str, url: str = "https://shop.example/p/1") -> ProductResult:
    return extract_product((FIXTURES / name).read_bytes(), url)


def test_unpriced_offer_wrapping_a_priced_offer_is_read() -> None:
    result = extract("microdata_nested_offer.html")
    assert (result.price, result.currency) == (Decimal("12.99"), "GBP")
    assert result.method is Method.MICRODATA
