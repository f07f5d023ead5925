"""Per-domain selector overrides, which win over the generic chain.

The crawler passes one `ExtractionOverride` for the domain it is crawling. Each field
is located by a CSS selector or an XPath expression on HTML pages, or by a dotted JSON
path (`data.product.prices[0].value`) on JSON endpoints. A field whose selector finds
nothing falls back to the chain, so a redesigned page degrades instead of going blank.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

# lxml ships no type information; its few calls here are checked by the tests.
import lxml.etree
import lxml.html
from selectolax.lexbor import LexborHTMLParser, SelectolaxError

from crawlers.extraction.document import Page
from crawlers.extraction.errors import InvalidOverrideError
from crawlers.extraction.evidence import Evidence
from crawlers.extraction.heuristics import availability_from_text
from crawlers.extraction.money import (
    currency_in_text,
    normalize_currency,
    parse_display_amount,
    parse_structured_amount,
)
from crawlers.extraction.result import Method
from crawlers.extraction.schema_org import parse_availability

_JSON_PATH_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
CONFIDENCE_OVERRIDE = 0.99


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """Where one field lives. Set exactly one of `css`, `xpath` or `json_path`.

    `attribute` reads an attribute (e.g. `content`) instead of the element's text.
    """

    css: str | None = None
    xpath: str | None = None
    json_path: str | None = None
    attribute: str | None = None

    def __post_init__(self) -> None:
        given = [s for s in (self.css, self.xpath, self.json_path) if s]
        if len(given) != 1:
            raise InvalidOverrideError(
                "a field selector needs exactly one of css, xpath, json_path"
            )
        if self.xpath:
            try:
                lxml.etree.XPath(self.xpath)
            except lxml.etree.XPathSyntaxError as error:
                raise InvalidOverrideError(f"invalid XPath {self.xpath!r}: {error}") from error
        if self.css:
            try:
                LexborHTMLParser("<p></p>").css(self.css)
            except (SelectolaxError, ValueError) as error:
                raise InvalidOverrideError(f"invalid CSS selector {self.css!r}") from error
        if self.json_path and not _JSON_PATH_STEP.match(self.json_path):
            raise InvalidOverrideError(f"invalid JSON path {self.json_path!r}")


@dataclass(frozen=True, slots=True)
class ExtractionOverride:
    """Selectors for one domain; unset fields come from the generic chain."""

    domain: str
    price: FieldSelector | None = None
    currency: FieldSelector | None = None
    availability: FieldSelector | None = None
    sku: FieldSelector | None = None


def _html_text(page: Page, selector: FieldSelector, lxml_tree: list[Any]) -> str | None:
    if selector.css:
        node = page.tree.css_first(selector.css)
        if node is None:
            return None
        if selector.attribute:
            return node.attributes.get(selector.attribute)
        return node.text(deep=True, separator=" ", strip=True)
    if not lxml_tree:  # parsed lazily: only XPath overrides pay for an lxml tree
        lxml_tree.append(lxml.html.fromstring(page.html))
    found = lxml.etree.XPath(selector.xpath or "")(lxml_tree[0])
    first = found[0] if isinstance(found, list) and found else found
    if isinstance(first, lxml.etree._Element):
        if selector.attribute:
            attribute: str | None = first.get(selector.attribute)
            return attribute
        return " ".join(first.itertext()).strip()
    return str(first).strip() if first not in (None, [], "") else None


def _json_value(document: Any, path: str) -> Any:
    current = document
    for key, index in _JSON_PATH_STEP.findall(path):
        if key and isinstance(current, dict):
            current = current.get(key)
        elif index and isinstance(current, list) and int(index) < len(current):
            current = current[int(index)]
        else:
            return None
    return current


def _evidence(values: dict[str, Any], host: str, *, structured: bool) -> Evidence:
    evidence = Evidence(method=Method.OVERRIDE)
    price_value = values.get("price")
    price: Decimal | None = None
    if price_value is not None:
        text = str(price_value)
        price = parse_structured_amount(price_value) if structured else parse_display_amount(text)
        evidence.currency = currency_in_text(text, host)
    if price is not None:
        evidence.price = price
        evidence.confidence = CONFIDENCE_OVERRIDE
    if values.get("currency") is not None:
        evidence.currency = normalize_currency(str(values["currency"]), host) or evidence.currency
    availability = values.get("availability")
    if availability is not None:
        text = str(availability)
        evidence.availability = parse_availability(text) or availability_from_text(text)
    if values.get("sku") is not None:
        evidence.sku = str(values["sku"]).strip() or None
    return evidence


def _fields(override: ExtractionOverride) -> dict[str, FieldSelector]:
    selectors = {
        "price": override.price,
        "currency": override.currency,
        "availability": override.availability,
        "sku": override.sku,
    }
    return {name: selector for name, selector in selectors.items() if selector is not None}


def apply_html_override(page: Page, override: ExtractionOverride) -> Evidence:
    lxml_tree: list[Any] = []
    values = {
        name: _html_text(page, selector, lxml_tree)
        for name, selector in _fields(override).items()
        if not selector.json_path
    }
    return _evidence(values, page.host, structured=False)


def apply_json_override(document: str | bytes, override: ExtractionOverride) -> Evidence:
    """Read a JSON endpoint's response with the override's JSON paths."""
    data = json.loads(document, parse_float=Decimal)
    values = {
        name: _json_value(data, selector.json_path)
        for name, selector in _fields(override).items()
        if selector.json_path
    }
    return _evidence(values, override.domain, structured=True)
