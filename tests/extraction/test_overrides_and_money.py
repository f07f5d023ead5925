"""Per-domain overrides, JSON endpoints, exact money and currency mapping."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawlers.extraction import (
    Availability,
    ExtractionOverride,
    FieldSelector,
    InvalidOverrideError,
    Method,
    extract_product,
    extract_product_json,
)
from crawlers.extraction.money import normalize_currency, parse_structured_amount

PAGE = """<html><head><script type="application/ld+json">
{"@type": "Product", "sku": "A1", "offers": {"price": "10.00", "priceCurrency": "USD"}}
</script></head><body><h1>Thing</h1><b id="real">$8.50</b>
<i data-stock="sold out"></i></body></html>"""


def test_css_override_wins_over_chain() -> None:
    override = ExtractionOverride(domain="shop.example", price=FieldSelector(css="#real"))
    result = extract_product(PAGE, "https://shop.example/p", override=override)
    assert (result.price, result.method, result.sku) == (Decimal("8.50"), Method.OVERRIDE, "A1")


def test_xpath_override_with_attribute() -> None:
    override = ExtractionOverride(
        domain="shop.example",
        availability=FieldSelector(xpath="//i[@data-stock]", attribute="data-stock"),
    )
    result = extract_product(PAGE, override=override)
    assert result.availability is Availability.OUT_OF_STOCK
    assert result.price == Decimal("10.00")  # not overridden: from JSON-LD


def test_json_endpoint_override() -> None:
    override = ExtractionOverride(
        domain="api.shop.example",
        price=FieldSelector(json_path="data.items[0].price"),
        currency=FieldSelector(json_path="data.currency"),
        sku=FieldSelector(json_path="data.items[0].id"),
    )
    document = '{"data": {"currency": "EUR", "items": [{"id": "X9", "price": 12.35}]}}'
    result = extract_product_json(document, override)
    assert (result.price, result.currency, result.sku) == (Decimal("12.35"), "EUR", "X9")


@pytest.mark.parametrize(
    "selector",
    [{}, {"css": "a", "xpath": "//a"}, {"xpath": "//a[@"}, {"css": "a[[["}],
)
def test_invalid_override_is_rejected(selector: dict[str, str]) -> None:
    with pytest.raises(InvalidOverrideError):
        FieldSelector(**selector)


def test_json_output_uses_decimal_strings() -> None:
    result = extract_product(PAGE)
    assert result.to_json_dict()["price"] == "10.00"


@given(st.decimals(min_value=Decimal("0.01"), max_value=Decimal("999999"), places=2))
def test_structured_amount_is_exact(amount: Decimal) -> None:
    assert parse_structured_amount(str(amount)) == amount


@pytest.mark.parametrize(
    ("raw", "host", "iso"),
    [
        ("$", "www.bestbuy.ca", "CAD"),
        ("$", "www.shop.com", "USD"),
        ("€", "", "EUR"),
        ("£", "", "GBP"),
        ("kr", "shop.se", "SEK"),
        ("zł", "", "PLN"),
        ("usd", "", "USD"),
    ],
)
def test_currency_symbols_map_to_iso_codes(raw: str, host: str, iso: str) -> None:
    assert normalize_currency(raw, host) == iso
