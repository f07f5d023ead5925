"""Each link of the chain, on a small hand-written page in that markup style."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from crawlers.extraction import Availability, Method, ProductResult, extract_product
from crawlers.extraction.document import decode_html

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "pages"


def extract(name: str, url: str = "https://shop.example/p/1") -> ProductResult:
    return extract_product((FIXTURES / name).read_bytes(), url)


def test_jsonld_product_with_offer_and_shipping() -> None:
    result = extract("jsonld_product.html")
    assert result.price == Decimal("89.90")
    assert result.currency == "EUR"
    assert result.availability is Availability.IN_STOCK
    assert (result.sku, result.gtin) == ("TS-100", "4006381333931")
    assert result.shipping == Decimal("4.95")
    assert result.method is Method.JSON_LD
    assert result.confidence >= 0.9


def test_free_shipping_is_zero_not_unknown() -> None:
    # Unknown shipping leaves the offer out of every strategy that adds shipping.
    page = (FIXTURES / "jsonld_product.html").read_text().replace('"4.95"', '"0.00"')
    assert '"0.00"' in page
    result = extract_product(page.encode(), "https://shop.example/p/1")
    assert result.shipping == Decimal("0.00")


def test_jsonld_graph_with_aggregate_offer() -> None:
    result = extract("jsonld_graph.html")
    assert (result.price, result.currency, result.sku) == (Decimal(25), "GBP", "DL-7")
    assert not result.price_is_lowest


def test_malformed_jsonld_is_repaired() -> None:
    result = extract("jsonld_malformed.html")
    assert result.price == Decimal("39.99")
    assert result.availability is Availability.OUT_OF_STOCK
    assert result.method is Method.JSON_LD


def test_variant_selected_by_url() -> None:
    result = extract("jsonld_variants.html", "https://shop.example/tee?variant=TEE-XL")
    assert (result.price, result.sku, result.price_is_lowest) == (Decimal(18), "TEE-XL", False)


def test_variant_page_without_selection_gives_lowest_price_marked() -> None:
    result = extract("jsonld_variants.html", "https://shop.example/tee")
    assert result.price == Decimal(15)
    assert result.price_is_lowest
    assert result.confidence < 0.9


def test_microdata_ignores_struck_price_and_related_item() -> None:
    result = extract("microdata.html")
    assert (result.price, result.currency, result.sku) == (Decimal(59), "USD", "CG-42")
    assert result.method is Method.MICRODATA


def test_rdfa() -> None:
    result = extract("rdfa.html")
    assert (result.price, result.currency) == (Decimal("24.50"), "GBP")
    assert result.availability is Availability.OUT_OF_STOCK
    assert result.method is Method.RDFA


def test_opengraph_takes_price_not_original_price() -> None:
    result = extract("opengraph.html")
    assert (result.price, result.currency, result.sku) == (Decimal(32), "PLN", "YM-3")
    assert result.method is Method.OPENGRAPH


def test_next_data_state() -> None:
    result = extract("next_data.html")
    assert (result.price, result.currency, result.sku) == (Decimal("129.99"), "CAD", "HP-9")
    assert result.method is Method.JS_STATE


@pytest.mark.parametrize(
    ("name", "price", "currency", "sku"),
    [
        ("latin1_charset.html", Decimal("24.90"), "EUR", "CB-31"),
        ("utf8_bom.html", Decimal("12.50"), "EUR", "OK-12"),
    ],
)
def test_encodings(name: str, price: Decimal, currency: str, sku: str) -> None:
    result = extract(name)
    assert (result.price, result.currency, result.sku) == (price, currency, sku)


def test_latin1_text_is_decoded_with_declared_charset() -> None:
    assert "Crème brûlée" in decode_html((FIXTURES / "latin1_charset.html").read_bytes())
    assert decode_html((FIXTURES / "utf8_bom.html").read_bytes()).startswith("<html>")
