"""OpenGraph / Facebook product tags: `og:price:amount`, `product:price:amount`, ..."""

from __future__ import annotations

from crawlers.extraction.document import Page
from crawlers.extraction.evidence import Evidence
from crawlers.extraction.money import normalize_currency, parse_structured_amount
from crawlers.extraction.result import Method
from crawlers.extraction.schema_org import parse_availability

# In order of preference: a sale price, when tagged, is what the buyer pays now.
_PRICE_TAGS = ("product:sale_price:amount", "product:price:amount", "og:price:amount")
_CURRENCY_TAGS = ("product:sale_price:currency", "product:price:currency", "og:price:currency")
_AVAILABILITY_TAGS = ("product:availability", "og:availability")
_SKU_TAGS = ("product:retailer_item_id", "product:sku")
_GTIN_TAGS = ("product:ean", "product:upc", "product:gtin", "product:isbn")
CONFIDENCE_OPENGRAPH = 0.8


def extract_opengraph(page: Page) -> Evidence | None:
    tags: dict[str, str] = {}
    for meta in page.tree.css("meta[property]"):
        name = (meta.attributes.get("property") or "").lower()
        content = meta.attributes.get("content")
        if name.startswith(("og:", "product:")) and content and name not in tags:
            tags[name] = content.strip()
    if not any(tag in tags for tag in (*_PRICE_TAGS, *_AVAILABILITY_TAGS, *_SKU_TAGS)):
        return None
    evidence = Evidence(method=Method.OPENGRAPH, confidence=CONFIDENCE_OPENGRAPH)
    for price_tag, currency_tag in zip(_PRICE_TAGS, _CURRENCY_TAGS, strict=True):
        price = parse_structured_amount(tags.get(price_tag))
        if price is not None:
            evidence.price = price
            currency = tags.get(currency_tag) or next(
                (tags[t] for t in _CURRENCY_TAGS if t in tags), None
            )
            evidence.currency = normalize_currency(currency, page.host)
            break
    evidence.availability = next(
        (a for t in _AVAILABILITY_TAGS if (a := parse_availability(tags.get(t)))), None
    )
    evidence.sku = next((tags[t] for t in _SKU_TAGS if tags.get(t)), None)
    evidence.gtin = next((tags[t] for t in _GTIN_TAGS if tags.get(t, "").isdigit()), None)
    return evidence
