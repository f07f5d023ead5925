"""Generic rules added for real pages: each on a small hand-written page."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from crawlers.extraction import Method, ProductResult, extract_product

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "pages"


def extract(name: str, url: str = "https://shop.example/p/1") -> ProductResult:
    return extract_product((FIXTURES / name).read_bytes(), url)


def test_unpriced_offer_wrapping_a_priced_offer_is_read() -> None:
    result = extract("microdata_nested_offer.html")
    assert (result.price, result.currency) == (Decimal("12.99"), "GBP")
    assert result.method is Method.MICRODATA


def test_code_shown_as_reference_beats_declared_sku_the_page_never_prints() -> None:
    result = extract("sku_shown_reference.html")
    assert result.sku == "1002/710"
    assert result.price == Decimal("69.95")


def test_sku_as_printed_beats_its_unformatted_content_attribute() -> None:
    assert extract("sku_microdata_formatted.html").sku == "466/7999"


SHOP_PAGE = """<html><head><script type="application/ld+json">
{{"@type": "Product", "name": "Regal", "sku": "{declared}",
  "offers": {{"@type": "Offer", "price": "99.95", "priceCurrency": "EUR"}}}}
</script></head><body><h1>Regal</h1><p class="price">99,95 €</p>{body}</body></html>"""


@pytest.mark.parametrize(
    ("label", "code"),
    [
        ("Bestellnummer", "79961"),
        ("Cod produs:", "DR2401"),
        ("ID Produto", "1236291"),
        ("Šifra:", "0638"),
    ],
)
def test_labelled_code_is_read_when_nothing_is_declared(label: str, code: str) -> None:
    html = f"<html><body><h1>Regal</h1><p>{label} {code}</p></body></html>"
    assert extract_product(html, "https://shop.example/p").sku == code


def test_declared_sku_printed_on_the_page_is_kept() -> None:
    body = "<p>SKU: AB-1234</p><p>Bestellnummer 79961</p>"
    html = SHOP_PAGE.format(declared="AB-1234", body=body)
    assert extract_product(html, "https://shop.example/p").sku == "AB-1234"


def test_declared_sku_not_printed_gives_way_to_labelled_code() -> None:
    html = SHOP_PAGE.format(declared="INTERNAL-77X", body="<p>Bestellnummer 79961</p>")
    assert extract_product(html, "https://shop.example/p").sku == "79961"


def test_declared_sku_kept_when_the_page_shows_no_code() -> None:
    html = SHOP_PAGE.format(declared="INTERNAL-77X", body="<p>Solid wood</p>")
    assert extract_product(html, "https://shop.example/p").sku == "INTERNAL-77X"
