"""Recognising CAPTCHA, bot-wall and error pages, even when dressed as product pages.

Such pages often keep the shop's layout, title and even its product metadata, so any
price on them is stale or fake. The verdict comes from the visible text: a block or
error message in the title, or as most of a page that has little else to say.
"""

from __future__ import annotations

import re

from crawlers.extraction.document import Page

_BLOCK_MESSAGE = re.compile(
    r"captcha|are you a (?:human|robot)|not a robot|robot check|verify (?:you are|that you are)"
    r" (?:a )?human|unusual traffic|automated (?:access|queries|requests)|access (?:to this page )?"
    r"(?:has been )?denied|request unsuccessful|pardon our interruption|just a moment|"
    r"attention required|checking your browser|enable (?:javascript and )?cookies to continue|"
    r"press (?:&|and) hold|blocked|sorry, we just need to make sure",
    re.IGNORECASE,
)
_ERROR_TITLE = re.compile(
    # A status code, not an amount such as $403.99 or 500,00 €.
    r"(?<![$€£¥.,\d])\b(?:404|403|410|500|502|503)\b(?![.,]\d)|"
    r"page not found|not found|seite nicht gefunden|"
    r"page introuvable|página no encontrada|pagina non trovata|service unavailable|"
    r"server error|something went wrong|error",
    re.IGNORECASE,
)
# A real product page has a description, specifications and navigation; a wall does not.
_SHORT_PAGE_CHARS = 2500


def is_blocked_page(page: Page, visible_text: str) -> bool:
    title_node = page.tree.css_first("title")
    title = title_node.text(strip=True) if title_node is not None else ""
    if _BLOCK_MESSAGE.search(title) or _ERROR_TITLE.search(title):
        return True
    return len(visible_text) < _SHORT_PAGE_CHARS and bool(
        _BLOCK_MESSAGE.search(visible_text) or _ERROR_TITLE.search(visible_text[:500])
    )
