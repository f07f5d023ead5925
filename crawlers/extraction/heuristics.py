"""Heuristics over the visible page, the last link of the chain.

Prices: elements whose class or id says "price" and whose text is one short amount.
Each candidate is rejected when it is a trap (struck-through or list price, per-unit
price, shipping threshold, a related product's price) and otherwise ranked by how
close after the product title (`<h1>`) it appears. Several different prices with no
clear winner lower the confidence rather than forcing a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from selectolax.lexbor import LexborHTMLParser, LexborNode

from crawlers.extraction.document import Page
from crawlers.extraction.evidence import Evidence
from crawlers.extraction.money import currency_in_text, parse_display_amount
from crawlers.extraction.patterns import any_of
from crawlers.extraction.result import Availability, Method

_PRICE_WORDS = ("price", "preis", "prix", "prezzo", "precio", "preco", "cena", "pris", "hinta")
PRICE_CANDIDATE_SELECTOR = ", ".join(
    ["h1", *(f'[class*="{w}" i], [id*="{w}" i]' for w in _PRICE_WORDS)]
)
_MAX_PRICE_TEXT = 40
_DIGIT = re.compile(r"\d")
_AMOUNT_TOKEN = re.compile(r"\d[\d.,'\u00a0\u202f ]*")
# Struck-through, list and reference prices: what the product used to cost.
_FORMER_PRICE_HINT = re.compile(
    r"strike|old|was|list[-_]?price|--list\b|regular|original|before|crossed|rrp|msrp|uvp|compare|"
    # `discountPrice` and `reduced-price` are what the buyer pays after the discount.
    r"saving|save|discount(?!ed)(?![-_]?price)|reduc(?!ed[-_]?price)|previous|retail|basis|statt|avant|barr|deleted|"
    r"per-?unit|unit-?price|ppu|base-?price|grundpreis|conv(?:erted)?[-_]?price|"
    r"ship|deliver|versand|livraison|envio|install?ment|monthly|financ|klarna|"
    r"rating|review|star|(?<!dis)count",
    re.IGNORECASE,
)
# Containers that hold other products only.
_OTHER_PRODUCTS_HINT = re.compile(
    r"related|recommend|similar|upsell|up-sell|cross-?sell|also|sponsor|recent|viewed|"
    r"offer-?(?:row|list)|other|bundle|accessor|compare|suggest|reco",
    re.IGNORECASE,
)
# Containers of side costs: their prices are never the product's, though a stock
# statement often sits in a delivery block.
_SIDE_COST_HINT = re.compile(r"deliver|shipping|install?ment|financ", re.IGNORECASE)
# Navigation, cart widgets and galleries: usually someone else's price, but the product's
# own buy box is often called `cart-wrapper` or sits in an image `slider` too.
_WIDGET_HINT = re.compile(
    r"footer|header|nav|menu|mini-?cart|basket|cart-|more-|slider|swiper|carousel|listing|"
    r"tile|teaser",
    re.IGNORECASE,
)
_STRUCK_TAGS = frozenset({"del", "s", "strike"})
_TRAP_TEXT = re.compile(
    r"/\s*(?:kg|g|l|ml|m|m2|m²|100\s?g|100\s?ml|1\s?kg|1\s?l|unit|each|st|stk|pc|count|oz)\b|"
    r"\bper\b|\bpro\b|\bje\b|\bfrom\b|\bab\b|\bover\b|\bfree\b|%|"
    r"shipping|delivery|versand|livraison|envío|spedizione|ratings?|reviews?|stars?|"
    # "Approximately US $2.66": a conversion into the visitor's currency, not the offer.
    r"approx|≈|\bca\.\s|environ|ungefähr|aprox",
    re.IGNORECASE,
)
_CURRENT_PRICE_HINT = re.compile(
    r"sale|current|now|final|actual|special|offer|our|deal|buy|main|product|selling|pdp",
    re.IGNORECASE,
)
# A price labelled by its tax treatment (`price-tax`, `price-excl-vat`) is the secondary
# figure beside an unlabelled headline price; when every price is labelled, none is.
_TAX_QUALIFIED_HINT = re.compile(r"tax|\bvat|mwst|netto|brutto|excl|incl", re.IGNORECASE)
_HIDDEN_SELECTOR = '[hidden], [style*="display:none" i], [style*="display: none" i]'
# Joins the text pieces of a price element, to see where one element's text ends.
_PIECE = "\x1f"
_SPLIT_CENTS = re.compile(
    r"(?<![\d.,])(\d{1,3}(?:[.,\u00a0\u202f ]\d{3})+|\d+)" + _PIECE + r"+(\d{2})(?=\x1f|$)"
)
_HIDDEN_CHECK_TEXT = 1000
_FORMER_PRICE_DEPTH = 3
# Candidates after the title are ranked by order; a price this far down is a guess.
_RANK_DECAY = 0.35

CONFIDENCE_AGREEING = 0.7
CONFIDENCE_DOMINANT = 0.55
CONFIDENCE_CONTESTED = 0.3


@dataclass(frozen=True, slots=True)
class PriceCandidate:
    amount: Decimal
    currency: str | None
    score: float
    tax_qualified: bool = False


def _hint_text(node: LexborNode) -> str:
    attributes = node.attributes
    return f"{attributes.get('class') or ''} {attributes.get('id') or ''}"


# Pages repeat the same class names thousands of times: remember what each one says.
@lru_cache(maxsize=65536)
def _hint_says(pattern: re.Pattern[str], hint: str) -> bool:
    return pattern.search(hint) is not None


def is_former_or_side_price(node: LexborNode) -> bool:
    # A walk over the few elements of a short price is cheaper than a CSS query.
    if any(inner.tag in _STRUCK_TAGS for inner in node.traverse()):
        return True  # the amount inside is struck through
    current: LexborNode | None = node
    for _ in range(_FORMER_PRICE_DEPTH):
        if current is None:
            break
        if current.tag in _STRUCK_TAGS or _hint_says(_FORMER_PRICE_HINT, _hint_text(current)):
            return True
        style = current.attributes.get("style") or ""
        if "line-through" in style or "data-a-strike" in current.attributes:
            return True
        current = current.parent
    return False


_PAGE_CHROME_TAGS = ("header", "footer", "nav", "aside")


@dataclass(frozen=True, slots=True)
class TitleArea:
    """The product title (`<h1>`) and the elements enclosing it.

    A class name such as `detail-header` or `no-slider` on an enclosing element says
    nothing about other products. The title's own parent, `box`, is the product's
    block: inside it only a container named for other products is foreign.
    """

    heading: LexborNode | None = None
    enclosing: frozenset[int] = frozenset()
    box: int | None = None


def title_area(page: Page) -> TitleArea:
    """The first `<h1>` outside the page's chrome, and what encloses it."""
    for h1 in page.tree.css("h1"):
        ancestors: list[int] = []
        current = h1.parent
        while current is not None and current.tag not in ("body", "html"):
            if current.tag in _PAGE_CHROME_TAGS:
                break
            ancestors.append(current.mem_id)
            current = current.parent
        else:
            return TitleArea(h1, frozenset(ancestors), ancestors[0] if ancestors else None)
    return TitleArea()


class ForeignContainers:
    """Whether a foreign container encloses a node: the page's chrome, a list entry, a
    link to another page, a container named for other products (or, for prices, for side
    costs), or a widget, unless the product's own title area comes first.

    One instance per page and question: each ancestor is examined once, however many
    candidates it encloses (pages have thousands of price-like elements).
    """

    # What examining one ancestor says: the walk's answer, or go on to its parent.
    _FOREIGN, _OWN, _WIDGET_SO_FAR, _GO_ON = range(4)

    def __init__(
        self, title: TitleArea = TitleArea(), *, of_price: bool = False, loose: bool = False
    ) -> None:
        self._title = title
        # Loose, for text no price markup surrounds: on such shops lists and widgets
        # hold the product's own block too, so only chrome, links and names count.
        self._loose = loose
        self._foreign = (
            (_OTHER_PRODUCTS_HINT, _SIDE_COST_HINT) if of_price else (_OTHER_PRODUCTS_HINT,)
        )
        # mem_id -> (the answer of a walk from there, a widget seen on the way)
        self._walks: dict[int, tuple[bool | None, bool]] = {}

    def __call__(self, node: LexborNode) -> bool:
        chain: list[tuple[int, bool]] = []  # (mem_id, is a widget) of the ancestors walked
        current = node.parent
        while True:
            if current is None:
                answer, widget = None, False
                break
            known = self._walks.get(current.mem_id)
            if known is not None:
                answer, widget = known
                break
            verdict, is_widget = self._examine(current)
            if verdict is not self._GO_ON:
                answer = {self._FOREIGN: True, self._OWN: False}.get(verdict)
                widget = False
                self._walks[current.mem_id] = (answer, False)
                break
            chain.append((current.mem_id, is_widget))
            current = current.parent
        for mem_id, is_widget in reversed(chain):
            widget = widget or is_widget
            self._walks[mem_id] = (answer, widget)
        # None: the walk ended (body, or the title's enclosing elements) on what it saw.
        return answer if answer is not None else widget

    def _examine(self, element: LexborNode) -> tuple[int, bool]:
        tag = element.tag
        if tag in ("body", "main", "html"):
            return self._WIDGET_SO_FAR, False
        if tag in _PAGE_CHROME_TAGS or (not self._loose and tag in ("li", "option", "select")):
            return self._FOREIGN, False
        if tag == "a" and _links_elsewhere(element):
            return self._FOREIGN, False  # a product card, or "New & used from £36"
        if element.mem_id == self._title.box:
            return self._OWN, False
        if element.mem_id in self._title.enclosing:
            return self._WIDGET_SO_FAR, False
        hint = _hint_text(element)
        if any(_hint_says(pattern, hint) for pattern in self._foreign):
            return self._FOREIGN, False
        return self._GO_ON, not self._loose and _hint_says(_WIDGET_HINT, hint)


def _links_elsewhere(anchor: LexborNode) -> bool:
    href = (anchor.attributes.get("href") or "").strip()
    return bool(href) and not href.startswith(("#", "javascript:"))


def _is_tax_qualified(node: LexborNode) -> bool:
    current: LexborNode | None = node
    for _ in range(_FORMER_PRICE_DEPTH):
        if current is None:
            return False
        if _hint_says(_TAX_QUALIFIED_HINT, _hint_text(current)):
            return True
        current = current.parent
    return False


def price_text(node: LexborNode) -> str:
    """The node's text, with cents set in their own element (`173<sup>34</sup>`) rejoined.

    Two digits that are a text of their own straight after a whole number are its
    fraction: "173.34", or "1.229,99" where the dot already groups thousands. Hidden
    parts are left out: `1,679 <span style="display:none">1679</span>` shows one price.
    """
    text = node.text(deep=True, separator=_PIECE, strip=True)
    # Leaving hidden parts out never adds a digit, nor shortens a whole block of text to
    # one short price: only the rest pay for the query that finds hidden parts.
    if (
        _DIGIT.search(text)
        and len(text) <= _HIDDEN_CHECK_TEXT
        and any(part.mem_id != node.mem_id for part in node.css(_HIDDEN_SELECTOR))
    ):
        text = _without_hidden_parts(node).text(deep=True, separator=_PIECE, strip=True)
    if _PIECE in text:
        text = _SPLIT_CENTS.sub(_join_cents, text).replace(_PIECE, " ")
    return text


def _without_hidden_parts(node: LexborNode) -> LexborNode:
    """A copy of the element without its hidden descendants (rare: parsed again then).

    A hidden element itself stays a candidate: it is the shop's own copy of a price.
    """
    copy = LexborHTMLParser(node.html or "").body
    element = copy.child if copy is not None else None
    if element is None:
        return node
    for hidden in element.css(_HIDDEN_SELECTOR):
        if hidden.mem_id != element.mem_id:
            hidden.decompose()
    return element


def _join_cents(match: re.Match[str]) -> str:
    whole, cents = match.group(1), match.group(2)
    return f"{whole}{',' if '.' in whole else '.'}{cents}"


@lru_cache(maxsize=8192)
def _single_amount(text: str, host: str) -> tuple[Decimal, str | None] | None:
    """The one amount a short price text shows (repeated copies of it are fine)."""
    if len(text) > _MAX_PRICE_TEXT or not _DIGIT.search(text) or _TRAP_TEXT.search(text):
        return None
    tokens = {t.strip(" .,'\u00a0\u202f") for t in _AMOUNT_TOKEN.findall(text)}
    amounts = {parse_display_amount(t) for t in tokens}
    amount = parse_display_amount(text)
    if amount is None or len(amounts - {None}) != 1:
        return None
    return amount, currency_in_text(text, host)


def price_candidates(page: Page) -> list[PriceCandidate]:
    nodes = page.tree.css(PRICE_CANDIDATE_SELECTOR)
    title = title_area(page)
    # Without a title outside the chrome, every price ranks as if after it.
    title_id = title.heading.mem_id if title.heading is not None else None
    foreign = ForeignContainers(title, of_price=True)
    seen_title = title_id is None
    candidates: list[PriceCandidate] = []
    rank = 0
    host = page.host
    for node in nodes:
        if node.tag == "h1":
            seen_title = seen_title or node.mem_id == title_id
            continue
        parsed = _single_amount(price_text(node), host)
        if parsed is None or is_former_or_side_price(node) or foreign(node):
            continue
        amount, currency = parsed
        score = 1.0 / (1.0 + _RANK_DECAY * rank) if seen_title else 0.3
        if currency:
            score *= 1.5
        if _CURRENT_PRICE_HINT.search(_hint_text(node)):
            score *= 1.2
        candidates.append(PriceCandidate(amount, currency, score, _is_tax_qualified(node)))
        if seen_title:
            rank += 1
    headline = [c for c in candidates if not c.tax_qualified]
    return headline or candidates


def extract_visible_price(page: Page) -> Evidence | None:
    return visible_price_evidence(price_candidates(page))


def visible_price_evidence(candidates: list[PriceCandidate]) -> Evidence | None:
    """The best-supported visible amount, its confidence saying how contested it is."""
    if not candidates:
        return None
    score_by_amount: dict[Decimal, float] = {}
    for candidate in candidates:
        score_by_amount[candidate.amount] = score_by_amount.get(candidate.amount, 0) + (
            candidate.score
        )
    ranked = sorted(score_by_amount.items(), key=lambda item: item[1], reverse=True)
    best_amount, best_score = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
    if runner_up == 0.0:
        confidence = CONFIDENCE_AGREEING
    elif best_score >= 2 * runner_up:
        confidence = CONFIDENCE_DOMINANT
    else:
        confidence = CONFIDENCE_CONTESTED
    currency = next(
        (c.currency for c in candidates if c.amount == best_amount and c.currency), None
    )
    return Evidence(
        method=Method.HEURISTIC, price=best_amount, currency=currency, confidence=confidence
    )


# Availability -------------------------------------------------------------------------

AVAILABILITY_SELECTOR = (
    '[id*="availability" i], [class*="availability" i], [id*="stock" i], [class*="stock" i], '
    '[class*="lieferbar" i], [class*="dispon" i], [id*="dispon" i]'
)
_MAX_AVAILABILITY_TEXT = 160
_OUT_OF_STOCK_TEXT = re.compile(
    r"out of stock|sold out|currently unavailable|no longer available|not available|"
    r"unavailable|ausverkauft|nicht verfügbar|nicht lieferbar|nicht auf lager|vergriffen|"
    r"épuisé|indisponible|rupture de stock|agotado|no disponible|sin stock|esaurito|"
    r"non disponibile|uitverkocht|niet leverbaar|niet op voorraad|brak w magazynie|"
    r"niedostępn|wyprzedan|slutsåld|udsolgt|utsolgt|loppu|нет в наличии|"
    r"esgotado|indisponível|sem estoque|vyprodáno|nedostupn|elfogyott",
    re.IGNORECASE,
)
_IN_STOCK_TEXT = re.compile(
    r"in stock|available|auf lager|lieferbar|verfügbar|en stock|disponible|in magazzino|"
    r"disponibile|op voorraad|leverbaar|dostępn|в наличии|på lager|i lager|em estoque|"
    r"disponível|skladem|raktáron|add to (?:cart|basket|bag)",
    re.IGNORECASE,
)


def extract_visible_availability(page: Page) -> Availability | None:
    """The first short availability statement outside other products' widgets."""
    foreign = ForeignContainers()
    for node in page.tree.css(AVAILABILITY_SELECTOR):
        text = node.text(deep=True, separator=" ", strip=True)
        if not text or len(text) > _MAX_AVAILABILITY_TEXT or foreign(node):
            continue
        availability = availability_from_text(text)
        if availability is not None:
            return availability
    return None


def availability_from_text(text: str) -> Availability | None:
    """Read a stock statement such as "Currently unavailable." or "Auf Lager"."""
    if _OUT_OF_STOCK_TEXT.search(text):
        return Availability.OUT_OF_STOCK
    if _IN_STOCK_TEXT.search(text):
        return Availability.IN_STOCK
    return None


# SKU ----------------------------------------------------------------------------------


_CODE_VALUE = r"\s*[:#.]?\s*[:#]?\s*([A-Z0-9][A-Z0-9\-./_]{2,30}[A-Z0-9])"
# Labels that name the shop's own code come first; generic "reference" labels after.
_CODE_LABELS = (
    re.compile(any_of("asin", "sku") + f"(?i:{_CODE_VALUE})"),
    re.compile(
        any_of(
            r"item\s*(?:number|no\.?|#|id|code)",
            r"article\s*(?:number|no\.?)",
            r"art(?:ikel)?\.?\s*-?\s*nr\.?",
            "artikelnummer",
            r"product\s*(?:code|id|number|no\.?)",
            r"réf(?:érence)?\.?",
            r"ref\.?",
            "código",
            r"codice(?:\s*articolo)?",
            r"kod\s*(?:produktu|towaru)",
            r"numer\s*katalogowy",
            "артикул",
            r"код\s*товара",
            r"catalogue\s*(?:number|no\.?)",
            r"číslo\s*produktu",
            "tuotenumero",
            "varenummer",
            r"post\s*id",
            "bestellnummer",
            r"cod\s*produs",
            r"id\s*(?:do\s*)?produto",
            "šifra",
            r"kód\s*produktu",
        )
        + f"(?i:{_CODE_VALUE})"
    ),
)


# Elements whose markup names them as the product's code (`itemprop="sku"`,
# `class="product-sku"`, `data-qa-qualifier="product-reference"`), shown as their text.
CODE_ELEMENT_SELECTOR = ", ".join(
    [
        '[itemprop="sku" i]',
        *(
            f'[{attribute}*="{word}" i]'
            for attribute in ("class", "id", "data-qa-qualifier", "data-test")
            for word in ("sku", "product-reference", "product-code", "catnumber")
        ),
    ]
)
_MAX_CODE_ELEMENT_TEXT = 40
_CODE_TEXT = re.compile(r"(?:[^\W\d_][\w.#-]*\s*[:#]\s*)?([A-Z0-9][A-Z0-9\-./_]{2,30}[A-Z0-9])")


def visible_product_codes(visible_text: str, page: Page | None = None) -> list[str]:
    """Product codes the page shows as such, best first.

    First codes after a strong label ("SKU: 12345"), then elements whose markup names
    them as the product code, then codes after the other labels ("Art.-Nr. 123").
    """
    strong, generic = (
        [m.group(1) for m in label.finditer(visible_text) if _DIGIT.search(m.group(1))]
        for label in _CODE_LABELS
    )
    return strong + (visible_code_elements(page) if page is not None else []) + generic


def visible_code_elements(page: Page) -> list[str]:
    """The text of elements marked up as the product code, outside other products' widgets."""
    codes: list[str] = []
    foreign = ForeignContainers()
    for node in page.tree.css(CODE_ELEMENT_SELECTOR):
        text = node.text(deep=True, separator=" ", strip=True)
        if not text or len(text) > _MAX_CODE_ELEMENT_TEXT or foreign(node):
            continue
        match = _CODE_TEXT.fullmatch(text)
        if match and _DIGIT.search(match.group(1)) and match.group(1) not in codes:
            codes.append(match.group(1))
    return codes
