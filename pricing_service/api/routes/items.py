"""The catalogue: items one by one and in bulk."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pricing_service.api.deps import Reader, SettingsDep, StoreDep, Writer
from pricing_service.api.problems import (
    FORBIDDEN,
    UNAUTHORIZED,
    UNAVAILABLE,
    ProblemError,
    invalid,
    not_found,
    request_media_type,
    unparseable,
)
from pricing_service.catalogue import (
    SKU_PATTERN,
    ItemIn,
    NotJsonError,
    RowError,
    check_items,
    check_ndjson,
    describe_validation_error,
    parse_json_array,
)
from pricing_service.engine.inputs import ItemFacts

router = APIRouter(tags=["catalogue"], responses={**UNAUTHORIZED, **UNAVAILABLE})

Sku = Annotated[str, Path(pattern=SKU_PATTERN, description="The item's SKU.")]
#: Items written per Redis pipeline in a bulk load.
_WRITE_CHUNK = 1000
_NDJSON_TYPES = (
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/x-jsonlines",
)


class ItemError(BaseModel):
    index: int
    line: int | None = None
    sku: str | None = None
    message: str


class BulkResult(BaseModel):
    received: int
    stored: int
    created: int
    errors: list[ItemError]


class InventoryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inventory: int = Field(ge=0, le=10**12)


@router.put("/v1/items/{sku}", responses={201: {"model": ItemFacts}, **FORBIDDEN})
async def put_item(
    sku: Sku, body: ItemIn, _: Writer, store: StoreDep, response: Response
) -> ItemFacts:
    """Create or replace an item (201 when it is new)."""
    try:
        item = body.to_facts(sku)
    except ValidationError as exc:
        raise invalid(describe_validation_error(exc)) from None
    except ValueError as exc:
        raise invalid(str(exc)) from None
    [created] = await store.put_items([item], reason="item")
    response.status_code = 201 if created else 200
    return item


@router.get("/v1/items/{sku}", responses={404: {"description": "No such item."}})
async def get_item(sku: Sku, _: Reader, store: StoreDep) -> ItemFacts:
    """One item's facts."""
    item = await store.get_item(sku)
    if item is None:
        raise not_found("item", f"no item {sku!r}")
    return item


@router.delete(
    "/v1/items/{sku}",
    status_code=204,
    responses={**FORBIDDEN, 404: {"description": "No such item."}},
)
async def delete_item(sku: Sku, _: Writer, store: StoreDep) -> Response:
    """Remove an item and its live prices; its audit trail stays until retention."""
    if not await store.delete_item(sku):
        raise not_found("item", f"no item {sku!r}")
    return Response(status_code=204)


@router.put(
    "/v1/items/{sku}/inventory", responses={**FORBIDDEN, 404: {"description": "No such item."}}
)
async def put_inventory(sku: Sku, body: InventoryIn, _: Writer, store: StoreDep) -> ItemFacts:
    """Set an item's inventory (units on hand)."""
    updated = await store.set_inventory(sku, body.inventory)
    if updated is None:
        raise not_found("item", f"no item {sku!r}")
    return updated


@router.post(
    "/v1/items/bulk",
    responses={
        **FORBIDDEN,
        415: {"description": "Neither JSON nor NDJSON."},
        422: {"description": "Not a JSON array, or too many items."},
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "array", "items": ItemIn.model_json_schema()}
                },
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        }
    },
)
async def bulk_items(
    request: Request, _: Writer, store: StoreDep, settings: SettingsDep
) -> BulkResult:
    """Load many items as a JSON array or NDJSON; each is validated on its own.

    Items are written in transactions of up to 1,000: a call that fails part-way (503)
    may have stored some of them, whole, and can be retried as it is."""
    media_type = request_media_type(request)
    body = await request.body()
    if media_type in _NDJSON_TYPES:
        lines = body.splitlines()
        if sum(1 for line in lines if line.strip()) > settings.max_bulk_items:
            raise invalid(f"at most {settings.max_bulk_items} items per call")
        checked = list(check_ndjson(lines))
    elif media_type in ("application/json", ""):
        try:
            raws = parse_json_array(body)
        except NotJsonError as exc:
            raise unparseable(str(exc)) from None
        except ValueError as exc:
            raise invalid(str(exc)) from None
        if len(raws) > settings.max_bulk_items:
            raise invalid(f"at most {settings.max_bulk_items} items per call")
        checked = list(check_items(raws))
    else:
        raise ProblemError(
            415,
            "unsupported-media-type",
            "send application/json (an array) or application/x-ndjson",
        )
    items = [entry for entry in checked if isinstance(entry, ItemFacts)]
    errors = [entry for entry in checked if isinstance(entry, RowError)]
    created = 0
    for start in range(0, len(items), _WRITE_CHUNK):
        chunk = items[start : start + _WRITE_CHUNK]
        created += sum(await store.put_items(chunk, reason="bulk"))
    return BulkResult(
        received=len(checked),
        stored=len(items),
        created=created,
        errors=[
            ItemError(index=e.index, line=e.line, sku=e.sku, message=e.message) for e in errors
        ],
    )
