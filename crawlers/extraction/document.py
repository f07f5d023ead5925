"""Turning raw page bytes into a parsed document.

Pages arrive as bytes in whatever encoding the shop used. The charset is taken, in
order of trust, from a byte-order mark, the HTTP Content-Type header, a `<meta>` tag
near the top, and otherwise UTF-8 with a Windows-1252 fallback (the usual mislabel).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from selectolax.lexbor import LexborHTMLParser

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_CHARSET = re.compile(rb"""charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
# The HTML spec only honours a meta charset within the first 1024 bytes; real pages
# often put it later, behind long comment banners, so look a little further.
_META_SCAN_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Page:
    """A decoded, parsed page plus the hints extractors use to interpret it."""

    url: str | None
    html: str
    tree: LexborHTMLParser

    @property
    def host(self) -> str:
        return (urlsplit(self.url).hostname or "") if self.url else ""

    @property
    def language(self) -> str:
        root = self.tree.root
        lang = root.attributes.get("lang") if root is not None else None
        return (lang or "").lower()


def decode_html(raw: bytes, content_type: str | None = None) -> str:
    """Decode page bytes to text following the charset precedence described above."""
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            return raw[len(bom) :].decode(encoding, errors="replace")
    declared = _declared_charset(content_type.encode("latin-1") if content_type else b"")
    declared = declared or _declared_charset(raw[:_META_SCAN_BYTES])
    if declared:
        try:
            return raw.decode(declared, errors="replace")
        except LookupError:
            pass  # an unknown charset name: fall through to the defaults
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def _declared_charset(data: bytes) -> str | None:
    match = _CHARSET.search(data)
    if match is None:
        return None
    name = match.group(1).decode("ascii", errors="ignore").lower()
    # Browsers treat these labels as Windows-1252, a superset that also decodes 0x80-0x9F.
    return "cp1252" if name in {"iso-8859-1", "latin-1", "latin1", "us-ascii", "ascii"} else name


def parse_page(html: str | bytes, url: str | None = None, content_type: str | None = None) -> Page:
    text = decode_html(html, content_type) if isinstance(html, bytes) else html
    return Page(url=url, html=text, tree=LexborHTMLParser(text))
