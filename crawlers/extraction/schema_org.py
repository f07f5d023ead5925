"""Reading schema.org Product / Offer items, whichever syntax carried them.

JSON-LD, microdata and RDFa are all normalised by their modules into the same shape,
plain dicts with an `@type` and property names as keys, and interpreted here once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlsplit

from crawlers.extraction.evidence import Evidence
from crawlers.extraction.money import normalize_currency, parse_structured_amount
from crawlers.extraction.result import Availability, Method

PRODUCT_TYPES = frozenset(
    {
        "Product",
        "ProductGroup",
        "IndividualProduct",
        "ProductModel",
        "SomeProducts",
        "Vehicle",
        "Car",
    }
)
OFFER_TYPES = frozenset({"Offer", "AggregateOffer"})
# A list or strike-through price declared inside an Offer is not what the buyer pays.
_NOT_SELLING_PRICE_TYPES = ("ListPrice", "StrikethroughPrice", "SRP", "MSRP", "InvoicePrice")
_OUT_OF_STOCK_STATES = ("outofstock", "soldout", "discontinued", "backorder")
_IN_STOCK_STATES = (
    "instock",
    "limitedavailability",
    "onlineonly",
    "instoreonly",
    "preorder",
    "presale",
    "madetoorder",
)
_GTIN_KEYS = ("gtin13", "gtin", "gtin12", "gtin14", "gtin8", "isbn")
_SKU_SPLIT = re.compile(r"[^0-9A-Za-z]+")
_ALTERNATIVE_CODE_KEYS = ("productID", "mpn", *_GTIN_KEYS)

CONFIDENCE_SINGLE_PRICE = 0.95
CONFIDENCE_URL_SELECTED_VARIANT = 0.9
CONFIDENCE_LOWEST_VARIANT = 0.6
# Several main products with different prices and nothing to choose between them.
CONFIDENCE_CONFLICTING_PRODUCTS = 0.4


@dataclass(frozen=True, slots=True)
class OfferCandidate:
    price: Decimal
    currency: str | None
    availability: Availability | None
    sku: str | None
    gtin: str | None
    url: str | None
    shipping: Decimal | None
    is_range_low: bool


def type_names(item: dict[str, Any]) -> set[str]:
    """`@type` as bare names: `http://schema.org/Product` and `["Product"]` both give Product."""
    raw = item.get("@type") or item.get("type")
    values = raw if isinstance(raw, list) else [raw]
    return {v.rsplit("/", 1)[-1].rsplit(":", 1)[-1] for v in values if isinstance(v, str)}


def first_text(value: object) -> str | None:
    """The first scalar of a property, as stripped text."""
    if isinstance(value, list):
        value = next((v for v in value if v not in (None, "")), None)
    if isinstance(value, dict):
        value = value.get("@id") or value.get("name") or value.get("value")
    if isinstance(value, bool) or value is None:
        return None
    text = str(value).strip()
    return text or None


def as_list(value: object) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def parse_availability(value: object) -> Availability | None:
    text = first_text(value)
    if not text:
        return None
    state = text.rsplit("/", 1)[-1].replace(" ", "").replace("_", "").lower()
    if state.startswith(_OUT_OF_STOCK_STATES) or state in {"oos", "unavailable"}:
        return Availability.OUT_OF_STOCK
    if state.startswith(_IN_STOCK_STATES) or state in {"available", "true", "1"}:
        return Availability.IN_STOCK
    return None


def clean_code(text: str | None) -> str | None:
    """A product code without the label text that markup sometimes wraps around it."""
    if not text:
        return None
    first_word = text.split(maxsplit=1)[0]
    return first_word if len(first_word) <= 64 else None


def _gtin_of(item: dict[str, Any]) -> str | None:
    for key in _GTIN_KEYS:
        gtin = first_text(item.get(key))
        if gtin and gtin.isdigit():
            return gtin
    return None


def _selling_price(offer: dict[str, Any]) -> tuple[Decimal | None, str | None]:
    """An offer's price and currency, looking into priceSpecification when needed."""
    price = parse_structured_amount(first_text(offer.get("price")) or offer.get("price"))
    currency = first_text(offer.get("priceCurrency"))
    if price is not None:
        return price, currency
    for spec in as_list(offer.get("priceSpecification")):
        if not isinstance(spec, dict) or spec.get("referenceQuantity"):
            continue  # a per-unit price ("3.20 / kg") is never the product's price
        price_type = first_text(spec.get("priceType")) or ""
        if any(t in price_type for t in _NOT_SELLING_PRICE_TYPES):
            continue
        price = parse_structured_amount(first_text(spec.get("price")))
        if price is not None:
            return price, first_text(spec.get("priceCurrency")) or currency
    return None, currency


_ZERO = re.compile(r"0+(?:[.,]0+)?")


def _shipping_of(offer: dict[str, Any]) -> Decimal | None:
    for details in as_list(offer.get("shippingDetails")):
        if isinstance(details, dict):
            for rate in as_list(details.get("shippingRate")):
                if isinstance(rate, dict):
                    amount = first_text(rate.get("value")) or first_text(rate.get("price"))
                    if amount is not None and _ZERO.fullmatch(amount.strip()):
                        return Decimal(0)  # free shipping (prices parse as positive only)
                    shipping = parse_structured_amount(amount)
                    if shipping is not None:
                        return shipping
    return None


def _offer_candidates(
    offers: object, product: dict[str, Any], host: str
) -> Iterator[OfferCandidate]:
    product_sku = clean_code(first_text(product.get("sku")) or first_text(product.get("productID")))
    product_gtin = _gtin_of(product)
    for offer in as_list(offers):
        if not isinstance(offer, dict):
            continue
        price, currency = _selling_price(offer)
        # An AggregateOffer lists its offers; so does an unpriced Offer wrapping others.
        if offer.get("offers") and ("AggregateOffer" in type_names(offer) or price is None):
            yield from _offer_candidates(offer.get("offers"), product, host)
            continue
        is_range_low = False
        if price is None:
            price = parse_structured_amount(first_text(offer.get("lowPrice")))
            high = parse_structured_amount(first_text(offer.get("highPrice")))
            is_range_low = price is not None and high is not None and high != price
        if price is None:
            continue
        yield OfferCandidate(
            price=price,
            currency=normalize_currency(currency, host),
            availability=parse_availability(offer.get("availability")),
            sku=clean_code(first_text(offer.get("sku"))) or product_sku,
            gtin=_gtin_of(offer) or product_gtin,
            url=first_text(offer.get("url")) or first_text(product.get("url")),
            shipping=_shipping_of(offer),
            is_range_low=is_range_low,
        )


def product_offers(product: dict[str, Any], host: str) -> list[OfferCandidate]:
    """Every priced offer of a product, including those of a ProductGroup's variants."""
    candidates = list(_offer_candidates(product.get("offers"), product, host))
    for variant in as_list(product.get("hasVariant")):
        if isinstance(variant, dict):
            candidates.extend(_offer_candidates(variant.get("offers"), variant, host))
    return candidates


def _url_tokens(url: str | None) -> set[str]:
    if not url:
        return set()
    parts = urlsplit(unquote(url))
    return {t.lower() for t in _SKU_SPLIT.split(parts.path + " " + parts.query) if len(t) >= 4}


def _same_url(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.path.rstrip("/"), pa.query) == (pb.path.rstrip("/"), pb.query)


def _url_selected(candidates: list[OfferCandidate], page_url: str | None) -> OfferCandidate | None:
    """The variant the page's URL points at: same URL, or its SKU in the URL's query."""
    for candidate in candidates:
        if _same_url(candidate.url, page_url):
            return candidate
    query_tokens = _url_tokens("?" + urlsplit(page_url).query) if page_url else set()
    for candidate in candidates:
        if candidate.sku and candidate.sku.lower() in query_tokens:
            return candidate
    return None


def evidence_from_items(
    items: Iterable[dict[str, Any]], method: Method, page_url: str | None, host: str
) -> Evidence | None:
    """Interpret the page's main product(s) into one piece of evidence."""
    products = [item for item in items if type_names(item) & PRODUCT_TYPES]
    # Offers published without a Product (e.g. inside a WebPage) still describe the page.
    loose_offers = [item for item in items if type_names(item) & OFFER_TYPES]
    if not products and not loose_offers:
        return None
    candidates: list[OfferCandidate] = []
    for product in products:
        candidates.extend(product_offers(product, host))
    if not products:
        candidates.extend(_offer_candidates(loose_offers, {}, host))
    evidence = Evidence(method=method)
    for product in products:
        evidence.sku = evidence.sku or clean_code(first_text(product.get("sku")))
        evidence.gtin = evidence.gtin or _gtin_of(product)
        for key in _ALTERNATIVE_CODE_KEYS:
            code = clean_code(first_text(product.get(key)))
            if code:
                evidence.alternative_codes.append(code)
    if not candidates:
        evidence.availability = _first_availability(products)
        return evidence
    chosen, confidence = _choose(candidates, page_url, several_products=len(products) > 1)
    evidence.price = chosen.price
    evidence.currency = chosen.currency or next(
        (c.currency for c in candidates if c.currency), None
    )
    evidence.availability = chosen.availability or next(
        (c.availability for c in candidates if c.availability), None
    )
    # A variant's own SKU identifies it better than its group's, when the URL selected it.
    url_selected = confidence == CONFIDENCE_URL_SELECTED_VARIANT
    evidence.sku = (chosen.sku if url_selected else None) or evidence.sku or chosen.sku
    evidence.alternative_codes.extend(c.sku for c in candidates if c.sku)
    evidence.gtin = chosen.gtin or evidence.gtin
    evidence.shipping = chosen.shipping
    evidence.confidence = confidence
    evidence.price_is_lowest = chosen.is_range_low or (confidence == CONFIDENCE_LOWEST_VARIANT)
    return evidence


def _first_availability(products: list[dict[str, Any]]) -> Availability | None:
    return next((a for p in products if (a := parse_availability(p.get("availability")))), None)


def _choose(
    candidates: list[OfferCandidate], page_url: str | None, *, several_products: bool
) -> tuple[OfferCandidate, float]:
    distinct_prices = {c.price for c in candidates}
    if len(distinct_prices) == 1:
        # Same price everywhere: the page is in stock if any size or colour is.
        chosen = next(
            (c for c in candidates if c.availability is Availability.IN_STOCK), candidates[0]
        )
        if chosen.is_range_low:
            return chosen, CONFIDENCE_LOWEST_VARIANT
        return chosen, CONFIDENCE_SINGLE_PRICE
    selected = _url_selected(candidates, page_url)
    if selected is not None:
        return selected, CONFIDENCE_URL_SELECTED_VARIANT
    if several_products:
        return candidates[0], CONFIDENCE_CONFLICTING_PRODUCTS
    in_stock = [c for c in candidates if c.availability is not Availability.OUT_OF_STOCK]
    lowest = min(in_stock or candidates, key=lambda c: c.price)
    return lowest, CONFIDENCE_LOWEST_VARIANT
