"""Exact money: integer minor units inside, ``Decimal`` at every boundary.

The engine never touches binary floats for money. Prices travel as ``int`` counts of a
currency's minor unit (cents, yen, fils), so the single-item path (Python ints) and the
batch path (numpy int64) compute bit-identical results. Ratios such as "+5%" are integers
over ``RATIO_SCALE`` (parts per million), and every division rounds half up.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import cache

#: Multipliers and percentages are stored as integer parts per million.
RATIO_SCALE = 1_000_000
#: The largest amount in minor units the engine accepts (1e9 USD in cents). With ratios
#: capped at MAX_RATIO_PPM, ``2 * amount * ratio`` stays inside int64 in the batch path.
MAX_MINOR = 10**11
#: The largest multiplier (x11, i.e. +1000%) a rule or estimate may apply.
MAX_RATIO_PPM = 11 * RATIO_SCALE

# ISO 4217 minor units for currencies that differ from the usual 2 decimals.
_MINOR_UNIT_EXCEPTIONS: dict[str, int] = {
    # zero decimals
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0,
    "PYG": 0, "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0,
    "XPF": 0,
    # three decimals
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    # four decimals
    "CLF": 4, "UYW": 4,
}  # fmt: skip
#: The most digits a currency's minor unit has (CLF and UYW: 4).
MAX_MINOR_DIGITS = max(_MINOR_UNIT_EXCEPTIONS.values())


#: ISO 4217's active currency codes (2025), without precious metals, bond-market units,
#: SDRs and the testing codes (XAU, XBA, XDR, XTS, XXX, ...): nothing a shop prices in.
_ISO_4217_TABLE = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL
    BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF
    DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF
    IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR
    LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO
    NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK
    SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH
    UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
    ZWL
    """
ISO_4217_CODES = frozenset(_ISO_4217_TABLE.split())


class MoneyError(ValueError):
    """An amount or currency that cannot be represented exactly."""


@cache
def minor_unit_digits(currency: str) -> int:
    """Number of decimal digits of ``currency``'s minor unit (ISO 4217)."""
    if currency not in ISO_4217_CODES:
        raise MoneyError(f"not an ISO 4217 currency code: {currency!r}")
    return _MINOR_UNIT_EXCEPTIONS.get(currency, 2)


@cache
def minor_unit(currency: str) -> Decimal:
    """One minor unit of ``currency`` (0.01 USD, 1 JPY, 0.001 KWD), exact: ``minor`` units
    are ``Decimal(minor) * minor_unit(currency)``, digit for digit ``from_minor``'s."""
    return Decimal(1).scaleb(-minor_unit_digits(currency))


@cache
def minor_scale(currency: str) -> Decimal:
    """How many minor units make one major unit of ``currency`` (100 for USD, 1 for JPY):
    an amount exact in the minor unit times this is its whole count of minor units."""
    return Decimal(10 ** minor_unit_digits(currency))


def to_minor(amount: Decimal | str | int, currency: str) -> int:
    """Convert an amount to integer minor units, rounding half up deterministically."""
    try:
        value = amount if isinstance(amount, Decimal) else Decimal(amount)
    except InvalidOperation as exc:
        raise MoneyError(f"not a decimal amount: {amount!r}") from exc
    if not value.is_finite():
        raise MoneyError(f"not a finite amount: {amount!r}")
    scaled = value.scaleb(minor_unit_digits(currency))
    whole = int(scaled)
    if whole == scaled:  # the common case: already exact in minor units
        return whole
    return int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def from_minor(minor: int, currency: str) -> Decimal:
    """The exact ``Decimal`` for ``minor`` units of ``currency`` (e.g. 1999 USD -> 19.99)."""
    digits = minor_unit_digits(currency)
    return Decimal(int(minor)).scaleb(-digits)


def ratio_to_ppm(ratio: Decimal) -> int:
    """A ratio (0.05 for 5%) as integer parts per million; finer precision is an error."""
    scaled = ratio * RATIO_SCALE
    if scaled != scaled.to_integral_value():
        raise MoneyError(f"ratio {ratio} is finer than 1 part per million")
    return int(scaled)


def div_round_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half away from zero, for a positive denominator."""
    if numerator >= 0:
        return (2 * numerator + denominator) // (2 * denominator)
    return -((-2 * numerator + denominator) // (2 * denominator))


def apply_ratio(minor: int, multiplier_ppm: int) -> int:
    """``minor * multiplier`` where the multiplier is in parts per million, rounded half up."""
    return div_round_half_up(minor * multiplier_ppm, RATIO_SCALE)


def ceil_ratio(minor: int, multiplier_ppm: int) -> int:
    """``minor * multiplier`` rounded up: a lower bound never admits a price under it."""
    return -((-minor * multiplier_ppm) // RATIO_SCALE)


def floor_ratio(minor: int, multiplier_ppm: int) -> int:
    """``minor * multiplier`` rounded down: an upper bound never admits a price over it."""
    return (minor * multiplier_ppm) // RATIO_SCALE


def clamp_minor(minor: int) -> int:
    """Keep an intermediate price within ``±MAX_MINOR`` so later ratios cannot overflow
    int64 in the batch path; guardrails then bring it into its real range."""
    return max(-MAX_MINOR, min(MAX_MINOR, minor))
