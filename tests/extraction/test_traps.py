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
