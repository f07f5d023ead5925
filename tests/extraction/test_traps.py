"""Prices that must never be picked, and pages that must yield no price at all."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from crawlers.extraction import Availability, Method, extract_product

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "pages"


def _page(body: str) -> str:
    return f"<html><head><title>Toaster</title></head><body><h1>Toaster</h1>{body}</body></html>"


def test_visible_page_picks_current_price_over_every_trap() -> None:
    result = extract_product((FIXTURES / "heuristic_traps.html").read_bytes())
    assert result.price == Decimal("199.99")
    assert result.currency == "USD"
    assert result.method is Method.HEURISTIC
    assert result.availability is Availability.IN_STOCK
    assert result.sku == "EM-2000"


@pytest.mark.parametrize(
    "trap",
    [
        '<span class="price"><del>$49.99</del></span>',
        '<span class="price old-price">$49.99</span>',
        '<span class="price" style="text-decoration: line-through">$49.99</span>',
        '<span class="price">Free shipping over $50</span>',
        '<span class="price">$3.20 / kg</span>',
        '<span class="price-per-unit">$3.20</span>',
        '<span class="price">4.5 stars (312 reviews)</span>',
        '<div class="related-products"><span class="price">$12.00</span></div>',
    ],
)
def test_trap_alone_gives_no_price(trap: str) -> None:
    assert extract_product(_page(trap)).price is None


def test_conflicting_visible_prices_lower_confidence() -> None:
    clear = extract_product(_page('<span class="price">$20.00</span>'))
    contested = extract_product(
        _page('<span class="price">$20.00</span><span class="price">$25.00</span>')
    )
    assert clear.confidence > contested.confidence


def test_out_of_stock_statement_without_price() -> None:
    result = extract_product((FIXTURES / "heuristic_out_of_stock.html").read_bytes())
    assert result.availability is Availability.OUT_OF_STOCK
    assert result.price is None


@pytest.mark.parametrize("name", ["captcha_dressed.html", "error_dressed.html"])
def test_blocked_or_error_page_dressed_as_product_gives_no_price(name: str) -> None:
    result = extract_product((FIXTURES / name).read_bytes())
    assert result.blocked
    assert result.method is Method.BLOCKED
    assert result.price is None
    assert result.confidence == 0.0


@pytest.mark.parametrize("price", ["403.99", "500.00", "404"])
def test_a_price_that_looks_like_a_status_code_is_not_an_error_page(price: str) -> None:
    page = (
        '<html><head><title>Kettle</title><script type="application/ld+json">'
        '{"@type": "Product", "name": "Kettle", "offers": {"@type": "Offer", '
        f'"price": "{price}", "priceCurrency": "USD"}}}}</script></head>'
        f"<body><h1>Kettle</h1><p>Now ${price}</p></body></html>"
    )
    result = extract_product(page.encode())
    assert not result.blocked
    assert result.price == Decimal(price)


def test_a_short_page_saying_404_is_still_an_error_page() -> None:
    result = extract_product(
        b"<html><head><title>Oops</title></head><body>404 - gone</body></html>"
    )
    assert result.blocked
    assert result.price is None


@pytest.mark.parametrize(
    "title", ["Peugeot 403 model car | Shop", "Demo product BENCH-404 | Demo Shop", "Chair 500"]
)
def test_a_model_number_that_looks_like_a_status_code_is_not_an_error_page(title: str) -> None:
    page = (
        f"<html><head><title>{title}</title></head><body><h1>{title}</h1>"
        '<span class="price">$20.00</span></body></html>'
    )
    result = extract_product(page.encode())
    assert not result.blocked
    assert result.price == Decimal("20.00")


@pytest.mark.parametrize(
    "title",
    ["404", "404 Not Found", "Error 500", "503 Service Unavailable", "HTTP 403 - Forbidden"],
)
def test_a_status_title_is_an_error_page(title: str) -> None:
    page = f"<html><head><title>{title}</title></head><body><p>$20.00</p></body></html>"
    assert extract_product(page.encode()).blocked


def test_recaptcha_wall_is_blocked() -> None:
    page = "<html><head><title>Shop</title></head><body><div>Please solve the reCAPTCHA.</div>"
    assert extract_product(page.encode() + b"</body></html>").blocked
