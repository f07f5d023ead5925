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
    return _decode(raw, content_type)[0]


def _decode(raw: bytes, content_type: str | None) -> tuple[str, bool]:
    """The text, and whether it is exactly ``raw`` read as strict UTF-8."""
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            return raw[len(bom) :].decode(encoding, errors="replace"), False
    declared = _declared_charset(content_type.encode("latin-1") if content_type else b"")
    declared = declared or _declared_charset(raw[:_META_SCAN_BYTES])
    declared_utf8 = declared is not None and _codec_name(declared) == "utf-8"
    if declared and not declared_utf8:
        try:
            return raw.decode(declared, errors="replace"), False
        except LookupError:
            pass  # an unknown charset name: fall through to the defaults
    try:
        return raw.decode("utf-8"), True
    except UnicodeDecodeError:
        if declared_utf8:  # with some bytes that are not
            return raw.decode("utf-8", errors="replace"), False
        return raw.decode("cp1252", errors="replace"), False


def _codec_name(charset: str) -> str:
    """The codec's canonical name (`utf8`, `UTF-8` -> `utf-8`), or the name itself."""
    try:
        return codecs.lookup(charset).name
    except LookupError:
        return charset


def _declared_charset(data: bytes) -> str | None:
    match = _CHARSET.search(data)
    if match is None:
        return None
    name = match.group(1).decode("ascii", errors="ignore").lower()
    # Browsers treat these labels as Windows-1252, a superset that also decodes 0x80-0x9F.
    return "cp1252" if name in {"iso-8859-1", "latin-1", "latin1", "us-ascii", "ascii"} else name


def parse_page(html: str | bytes, url: str | None = None, content_type: str | None = None) -> Page:
    if isinstance(html, bytes):
        text, raw_is_utf8 = _decode(html, content_type)
        utf8 = html if raw_is_utf8 else text.encode("utf-8", errors="replace")
    else:
        text, utf8 = html, html.encode("utf-8", errors="replace")
    # lexbor parses UTF-8 bytes about twice as fast as selectolax hands it a str.
    return Page(url=url, html=text, tree=LexborHTMLParser(utf8))
