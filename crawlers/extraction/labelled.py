"""Prices that only a text label marks: the chain's last resort.

Older shops and many CJK shops mark nothing up: no schema.org data and no element
whose class says "price", only text such as `一次付清特價 7 折 294 元` or
`最低價$99元起/包`. Here a price is an amount with a currency sign straight after a
label that says "price" and is not a former or suggested price (`原價`, `建議售價`,
"list price"). A label that says "lowest" or an amount followed by "from" (`起`)
makes the answer the lowest offered price, marked as such.

It runs only when neither structured data nor the price elements gave anything, and
several different labelled amounts give a confidence below the reporting threshold.
"""

from __future__ import annotations

import re

from selectolax.lexbor import LexborNode

from crawlers.extraction.document import Page
from crawlers.extraction.evidence import Evidence, first_unless_contested
from crawlers.extraction.heuristics import (
    CONFIDENCE_CONTESTED,
    CONFIDENCE_DOMINANT,
    ForeignContainers,
    is_former_or_side_price,
)
from crawlers.extraction.money import currency_in_text, parse_display_amount
from crawlers.extraction.result import Method

_CURRENT_LABEL = re.compile(
    r"特價|特价|售價|售价|優惠價|优惠价|促銷價|促销价|活動價|活动价|會員價|会员价|網路價|网路价|"
    r"價格|价格|最低價|最低价|販売価格|価格|"
    # "Our price", "Sale price", "Now: $5": never "now" or "our" alone ("Buy now $5 off").
    r"\b(?:price|preis|prix|precio|prezzo|preço|cena|pris|hinta)\b|\bnow\s*:",
    re.IGNORECASE,
)
# What precedes a label that makes it a former or reference price.
_FORMER_LABEL_BEFORE = re.compile(
    r"(?:原|建議|建议|定|市|參考|参考|通常|希望小売|list|regular|original|was|compare(?:\s+at)?|"
    r"rrp|msrp|uvp|statt|retail|unit|per)\s*$",
    re.IGNORECASE,
)
_LOWEST_LABEL = re.compile(r"最低|\bfrom\b|\bab\b|\bdès\b|\bdesde\b|\bda\b", re.IGNORECASE)
_SIGN_BEFORE = r"(?:NT\$|US\$|HK\$|R\$|\$|€|£|¥|￥|₩|Rs\.?)"
_SIGN_AFTER = r"(?:元|円|€|zł|Kč|kr|lei|₽|₩)"
_AMOUNT = r"\d{1,3}(?:[,.\u00a0]\d{3})*(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?"
_SIGNED_AMOUNT = re.compile(
    rf"(?P<before>{_SIGN_BEFORE})\s*(?P<a1>{_AMOUNT})|(?P<a2>{_AMOUNT})\s*(?P<after>{_SIGN_AFTER})"
)
# How far after its label an amount may stand (`特價 7 折 294 元`: past a discount).
_LABEL_REACH = 24
_FROM_AFTER = re.compile(r"^\s*\S?\s*(?:起|から|\+|and up|or more|\bfrom\b)", re.IGNORECASE)
_TRAP_AROUND = re.compile(
    r"free|shipping|delivery|運費|运费|免運|免运|送料|\bover\b|滿|满|以上|save|省|%|折扣|"
    r"/\s*(?:kg|g|l|ml|100\s?g)\b",
    re.IGNORECASE,
)
_MAX_BLOCK_TEXT = 200


def labelled_price_evidence(page: Page, visible_text: str) -> Evidence | None:
    """The amount shown after a current-price label, or None when there is none."""
    body = page.tree.body
    if body is None or not _CURRENT_LABEL.search(visible_text):
        return None  # no label anywhere: spare the walk over every text node
    found: list[Evidence] = []
    seen_blocks: set[int] = set()
    foreign = ForeignContainers(of_price=True, loose=True)
    for node in body.traverse(include_text=True):
        if node.tag != "-text":
            continue
        text = node.text_content or ""
        if not _CURRENT_LABEL.search(text):
            continue
        block = _label_block(node)
        if block is None or block.mem_id in seen_blocks:
            continue
        seen_blocks.add(block.mem_id)
        evidence = _read_block(block, page.host, foreign)
        if evidence is not None:
            found.append(evidence)
    return first_unless_contested(found, CONFIDENCE_CONTESTED)


def _label_block(text_node: LexborNode) -> LexborNode | None:
    """The element whose text holds the label and, usually, the amount after it."""
    element = text_node.parent
    for _ in range(2):
        if element is None:
            return None
        text = element.text(deep=True, separator="", strip=True)
        if len(text) > _MAX_BLOCK_TEXT:
            return None
        if _SIGNED_AMOUNT.search(text):
            return element
        element = element.parent
    return None


def _read_block(block: LexborNode, host: str, foreign: ForeignContainers) -> Evidence | None:
    if is_former_or_side_price(block) or foreign(block):
        return None
    text = block.text(deep=True, separator="", strip=True)
    for label in _CURRENT_LABEL.finditer(text):
        if _FORMER_LABEL_BEFORE.search(text[: label.start()]):
            continue
        after = text[label.end() : label.end() + _LABEL_REACH]
        match = _SIGNED_AMOUNT.search(after)
        if match is None:
            continue
        around = after[: match.end() + 6]
        if _TRAP_AROUND.search(around):
            continue
        shown = match.group(0)
        amount = parse_display_amount(match.group("a1") or match.group("a2"))
        if amount is None:
            continue
        lowest = bool(
            _LOWEST_LABEL.search(label.group(0) + text[max(0, label.start() - 4) : label.start()])
            or _FROM_AFTER.match(after[match.end() :])
        )
        return Evidence(
            method=Method.HEURISTIC,
            price=amount,
            currency=currency_in_text(shown, host),
            confidence=CONFIDENCE_DOMINANT,
            price_is_lowest=lowest,
        )
    return None
