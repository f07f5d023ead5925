"""JSON-LD: schema.org items from `<script type="application/ld+json">` blocks.

Shops hand-write these blocks, so they are often not valid JSON: trailing commas,
comments, raw newlines in strings, HTML comment or CDATA wrappers, several objects
pasted one after the other. Each is repaired as far as it safely can be.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from crawlers.extraction.document import Page
from crawlers.extraction.evidence import Evidence
from crawlers.extraction.result import Method
from crawlers.extraction.schema_org import (
    OFFER_TYPES,
    PRODUCT_TYPES,
    evidence_from_items,
    type_names,
)

_LEADING_WRAPPER = re.compile(r"^\s*(?:<!--|<!\[CDATA\[|//\s*<!\[CDATA\[)")
_TRAILING_WRAPPER = re.compile(r"(?:-->|\]\]>|//\s*\]\]>)\s*$")
# Searched for in the last characters only: a `$`-anchored pattern searched over a whole
# script is tried at every position, which costs milliseconds on a 1 MB state blob.
_TRAILING_WRAPPER_REACH = 256
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)
# A `//` comment only where it starts a line, so `https://` inside strings survives.
_LINE_COMMENT = re.compile(r"^\s*//[^\n]*$", re.MULTILINE)
# Properties whose items describe other products than the page's own.
_FOREIGN_PRODUCT_KEYS = frozenset(
    {"isRelatedTo", "isSimilarTo", "isAccessoryOrSparePartFor", "isConsumableFor", "review"}
)
_decoder = json.JSONDecoder(parse_float=Decimal, strict=False)


def parse_lenient_json(text: str) -> list[Any]:
    """All JSON values in `text`, repairing the common hand-written mistakes."""
    text = _unwrap(text)
    values = _decode_all(text)
    if values is None:
        repaired = _TRAILING_COMMA.sub(r"\1", _LINE_COMMENT.sub("", _BLOCK_COMMENT.sub("", text)))
        values = _decode_all(repaired)
    return values or []


def _unwrap(text: str) -> str:
    """The text without an HTML comment or CDATA wrapper around it."""
    text = _LEADING_WRAPPER.sub("", text.strip(), count=1)
    tail_start = max(0, len(text) - _TRAILING_WRAPPER_REACH)
    trailing = _TRAILING_WRAPPER.search(text, tail_start)
    if trailing is not None:
        text = text[: trailing.start()]
    return text.strip()


def _decode_all(text: str) -> list[Any] | None:
    """Decode one or more concatenated JSON values; None if the text is not JSON."""
    values: list[Any] = []
    position = 0
    while position < len(text):
        while position < len(text) and text[position] in " \t\r\n;,":
            position += 1
        if position >= len(text):
            break
        try:
            value, position = _decoder.raw_decode(text, position)
        except json.JSONDecodeError:
            return values or None
        values.append(value)
    return values


def jsonld_items(page: Page) -> list[dict[str, Any]]:
    """The page's own Product and loose Offer items, from every JSON-LD block."""
    items: list[dict[str, Any]] = []
    for script in page.tree.css('script[type="application/ld+json" i]'):
        for value in parse_lenient_json(script.text(deep=True)):
            items.extend(_product_items(value))
    return items


def _product_items(value: object) -> Iterator[dict[str, Any]]:
    if isinstance(value, list):
        for element in value:
            yield from _product_items(element)
        return
    if not isinstance(value, dict):
        return
    types = type_names(value)
    if types & PRODUCT_TYPES or types & OFFER_TYPES:
        yield value
        return  # its offers and variants are read with it
    if "ItemList" in types or "BreadcrumbList" in types:
        return  # listings of other products, not the page's product
    for key, child in value.items():
        if key not in _FOREIGN_PRODUCT_KEYS:
            yield from _product_items(child)


def extract_jsonld(page: Page) -> Evidence | None:
    return evidence_from_items(jsonld_items(page), Method.JSON_LD, page.url, page.host)
