"""Catalogue input: items as clients send them (JSON, NDJSON or CSV), validated one by one.

Shared by ``POST /v1/items/bulk`` and ``pricing import``: one bad row is reported with
its position and never stops the good ones. Money must arrive exact: a decimal string or
an integer, never a JSON number with a fraction, which is a binary float on the way in.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from pricing_service.engine.inputs import MAX_PRICE, AwareDatetime, ItemFacts
from pricing_service.money import minor_unit_digits

SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
#: CSV cells hold one value, so a list of tags is written ``a|b|c``.
CSV_TAG_SEPARATOR = "|"


#: A decimal string as the API writes money: digits, optionally a point and more digits.
#: No exponent ("1E+3" would be echoed back as written), no spaces, no "+".
_PLAIN_DECIMAL = re.compile(r"-?\d+(\.\d+)?")


def _reject_inexact(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError('money must be a decimal string such as "19.99", not a boolean')
    if isinstance(value, float):
        raise ValueError(
            'money must be a decimal string such as "19.99" (or an integer), not a JSON '
            "number with a fraction: those are binary floats and not exact"
        )
    if isinstance(value, str) and not _PLAIN_DECIMAL.fullmatch(value):
        raise ValueError(
            f'money must be a plain decimal string such as "19.99", not {value[:40]!r}'
        )
    return value


#: What the OpenAPI document promises for money in requests: what the validator takes.
_EXACT_MONEY_SCHEMA: dict[str, Any] = {
    "anyOf": [
        # Up to MAX_PRICE, 1,000,000,000.
        {"type": "string", "pattern": r"^(\d{1,9}(\.\d{1,6})?|1000000000(\.0{1,6})?)$"},
        {"type": "integer", "minimum": 0, "maximum": int(MAX_PRICE)},
    ],
    "description": 'A decimal string such as "19.99", or an integer; never a float.',
    "examples": ["19.99"],
}

#: An amount of money in a request: a decimal string or an integer, never a float.
ExactMoney = Annotated[
    Decimal,
    BeforeValidator(_reject_inexact),
    Field(ge=0, le=MAX_PRICE, allow_inf_nan=False),
    WithJsonSchema(_EXACT_MONEY_SCHEMA, mode="validation"),
]
#: A price in a request: as :data:`ExactMoney`, and above zero. A zero price is never a
#: real one: it would be published as the currency's smallest unit.
ExactPrice = Annotated[
    Decimal,
    BeforeValidator(_reject_inexact),
    Field(gt=0, le=MAX_PRICE, allow_inf_nan=False),
    WithJsonSchema(
        {
            **_EXACT_MONEY_SCHEMA,
            "anyOf": [
                _EXACT_MONEY_SCHEMA["anyOf"][0],
                {"type": "integer", "minimum": 1, "maximum": int(MAX_PRICE)},
            ],
            "description": 'A decimal string above zero such as "19.99", '
            "or a positive integer; never a float.",
        },
        mode="validation",
    ),
]


def is_exact_in(amount: Decimal, currency: str) -> bool:
    """Whether ``amount`` fits ``currency``'s minor unit (19.999 USD does not)."""
    return amount == amount.quantize(Decimal(1).scaleb(-minor_unit_digits(currency)))


class ItemIn(BaseModel):
    """An item's facts as a client sends them; ``sku`` may be left to the URL."""

    model_config = ConfigDict(extra="forbid")

    sku: str | None = Field(default=None, pattern=SKU_PATTERN)
    currency: str = Field(pattern=r"^[A-Z]{3}$", examples=["USD"])
    cost: ExactMoney | None = None
    list_price: ExactPrice | None = None
    map_price: ExactPrice | None = Field(default=None, description="Minimum advertised price.")
    min_price: ExactPrice | None = None
    max_price: ExactPrice | None = None
    inventory: int | None = Field(default=None, ge=0, le=10**12)
    category: str | None = Field(default=None, max_length=200)
    brand: str | None = Field(default=None, max_length=200)
    tags: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=100
    )
    current_price: ExactPrice | None = None
    last_changed_at: AwareDatetime | None = None

    @model_validator(mode="after")
    def _floor_below_ceiling(self) -> Self:
        low, high = self.min_price, self.max_price
        if low is not None and high is not None and low > high:
            raise ValueError(f"min_price {low} is above max_price {high}")
        return self

    def to_facts(self, sku: str | None = None) -> ItemFacts:
        """The engine's :class:`ItemFacts`; raises ``ValueError`` when ``sku`` disagrees
        and ``ValidationError`` when amounts are finer than the currency allows."""
        if sku is not None and self.sku is not None and self.sku != sku:
            raise ValueError(f"the body's sku {self.sku!r} differs from the URL's {sku!r}")
        chosen = sku or self.sku
        if chosen is None:
            raise ValueError("sku is required")
        fields = self.model_dump(exclude={"sku"}, exclude_none=True)
        fields["tags"] = frozenset(self.tags)
        return ItemFacts(sku=chosen, **fields)


@dataclass(frozen=True, slots=True)
class RowError:
    """One item that could not be used; ``index`` counts from 0, ``line`` from 1."""

    index: int
    message: str
    line: int | None = None
    sku: str | None = None


def describe_validation_error(error: ValidationError) -> str:
    parts = []
    for detail in error.errors():
        where = ".".join(str(part) for part in detail["loc"])
        message = detail["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def validate_item(raw: object) -> ItemFacts:
    """One item from parsed JSON; raises ``ValueError`` with a readable message."""
    if not isinstance(raw, dict):
        raise ValueError(f"an item must be a JSON object, not {type(raw).__name__}")
    try:
        return ItemIn.model_validate(raw).to_facts()
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc)) from None


def _sku_of(raw: object) -> str | None:
    sku = raw.get("sku") if isinstance(raw, dict) else None
    return sku if isinstance(sku, str) else None


def check_items(raws: Iterable[object]) -> Iterator[ItemFacts | RowError]:
    """Validate parsed items one by one, in order."""
    for index, raw in enumerate(raws):
        try:
            yield validate_item(raw)
        except ValueError as exc:
            yield RowError(index=index, message=str(exc), sku=_sku_of(raw))


class NotJsonError(ValueError):
    """The document is not JSON at all (as opposed to JSON of the wrong shape)."""


def utf8_problem(path: Path) -> tuple[int, str] | None:
    """The line and what is wrong when the file is not UTF-8 text (saved in
    Windows-1252, say), found before anything is imported from it; None when it is. A
    byte-order mark, as Excel's "CSV UTF-8" writes, is fine: read it as ``utf-8-sig``."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return number, (
                    f"not UTF-8 text (byte {line[exc.start]:#04x} at column {exc.start + 1}); "
                    "save the file as UTF-8"
                )
    return None


def parse_json_array(data: bytes | str) -> list[object]:
    """The items of a JSON array; raises ``NotJsonError`` when the document is not JSON,
    ``ValueError`` when it is not an array."""
    try:
        document = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NotJsonError(f"not valid JSON: {exc}") from None
    except RecursionError:
        raise NotJsonError("not valid JSON: nested too deeply") from None
    if not isinstance(document, list):
        raise ValueError("expected a JSON array of items")
    return document


def check_ndjson(lines: Iterable[bytes | str]) -> Iterator[ItemFacts | RowError]:
    """One JSON object a line; blank lines are skipped but still counted for ``line``."""
    index = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw: Any = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            yield RowError(index=index, line=number, message=f"not valid JSON: {exc}")
        except RecursionError:
            yield RowError(index=index, line=number, message="not valid JSON: nested too deeply")
        else:
            try:
                yield validate_item(raw)
            except ValueError as exc:
                yield RowError(index=index, line=number, message=str(exc), sku=_sku_of(raw))
        index += 1


def _csv_row_to_raw(row: dict[str | Any, str | Any]) -> dict[str, object]:
    raw: dict[str, object] = {}
    for name, value in row.items():
        if name is None:  # more cells than header columns
            raise ValueError("the row has more cells than the header")
        if value is None or value == "":
            continue
        if name == "tags":
            raw[name] = [tag.strip() for tag in value.split(CSV_TAG_SEPARATOR) if tag.strip()]
        else:
            raw[name] = value
    return raw


def check_csv(lines: Iterable[str]) -> Iterator[ItemFacts | RowError]:
    """CSV with a header row naming :class:`ItemIn` fields; empty cells are absent."""
    reader = csv.DictReader(lines)
    for index, row in enumerate(reader):
        line = reader.line_num
        try:
            yield validate_item(_csv_row_to_raw(row))
        except ValueError as exc:
            yield RowError(index=index, line=line, message=str(exc), sku=row.get("sku") or None)
