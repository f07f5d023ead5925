"""Recognising CAPTCHA, bot-wall and error pages, even when dressed as product pages.

Such pages often keep the shop's layout, title and even its product metadata, so any
price on them is stale or fake. The verdict comes from the visible text: a block or
error message in the title, or as most of a page that has little else to say.
"""

from __future__ import annotations

import re

from crawlers.extraction.document import Page
from crawlers.extraction.patterns import any_of

_BLOCK_MESSAGE = re.compile(
    any_of(
        "captcha",
        r"are you a (?:human|robot)",
        "not a robot",
        "robot check",
        r"verify (?:you are|that you are) (?:a )?human",
        "unusual traffic",
        r"automated (?:access|queries|requests)",
        r"access (?:to this page )?(?:has been )?denied",
        "request unsuccessful",
        "pardon our interruption",
        "just a moment",
        "attention required",
        "checking your browser",
        r"enable (?:javascript and )?cookies to continue",
        r"press (?:&|and) hold",
        "blocked",
        "sorry, we just need to make sure",
        word_start=False,  # "reCAPTCHA" counts
    )
)
# A status code counts only as the whole title or beside words that make it one: product
# names carry model numbers ("Peugeot 403", "BENCH-404") and prices look like $403.99.
_STATUS = r"(?:404|403|410|500|502|503)"
_ERROR_TITLE = re.compile(
    rf"^\W*{_STATUS}\W*$|"
    rf"\b(?:error|http|status)\W{{0,3}}{_STATUS}\b|"
    rf"(?<![$€£¥.,\d]){_STATUS}\W{{0,3}}(?:error|not found|forbidden|gone|internal|bad gateway|"
    r"service unavailable|page)\b|"
    r"page not found|\bnot found\b|seite nicht gefunden|page introuvable|página no encontrada|"
    r"pagina non trovata|service unavailable|server error|something went wrong|\berror\b",
    re.IGNORECASE,
)
# Every alternative of each pattern above contains one of its hints, in lower case: a
# text with none cannot match, and most texts have none. `in` finds them in about a
# microsecond where the patterns take 60 to 100 on a product page's visible text.
_BLOCK_HINTS = (
    "captcha",
    "are you a ",
    "not a robot",
    "robot check",
    "verify ",
    "unusual traffic",
    "automated ",
    "denied",
    "request unsuccessful",
    "pardon our interruption",
    "just a moment",
    "attention required",
    "checking your browser",
    "cookies to continue",
    "press ",
    "blocked",
    "sorry, we just need to make sure",
)
_ERROR_HINTS = (
    *("404", "403", "410", "500", "502", "503"),
    *("error", "not found", "nicht gefunden", "introuvable", "no encontrada", "non trovata"),
    *("unavailable", "went wrong"),
)
# A real product page has a description, specifications and navigation; a wall does not.
_SHORT_PAGE_CHARS = 2500


def is_blocked_page(page: Page, visible_text: str) -> bool:
    title_node = page.tree.css_first("title")
    title = title_node.text(strip=True) if title_node is not None else ""
    if _says_blocked(title) or _says_error(title):
        return True
    return len(visible_text) < _SHORT_PAGE_CHARS and (
        _says_blocked(visible_text) or _says_error(visible_text[:500])
    )


def _says_blocked(text: str) -> bool:
    lowered = text.lower()
    return any(hint in lowered for hint in _BLOCK_HINTS) and bool(_BLOCK_MESSAGE.search(text))


def _says_error(text: str) -> bool:
    lowered = text.lower()
    return any(hint in lowered for hint in _ERROR_HINTS) and bool(_ERROR_TITLE.search(text))
