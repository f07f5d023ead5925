"""Embedded JavaScript state: `__NEXT_DATA__`, `window.__INITIAL_STATE__ = {...}` and kin.

Single-page shops ship the product as JSON for their front-end. There is no standard
shape, so the state is searched for schema.org-like product objects: a dict with a
name and an offer, or with a SKU and a price. Confidence stays moderate.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from crawlers.extraction.document import Page
from crawlers.extraction.evidence import Evidence, first_unless_contested
from crawlers.extraction.jsonld import parse_lenient_json
from crawlers.extraction.money import normalize_currency, parse_structured_amount
from crawlers.extraction.result import Method
from crawlers.extraction.schema_org import (
    PRODUCT_TYPES,
    evidence_from_items,
    first_text,
    parse_availability,
    type_names,
)

STATE_SCRIPT_SELECTOR = (
    'script#__NEXT_DATA__, script#__NUXT_DATA__, script[type="application/json"][id*="state" i]'
)
_STATE_ASSIGNMENT = re.compile(
    r"window\.(?:__INITIAL_STATE__|__PRELOADED_STATE__|__APOLLO_STATE__|__STATE__|"
    r"__PRODUCT__|__data)\s*=\s*"
)
_PRICE_KEYS = ("salePrice", "currentPrice", "finalPrice", "sellingPrice", "price")
_CURRENCY_KEYS = ("priceCurrency", "currency", "currencyCode")
_SKU_KEYS = ("sku", "skuId", "productSku")
_MAX_NODES = 200_000
_MAX_SCRIPT_CHARS = 3_000_000
CONFIDENCE_JS_STATE = 0.6
CONFIDENCE_JS_STATE_CONFLICT = 0.3


def _state_values(page: Page) -> Iterator[Any]:
    for script in page.tree.css(STATE_SCRIPT_SELECTOR):
        yield from parse_lenient_json(script.text(deep=True)[:_MAX_SCRIPT_CHARS])
    if "window.__" not in page.html:
        return  # no inline script assigns a state: skip reading every script's text
    for script in page.tree.css("script:not([src]):not([type])"):
        text = script.text(deep=True)
        match = _STATE_ASSIGNMENT.search(text) if "window.__" in text else None
        if match:
            yield from parse_lenient_json(text[match.end() : _MAX_SCRIPT_CHARS])[:1]


def _product_like(value: Any, budget: list[int]) -> Iterator[dict[str, Any]]:
    """Depth-first walk, bounded by `budget` nodes so huge states stay cheap."""
    stack = [value]
    while stack and budget[0] > 0:
        budget[0] -= 1
        current = stack.pop()
        if isinstance(current, dict):
            if type_names(current) & PRODUCT_TYPES or (
                any(k in current for k in _SKU_KEYS) and any(k in current for k in _PRICE_KEYS)
            ):
                yield current
                continue
            stack.extend(reversed(list(current.values())))
        elif isinstance(current, list):
            stack.extend(reversed(current))


def _plain_state_evidence(product: dict[str, Any], host: str) -> Evidence:
    price_value = next((product[k] for k in _PRICE_KEYS if product.get(k) is not None), None)
    if isinstance(price_value, dict):
        currency = first_text(price_value.get("currency") or price_value.get("currencyCode"))
        price_value = price_value.get("value") or price_value.get("amount")
    else:
        currency = next((first_text(product[k]) for k in _CURRENCY_KEYS if k in product), None)
    return Evidence(
        method=Method.JS_STATE,
        price=parse_structured_amount(price_value),
        currency=normalize_currency(currency, host),
        availability=parse_availability(product.get("availability")),
        sku=next((first_text(product[k]) for k in _SKU_KEYS if product.get(k)), None),
        confidence=CONFIDENCE_JS_STATE,
    )


def extract_js_state(page: Page) -> Evidence | None:
    budget = [_MAX_NODES]
    products = [p for value in _state_values(page) for p in _product_like(value, budget)]
    if not products:
        return None
    typed = [p for p in products if type_names(p) & PRODUCT_TYPES]
    if typed:
        evidence = evidence_from_items(typed, Method.JS_STATE, page.url, page.host)
        if evidence is not None:
            evidence.confidence = min(evidence.confidence, CONFIDENCE_JS_STATE)
            return evidence
    plain = [_plain_state_evidence(p, page.host) for p in products]
    priced = [e for e in plain if e.price is not None]
    return first_unless_contested(priced, CONFIDENCE_JS_STATE_CONFLICT)
