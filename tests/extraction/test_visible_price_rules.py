"""Rules of the visible-page price heuristics, each on a small hand-written page."""

from __future__ import annotations

from decimal import Decimal

import pytest

from crawlers.extraction import Method, extract_product
from crawlers.extraction.money import currency_in_text


def _product(block: str, after: str = "") -> str:
    """A page whose title and `block` share one container, the product's own block."""
    return (
        "<html><head><title>Lamp</title></head><body>"
        f'<div class="product"><h1>Lamp</h1>{block}</div>{after}</body></html>'
    )


def _price(html: str) -> Decimal | None:
    return extract_product(html, "https://shop.example/lamp").price


def test_price_in_a_bootstrap_list_is_not_a_list_price() -> None:
    block = '<ul class="list-unstyled" id="price-list"><li class="price">40.00€</li></ul>'
    assert _price(_product(block)) == Decimal("40.00")


def test_slider_outside_the_product_block_still_holds_other_products() -> None:
    slider = '<div class="slider"><span class="price">$12.00</span></div>'
    assert _price(_product("<p>Made of brass.</p>", after=slider)) is None


def test_related_products_inside_the_product_block_stay_foreign() -> None:
    related = '<div class="related-items"><span class="price">$12.00</span></div>'
    assert _price(_product(related)) is None


def test_price_inside_a_link_to_another_page_is_a_product_card() -> None:
    card = '<a href="/p/other-lamp"><span class="price">$19.00</span></a>'
    assert _price(_product(card)) is None
    same_page_anchor = '<a href="#reviews"><span class="price">$45.00</span></a>'
    assert _price(_product(same_page_anchor)) == Decimal("45.00")


@pytest.mark.parametrize(
    "block",
    [
        # widget names inside the product's own block do not hide its price
        '<div class="gallery-slider"><span class="price-now">$45.00</span></div>',
        '<div class="cart-wrapper"><span class="price">$45.00</span></div>',
        # a delivery cost, even inside the product's own block, is no rival
        '<span class="price">$45.00</span>'
        '<div class="delivery-options"><span class="price">$10.99</span></div>',
        # nor is a price labelled by its tax treatment beside the unlabelled one
        '<span class="price">$45.00</span><p class="price-tax">Ex tax: $37.19</p>',
    ],
)
def test_product_blocks_headline_price_is_found_uncontested(block: str) -> None:
    result = extract_product(_product(block))
    assert (result.price, result.method) == (Decimal("45.00"), Method.HEURISTIC)
    assert result.confidence >= 0.7


def test_only_tax_labelled_prices_stay_contested() -> None:
    block = '<p class="price-excl-vat">100.00 €</p><p class="price-incl-vat">121.00 €</p>'
    assert _price(_product(block)) is None


def test_discounted_price_is_the_current_price() -> None:
    block = '<s>€ 99,00</s><div class="discountPrice"><span class="prodPrice">€ 88,00</span></div>'
    assert _price(_product(block)) == Decimal("88.00")


@pytest.mark.parametrize(
    ("shown", "amount"),
    [
        ("173<sup>34</sup> <span>Lei</span>", "173.34"),
        ('$229<span class="cents">99</span>', "229.99"),
        ("1.229<sup>99</sup> €", "1229.99"),
    ],
)
def test_cents_in_their_own_element_are_the_fraction(shown: str, amount: str) -> None:
    assert _price(_product(f'<p class="price">{shown}</p>')) == Decimal(amount)


def test_hidden_machine_copy_inside_the_price_is_not_read() -> None:
    shown = '<span>1,679</span> <span style="display:none">1679</span> ₪'
    assert _price(_product(f'<div class="price">{shown}</div>')) == Decimal("1679")


def test_price_converted_into_the_visitors_currency_is_not_the_offer() -> None:
    converted = '<div class="price">Approximately US $2.66</div>'
    assert _price(_product(converted)) is None


@pytest.mark.parametrize(
    ("text", "host", "currency"),
    [
        ("270,00 Kn", "", "HRK"),
        ("294 元", "www.shop.com.tw", "TWD"),
        ("120 din", "", "RSD"),
        ("100 box", "", None),
    ],
)
def test_local_currency_symbols_price_parser_misses(
    text: str, host: str, currency: str | None
) -> None:
    assert currency_in_text(text, host) == currency
