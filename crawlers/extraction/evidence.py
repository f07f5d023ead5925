"""What one link of the chain found on a page, before the chain merges the links."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from crawlers.extraction.result import Availability, Method


@dataclass(slots=True)
class Evidence:
    method: Method
    price: Decimal | None = None
    currency: str | None = None
    availability: Availability | None = None
    sku: str | None = None
    gtin: str | None = None
    shipping: Decimal | None = None
    confidence: float = 0.0
    price_is_lowest: bool = False
    # Other product codes seen (productID, MPN, GTIN, variant SKUs): when the URL names
    # one of them, it is the code the shop uses for this page.
    alternative_codes: list[str] = field(default_factory=list)


def first_unless_contested(found: list[Evidence], contested: float) -> Evidence | None:
    """The first of several readings of one source, its confidence lowered to
    ``contested`` when the others disagree on the price; None when there are none."""
    if not found:
        return None
    first = found[0]
    if len({evidence.price for evidence in found}) > 1:
        first.confidence = contested
    return first
