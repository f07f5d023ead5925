"""Microdata and RDFa items, read from attributes on the HTML elements themselves.

Both syntaxes nest properties inside typed scopes (`itemscope`/`itemtype` for
microdata, `typeof` for RDFa); they are turned into the dict shape `schema_org` reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from selectolax.lexbor import LexborNode

from crawlers.extraction.document import Page
from crawlers.extraction.evidence import Evidence
from crawlers.extraction.result import Method
from crawlers.extraction.schema_org import OFFER_TYPES, PRODUCT_TYPES, evidence_from_items

_URL_VALUE_ATTRIBUTES = {"a": "href", "link": "href", "img": "src", "source": "src"}
_VALUE_ATTRIBUTES = ("content", "value", "datetime")


@dataclass(frozen=True, slots=True)
class _Syntax:
    method: Method
    scope_selector: str
    property_attribute: str
    type_attribute: str

    def is_scope(self, node: LexborNode) -> bool:
        attributes = node.attributes
        if self.method is Method.MICRODATA:
            return "itemscope" in attributes
        return "typeof" in attributes


MICRODATA = _Syntax(Method.MICRODATA, "[itemscope]", "itemprop", "itemtype")
RDFA = _Syntax(Method.RDFA, "[typeof]", "property", "typeof")


def _local_name(name: str) -> str:
    """`http://schema.org/price`, `schema:price` and `price` are the same property."""
    return name.rsplit("/", 1)[-1].rsplit("#", 1)[-1].rsplit(":", 1)[-1]


def _property_value(node: LexborNode) -> str:
    attributes = node.attributes
    url_attribute = _URL_VALUE_ATTRIBUTES.get(node.tag or "")
    if url_attribute and attributes.get(url_attribute):
        return attributes.get(url_attribute) or ""
    for attribute in (*_VALUE_ATTRIBUTES, "resource", "href"):
        value = attributes.get(attribute)
        if value:
            return value
    return node.text(deep=True, separator=" ", strip=True)


def _owning_scope(node: LexborNode, syntax: _Syntax) -> LexborNode | None:
    parent = node.parent
    while parent is not None and parent.tag not in (None, "html", "-document"):
        if syntax.is_scope(parent):
            return parent
        parent = parent.parent
    return None


def inline_items(page: Page, syntax: _Syntax) -> list[dict[str, Any]]:
    """Top-level Product/Offer items with their (nested) properties."""
    scopes = page.tree.css(syntax.scope_selector)
    if not scopes:
        return []
    items: dict[int, dict[str, Any]] = {}
    for scope in scopes:
        item_type = scope.attributes.get(syntax.type_attribute) or ""
        items[scope.mem_id] = {"@type": [_local_name(t) for t in item_type.split()]}
    for node in page.tree.css(f"[{syntax.property_attribute}]"):
        owner = _owning_scope(node, syntax)
        if owner is None or owner.mem_id not in items:
            continue
        value: Any = items[node.mem_id] if node.mem_id in items else _property_value(node)
        properties = items[owner.mem_id]
        for name in (node.attributes.get(syntax.property_attribute) or "").split():
            key = _local_name(name)
            if key in properties:
                existing = properties[key]
                properties[key] = (
                    [*existing, value]
                    if isinstance(existing, list)
                    else [
                        existing,
                        value,
                    ]
                )
            else:
                properties[key] = value
    top_level = [
        items[scope.mem_id]
        for scope in scopes
        if syntax.property_attribute not in scope.attributes or _owning_scope(scope, syntax) is None
    ]
    wanted = PRODUCT_TYPES | OFFER_TYPES
    return [item for item in top_level if set(item["@type"]) & wanted]


def extract_microdata(page: Page) -> Evidence | None:
    return evidence_from_items(inline_items(page, MICRODATA), Method.MICRODATA, page.url, page.host)


def extract_rdfa(page: Page) -> Evidence | None:
    return evidence_from_items(inline_items(page, RDFA), Method.RDFA, page.url, page.host)
