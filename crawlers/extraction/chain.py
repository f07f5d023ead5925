"""The extraction chain: overrides, then structured data, then visible-page heuristics.

Structured sources are tried in order of reliability; the first with a price provides
the price, the rest fill in fields it lacks. Disagreement between structured sources
and refusals (blocked pages, ambiguous prices) show up in the confidence.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import replace
from decimal import Decimal
from typing import TypeVar
from urllib.parse import unquote, urlsplit

from crawlers.extraction.blocked import is_blocked_page
from crawlers.extraction.document import Page, parse_page
from crawlers.extraction.evidence import Evidence
from crawlers.extraction.heuristics import (
    CONFIDENCE_AGREEING,
    extract_visible_availability,
    price_candidates,
    visible_price_evidence,
    visible_product_codes,
)
from crawlers.extraction.inline_markup import extract_microdata, extract_rdfa
from crawlers.extraction.js_state import extract_js_state
from crawlers.extraction.jsonld import extract_jsonld
from crawlers.extraction.labelled import labelled_price_evidence
from crawlers.extraction.opengraph import extract_opengraph
from crawlers.extraction.overrides import (
    ExtractionOverride,
    apply_html_override,
    apply_json_override,
)
from crawlers.extraction.result import Method, ProductResult

STRUCTURED_CHAIN: tuple[Callable[[Page], Evidence | None], ...] = (
    extract_jsonld,
    extract_microdata,
    extract_rdfa,
    extract_opengraph,
    extract_js_state,
)
# Below this confidence a price is withheld: a wrong price is worse than none.
MIN_REPORTED_CONFIDENCE = 0.35
_DISAGREEMENT_PENALTY = 0.3
# The page shows one unambiguous price and the structured price is nowhere among the
# visible prices: structured data then often carries a list, starting or stale price.
CONFIDENCE_VISIBLE_OVERRULES = 0.5
_T = TypeVar("_T")
_URL_TOKEN = re.compile(r"[A-Za-z0-9]+")
_MIN_URL_CODE = 5
_URL_ID = re.compile(r"(?<![0-9])[0-9]{5,}(?![0-9])")
_INVISIBLE_TAGS = ["script", "style", "noscript", "template", "svg"]


def extract_product(
    html: str | bytes,
    url: str | None = None,
    *,
    override: ExtractionOverride | None = None,
    content_type: str | None = None,
) -> ProductResult:
    """Extract the main product's offer from one HTML page (bytes or text)."""
    page = parse_page(html, url, content_type)
    evidences = [e for extract in STRUCTURED_CHAIN if (e := extract(page)) is not None]
    if override is not None:
        evidences.insert(0, apply_html_override(page, override))
    page.tree.strip_tags(_INVISIBLE_TAGS)
    body = page.tree.body
    visible_text = body.text(separator=" ", strip=True) if body is not None else ""
    if is_blocked_page(page, visible_text):
        return ProductResult(
            price=None,
            currency=None,
            availability=None,
            sku=None,
            gtin=None,
            shipping=None,
            method=Method.BLOCKED,
            confidence=0.0,
            blocked=True,
        )
    candidates = price_candidates(page)
    visible_price = visible_price_evidence(candidates)
    if not any(e.price is not None for e in evidences):
        fallback = visible_price if candidates else labelled_price_evidence(page, visible_text)
        if fallback is not None:
            evidences.append(fallback)
    elif visible_price is not None and _visible_price_overrules(
        evidences, visible_price, {c.amount for c in candidates}
    ):
        evidences.insert(0, replace(visible_price, confidence=CONFIDENCE_VISIBLE_OVERRULES))
    if not any(e.availability for e in evidences):
        evidences.append(
            Evidence(method=Method.HEURISTIC, availability=extract_visible_availability(page))
        )
    codes = visible_product_codes(visible_text, page)
    evidences.append(
        Evidence(
            method=Method.HEURISTIC,
            sku=codes[0] if codes else None,
            alternative_codes=codes,
        )
    )
    result = _merge(evidences, url, visible_text)
    if result.sku is None:
        shown = _url_codes_shown(url, visible_text)
        result = replace(result, sku=shown[0] if shown else _url_product_id(url, page.html))
    return result


def extract_product_json(document: str | bytes, override: ExtractionOverride) -> ProductResult:
    """Extract from a shop's JSON endpoint; only the override's JSON paths apply."""
    return _merge([apply_json_override(document, override)], None)


def _visible_price_overrules(
    evidences: list[Evidence], visible: Evidence, visible_amounts: set[Decimal]
) -> bool:
    """Whether one uncontested visible price should replace the structured price.

    Only when the structured price is not shown among the visible prices at all, and
    is not the same digits read differently (`173<sup>34</sup>` shown as "173 34").
    """
    structured = next(e.price for e in evidences if e.price is not None)
    if visible.price is None or visible.confidence < CONFIDENCE_AGREEING:
        return False
    if structured in visible_amounts:
        return False
    return _digits(structured) != _digits(visible.price)


def _digits(amount: Decimal) -> str:
    """The significant digits of an amount: 173.34, 17334 and 1733.4 give the same."""
    return format(amount.normalize(), "f").replace(".", "").strip("0")


def _url_product_id(url: str | None, html: str) -> str | None:
    """The numeric id ending a URL's path (`/BabyBjorn_One-987929.html`), as a last resort.

    Only when the page's markup also uses it as a value (`data-id="987929"`,
    `?productid=987929&`): then it is the shop's id for this product.
    """
    if not url:
        return None
    runs: list[str] = _URL_ID.findall(urlsplit(unquote(url)).path)
    if not runs:
        return None
    product_id = runs[-1]
    start = html.find(product_id)
    while start != -1:
        end = start + len(product_id)
        if start and html[start - 1] in '"=/' and html[end : end + 1] in ('"', "&"):
            return product_id
        start = html.find(product_id, end)
    return None


def _url_codes_shown(url: str | None, visible_text: str) -> list[str]:
    """Code-like URL segments (`/itm/302474151804`) that the page also prints."""
    return [token for token in _url_code_tokens(url) if token in visible_text]


def _url_code_tokens(url: str | None) -> list[str]:
    if not url:
        return []
    parts = urlsplit(unquote(url))
    tokens = _URL_TOKEN.findall(f"{parts.path} {parts.query}")
    return [t for t in tokens if len(t) >= _MIN_URL_CODE and any(c.isdigit() for c in t)]


def _choose_sku(ordered: list[Evidence], url: str | None, visible_text: str) -> str | None:
    """The declared SKU, unless another code the page shows is the one its URL uses.

    A declared SKU that the page never prints gives way to a code the page shows
    labelled as the product's: that is the code a person reading the page sees.
    """
    declared = _first(e.sku for e in ordered)
    shown = next((e.sku for e in ordered if e.method is Method.HEURISTIC and e.sku), None)
    if declared and shown and declared != shown and declared not in visible_text:
        return shown
    url_tokens = {t.lower() for t in _url_code_tokens(url)}
    codes = [c for e in ordered for c in ([e.sku] if e.sku else []) + e.alternative_codes]
    in_url = next((c for c in codes if c.lower() in url_tokens), None)
    return in_url or declared


def _merge(evidences: list[Evidence], url: str | None, visible_text: str = "") -> ProductResult:
    priced = [e for e in evidences if e.price is not None]
    source = priced[0] if priced else None
    confidence = source.confidence if source else 0.0
    # A visible price only leads when it has already overruled the structured ones.
    if (
        source is not None
        and source.method is not Method.HEURISTIC
        and any(e.price != source.price and e.method is not Method.HEURISTIC for e in priced[1:])
    ):
        confidence = max(0.0, confidence - _DISAGREEMENT_PENALTY)
    ordered = ([source] if source else []) + [e for e in evidences if e is not source]
    availability = _first(e.availability for e in ordered)
    price: Decimal | None = source.price if source else None
    if price is not None and confidence < MIN_REPORTED_CONFIDENCE:
        price = None
    return ProductResult(
        price=price,
        currency=_first(e.currency for e in ordered) if price is not None else None,
        availability=availability,
        sku=_choose_sku(ordered, url, visible_text),
        gtin=_first(e.gtin for e in ordered),
        shipping=_first(e.shipping for e in ordered),
        method=source.method if source and price is not None else Method.NONE,
        confidence=round(confidence, 3) if price is not None else 0.0,
        price_is_lowest=bool(source and source.price_is_lowest and price is not None),
    )


def _first(values: Iterable[_T | None]) -> _T | None:
    """The first value found: an empty string is none, a zero (free shipping) is one."""
    return next((value for value in values if value is not None and value != ""), None)
