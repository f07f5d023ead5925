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


STRUCTURED_AND_VISIBLE = """<html><head><script type="application/ld+json">
{{"@type": "Product", "name": "Pillows", "sku": "PL-2",
  "offers": {{"@type": "Offer", "price": "{structured}", "priceCurrency": "USD"}}}}
</script></head><body><h1>Pillows</h1>{body}</body></html>"""


def test_one_clear_visible_price_overrules_a_structured_price_not_shown() -> None:
    body = '<div class="current-price">$200</div><p>Starting bid 150 dollars</p>'
    html = STRUCTURED_AND_VISIBLE.format(structured="150", body=body)
    result = extract_product(html, "https://shop.example/item/1")
    assert (result.price, result.method) == (Decimal(200), Method.HEURISTIC)
    assert result.currency == "USD"
    assert 0.35 <= result.confidence < 0.9


def test_structured_price_kept_when_the_page_shows_it() -> None:
    body = '<div class="price">$150</div><div class="price">$150</div>'
    html = STRUCTURED_AND_VISIBLE.format(structured="150", body=body)
    result = extract_product(html, "https://shop.example/item/1")
    assert (result.price, result.method) == (Decimal(150), Method.JSON_LD)


def test_structured_price_kept_when_visible_digits_only_split_differently() -> None:
    body = '<div class="product-price">173<sup>34</sup> Lei</div>'
    html = STRUCTURED_AND_VISIBLE.format(structured="173.34", body=body)
    result = extract_product(html, "https://shop.example/item/1")
    assert (result.price, result.method) == (Decimal("173.34"), Method.JSON_LD)


def test_structured_price_kept_when_visible_prices_are_contested() -> None:
    body = '<div class="price">$200</div><div class="price">$180</div>'
    html = STRUCTURED_AND_VISIBLE.format(structured="150", body=body)
    result = extract_product(html, "https://shop.example/item/1")
    assert (result.price, result.method) == (Decimal(150), Method.JSON_LD)


def test_class_names_around_the_title_do_not_mark_a_foreign_container() -> None:
    html = """<html><body>
    <header class="site-header"><h1>Shop logo</h1><span class="cart-price">€ 5,00</span></header>
    <div id="detail-header"><div class="col-right no-slider">
      <h1>Storia perduta</h1>
      <div class="price"><strong>€ <span class="actual-price">17,10</span></strong></div>
    </div></div>
    <div class="product-slider"><span class="price">€ 20,90</span></div>
    </body></html>"""
    result = extract_product(html, "https://shop.example/libri/1")
    assert (result.price, result.method) == (Decimal("17.10"), Method.HEURISTIC)


def test_other_sellers_offers_are_not_the_main_price() -> None:
    html = """<html><body><h1>Cat tree</h1>
    <form id="addToCart"><span id="price_inside_buybox" class="a-color-price">66,75 €</span>
    <input type="submit" value="Ajouter au panier"></form>
    <div id="mbc"><div class="a-box mbc-offer-row"><span class="a-color-price">65,27 €</span></div>
    <div class="a-box mbc-offer-row"><span class="a-color-price">65,27 €</span></div></div>
    </body></html>"""
    result = extract_product(html, "https://www.amazon.fr/dp/B000000001")
    assert (result.price, result.currency) == (Decimal("66.75"), "EUR")


def test_numeric_id_ending_the_url_is_the_sku_when_the_markup_uses_it() -> None:
    html = '<html><body><h1>Carrier</h1><button data-productid="987929">Buy</button></body></html>'
    result = extract_product(html, "https://kids.example/carriers/BabyBjorn_One-987929.html")
    assert result.sku == "987929"


def test_numeric_id_in_the_url_alone_is_not_a_sku() -> None:
    html = "<html><body><h1>Baby carrier</h1><p>Model 2020</p></body></html>"
    result = extract_product(html, "https://kids.example/carriers/BabyBjorn_One-987929.html")
    assert result.sku is None


def test_declared_sku_wins_over_the_url_id() -> None:
    html = STRUCTURED_AND_VISIBLE.format(
        structured="150", body='<p>SKU: PL-2</p><a data-id="987929">Buy</a>'
    )
    result = extract_product(html, "https://shop.example/pillows-987929.html")
    assert result.sku == "PL-2"
