"""Product-page extraction: the main product's price, currency, availability and codes.

from crawlers.extraction import extract_product
result = extract_product(html_bytes, url="https://shop.example/p/123")
"""

from crawlers.extraction.chain import extract_product, extract_product_json
from crawlers.extraction.errors import ExtractionError, InvalidOverrideError, PageLoadError
from crawlers.extraction.overrides import ExtractionOverride, FieldSelector
from crawlers.extraction.result import Availability, Method, ProductResult

__all__ = [
    "Availability",
    "ExtractionError",
    "ExtractionOverride",
    "FieldSelector",
    "InvalidOverrideError",
    "Method",
    "PageLoadError",
    "ProductResult",
    "extract_product",
    "extract_product_json",
]
