"""The public result of an extraction: what a person sees as the product's offer."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum


class Availability(StrEnum):
    IN_STOCK = "InStock"
    OUT_OF_STOCK = "OutOfStock"


class Method(StrEnum):
    """Which link of the chain produced the price (or why there is none)."""

    OVERRIDE = "override"
    JSON_LD = "json-ld"
    MICRODATA = "microdata"
    RDFA = "rdfa"
    OPENGRAPH = "opengraph"
    JS_STATE = "js-state"
    HEURISTIC = "heuristic"
    BLOCKED = "blocked"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class ProductResult:
    """One page's offer. `confidence` is in [0, 1] and refers to the price.

    `price_is_lowest` marks a price chosen as the lowest of several variant prices
    because the URL did not select one variant.
    """

    price: Decimal | None
    currency: str | None
    availability: Availability | None
    sku: str | None
    gtin: str | None
    shipping: Decimal | None
    method: Method
    confidence: float
    blocked: bool = False
    price_is_lowest: bool = False

    def to_json_dict(self) -> dict[str, str | float | bool | None]:
        """JSON-ready form: money as decimal strings, never floats."""
        return {
            "price": _decimal_text(self.price),
            "currency": self.currency,
            "availability": self.availability.value if self.availability else None,
            "sku": self.sku,
            "gtin": self.gtin,
            "shipping": _decimal_text(self.shipping),
            "method": self.method.value,
            "confidence": round(self.confidence, 3),
            "blocked": self.blocked,
            "price_is_lowest": self.price_is_lowest,
        }


def _decimal_text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")
