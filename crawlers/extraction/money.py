"""Exact money parsing and currency normalisation to ISO 4217 codes."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from price_parser import Price

_PLAIN_DECIMAL = re.compile(r"^\s*(\d{1,12}(?:\.\d{1,6})?)\s*$")
_ISO_CODE = re.compile(r"^[A-Z]{3}$")

# Symbols that name exactly one currency wherever they appear.
_UNAMBIGUOUS_SYMBOLS = {
    "€": "EUR",
    "£": "GBP",
    "₹": "INR",
    "₽": "RUB",
    "руб": "RUB",  # noqa: RUF001  (Cyrillic letters are the point here)
    "₴": "UAH",
    "₺": "TRY",
    "₪": "ILS",
    "₩": "KRW",
    "₸": "KZT",
    "тг": "KZT",
    "₫": "VND",
    "₱": "PHP",
    "฿": "THB",
    "zł": "PLN",
    "kč": "CZK",
    "ft": "HUF",
    "lei": "RON",
    "kn": "HRK",
    "r$": "BRL",
    "chf": "CHF",
    "us$": "USD",
    "nt$": "TWD",
    "a$": "AUD",
    "au$": "AUD",
    "c$": "CAD",
    "ca$": "CAD",
    "nz$": "NZD",
    "hk$": "HKD",
    "s$": "SGD",
    "ر.س": "SAR",
    "د.إ": "AED",
    "лв": "BGN",
    "din": "RSD",
}
# Symbols shared by several currencies, resolved by the shop's country (its TLD).
_DOLLAR_BY_COUNTRY = {
    "ca": "CAD",
    "au": "AUD",
    "nz": "NZD",
    "cl": "CLP",
    "mx": "MXN",
    "ar": "ARS",
    "co": "COP",
    "tw": "TWD",
    "sg": "SGD",
    "hk": "HKD",
    "br": "BRL",
    "uy": "UYU",
}
_KRONA_BY_COUNTRY = {"se": "SEK", "no": "NOK", "dk": "DKK", "is": "ISK"}
_RUPEE_BY_COUNTRY = {"pk": "PKR", "lk": "LKR", "np": "NPR", "in": "INR"}
_YEN_BY_COUNTRY = {"cn": "CNY", "jp": "JPY", "tw": "TWD", "hk": "HKD"}
_CURRENCY_WORD = re.compile(r"[^\W\d_]+")
_LOCAL_SYMBOL_WORDS = frozenset(
    [*(s for s in _UNAMBIGUOUS_SYMBOLS if s.isalpha()), "元", "円", "kr", "rs"]
)


def parse_structured_amount(value: object) -> Decimal | None:
    """Parse a machine-readable price (schema.org says `.` is the decimal mark)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal | int):
        return _positive(Decimal(value))
    if isinstance(value, float):
        return _positive(Decimal(repr(value)))
    if not isinstance(value, str):
        return None
    match = _PLAIN_DECIMAL.match(value)
    if match:
        return _positive(Decimal(match.group(1)))
    return parse_display_amount(value)


def parse_display_amount(text: str) -> Decimal | None:
    """Parse a human-readable price such as `1.299,00 €` or `$87.11`."""
    amount = Price.fromstring(text).amount
    if amount is None:
        return None
    try:
        return _positive(Decimal(amount))
    except InvalidOperation:
        return None


def _positive(amount: Decimal) -> Decimal | None:
    return amount if amount.is_finite() and amount > 0 else None


def country_of(host: str) -> str:
    """The two-letter country suggested by a host's TLD (`shop.co.uk` -> `uk`)."""
    tld = host.rsplit(".", 1)[-1].lower() if "." in host else ""
    return tld if len(tld) == 2 else ""


def normalize_currency(raw: str | None, host: str = "") -> str | None:
    """Map a currency code or symbol to ISO 4217, using the shop's country to disambiguate."""
    if not raw:
        return None
    text = raw.strip()
    symbol = text.lower().rstrip(".")
    if symbol in _UNAMBIGUOUS_SYMBOLS:
        return _UNAMBIGUOUS_SYMBOLS[symbol]
    if _ISO_CODE.match(text.upper()) and text.isalpha() and text.isascii():
        return text.upper()
    country = country_of(host)
    if symbol == "$":
        return _DOLLAR_BY_COUNTRY.get(country, "USD")
    if symbol in {"kr", "kr.", ":-"}:
        return _KRONA_BY_COUNTRY.get(country)
    if symbol in {"rs", "rs.", "rp"}:
        return "IDR" if symbol == "rp" else _RUPEE_BY_COUNTRY.get(country, "INR")
    if symbol in {"¥", "￥", "円", "元"}:
        return _YEN_BY_COUNTRY.get(country, "JPY" if symbol in {"円", "¥"} else "CNY")
    return None


def currency_in_text(text: str, host: str = "") -> str | None:
    """The currency named by the symbol or code inside a displayed price, if any."""
    currency = Price.fromstring(text).currency
    if currency:
        return normalize_currency(currency, host)
    # price-parser does not know every local symbol ("270,00 Kn", "294 元").
    symbols = [w for w in _CURRENCY_WORD.findall(text) if w.lower() in _LOCAL_SYMBOL_WORDS]
    return normalize_currency(symbols[0], host) if len(symbols) == 1 else None
