"""Pages whose only price mark is a text label (the chain's last resort)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from crawlers.extraction import Method, extract_product


def _page(body: str) -> str:
    return f'<html><head><meta charset="utf-8"></head><body>{body}</body></html>'


def test_special_price_after_label_past_a_discount_and_a_struck_suggested_price() -> None:
    page = _page(
        "<table><tr><td><strong>建議售價</strong> <del>$420</del> 元</td></tr>"
        "<tr><td><strong>一次付清特價</strong><b>&nbsp;7&nbsp;折</b> "
        "<span style='font:bold 27px Verdana'>294</span><span> 元 </span></td></tr>"
        "<tr><td>3期0利率 每期<span>$<span>98</span></span></td></tr></table>"
    )
    result = extract_product(page, "https://shop.example.com.tw/item/1")
    assert result.price == Decimal("294")
    assert result.currency == "TWD"
    assert result.method is Method.HEURISTIC
    assert result.price_is_lowest is False


def test_lowest_price_label_is_reported_as_the_lowest_offered_price() -> None:
    page = _page(
        "<ul><li><div class='info'>招牌肉乾</div>"
        "<ul><li>原價：<strike>1,390</strike></li></ul>"  # noqa: RUF001  (the shop writes a fullwidth colon)
        "<div class='pdeal'>最低價$<span>99</span>元起/包</div></li></ul>"
        "<div id='recommend'><div>特價 $129</div></div>"
    )
    result = extract_product(page, "https://shop.example.tw/deal_1.html")
    assert result.price == Decimal("99")
    assert result.price_is_lowest is True


def test_english_label_counts_only_without_any_price_markup() -> None:
    labelled = extract_product(_page("<p>Our price: $12.99</p>"))
    assert labelled.price == Decimal("12.99")
    marked_up = extract_product(_page("<p>Our price: $12.99</p><span class='price'>$10.00</span>"))
    assert marked_up.price == Decimal("10.00")


@pytest.mark.parametrize(
    "body",
    [
        "<p>原價 $1,390 元</p>",
        "<p>建議售價 $420</p>",
        "<p>List price: $49.99</p>",
        "<p>Price: free shipping over $50</p>",
        "<p>Price match: we save you 10% on $100 or more</p>",
        "<div class='related'><p>特價 $129</p></div>",
        "<footer><p>Price: $5.00</p></footer>",
        "<p>Price</p><p>" + "lorem ipsum " * 30 + "$5.00</p>",
    ],
)
def test_former_side_and_foreign_labelled_amounts_give_no_price(body: str) -> None:
    assert extract_product(_page(body)).price is None


def test_several_different_labelled_prices_are_withheld() -> None:
    page = _page("<p>特價 $120</p><p>特價 $150</p>")
    assert extract_product(page).price is None


@pytest.mark.parametrize("text", ["Buy now $5 off", "Our $20 gift card", "Sale $10 vouchers"])
def test_words_that_only_sound_like_labels_give_no_price(text: str) -> None:
    assert extract_product(_page(f"<p>{text}</p>")).price is None


def test_a_now_label_with_a_colon_counts() -> None:
    assert extract_product(_page("<p>Now: $18.50</p>")).price == Decimal("18.50")
