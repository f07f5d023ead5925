"""Price lookups, the price history and the decisions behind each price.

Lookups answer from the process's schedule cache. While it has lost touch with Redis
they still do, for ``stale_serve_seconds``, with ``stale: true`` in the body and the
``Pricing-Stale: true`` and ``Age`` (seconds since the cache was last in sync) headers;
then, and for anything not cached, they answer 503 with ``Retry-After``.
"""

from __future__ import annotations

import functools
import json
import re
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from pricing_service.api.deps import CacheDep, PublicReader, Reader, RulesDep, SettingsDep, StoreDep
from pricing_service.api.problems import (
    UNAUTHORIZED,
    UNAVAILABLE,
    ProblemError,
    invalid,
    not_found,
)
from pricing_service.catalogue import SKU_PATTERN
from pricing_service.engine.inputs import Segment
from pricing_service.metrics import LOOKUP_SEGMENTS_IGNORED, LOOKUPS
from pricing_service.store.store import AuditRecord, Schedule, Store, Window, parse_decision_id

router = APIRouter(tags=["prices"], responses={**UNAUTHORIZED, **UNAVAILABLE})

Sku = Annotated[str, Path(pattern=SKU_PATTERN, description="The item's SKU.")]
_SKU = re.compile(SKU_PATTERN)
_STREAM_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
#: Audit records read per Redis call when scanning the trail.
_AUDIT_PAGE = 500
STALE_HEADER = "Pricing-Stale"
#: Says what of a lookup's segment the ruleset does not declare, and so was ignored.
SEGMENT_WARNING_HEADER = "Pricing-Segment-Warning"
SEGMENT_HELP = (
    "The segment, as dimension:value pairs (channel:app,tier:member). What the ruleset's "
    "segments: does not declare (a dimension, or a value of one) is ignored, so a typo gets "
    f"the default price: the {SEGMENT_WARNING_HEADER} header then says what, and the "
    "response's segment which segment answered."
)


class Step(BaseModel):
    stage: str = Field(
        description="strategy, fallback, adjustment, exploration, loop_breaker, guardrail, "
        "rounding or override."
    )
    name: str = Field(
        description="What acted: the strategy or adjustment; for a guardrail step, the "
        "guardrail whose bound the price was moved to (step_limits: the step limits left "
        "no range and the current price was kept). The others that fired are in "
        "guardrails_fired and in the detail. Older audit records name every guardrail "
        "that fired, comma-separated."
    )
    input: str | None
    output: str | None = Field(
        description="The price after this step; for a guardrail step, the bound."
    )
    detail: str = Field(
        examples=[
            "raised to the map floor 41.99 (allowed range 41.99..no ceiling); "
            "also fired: min_margin"
        ]
    )


class InputUsed(BaseModel):
    name: str
    value: str
    source: str
    age_seconds: int | None


class DecisionOut(BaseModel):
    """A published decision with its full explanation."""

    # Fields the engine adds later still reach clients: the audit record is the truth.
    model_config = ConfigDict(extra="allow")

    decision_id: str
    sku: str
    segment: str
    currency: str
    ruleset_version: str
    price: str | None
    valid_from: datetime
    valid_until: datetime | None
    rule_id: str
    strategy: str
    held_by: str | None = None
    changed: bool = False
    guardrails_fired: list[str] = []
    steps: list[Step] = []
    inputs: list[InputUsed] = []
    warnings: list[str] = []


class PriceOut(BaseModel):
    """The price of one SKU and segment at one instant."""

    sku: str
    segment: str = Field(description="The segment whose price applies ('' is the default).")
    price: str = Field(examples=["19.99"])
    currency: str
    valid_from: datetime
    valid_until: datetime | None
    decision_id: str
    ruleset_version: str
    computed_at: datetime
    stale: bool = Field(
        description="Possibly out of date: the schedule ran out or the "
        "cache has lost touch with the store."
    )
    explanation: DecisionOut | None = None


class LookupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    skus: list[Annotated[str, Field(max_length=200)]] = Field(min_length=1)
    segment: str | None = Field(default=None, max_length=200, description=SEGMENT_HELP)


class LookupResult(BaseModel):
    sku: str
    found: bool
    price: PriceOut | None = None
    error: str | None = None


class LookupResponse(BaseModel):
    results: list[LookupResult]


class AuditRecordOut(BaseModel):
    record_id: str
    segment: str
    ruleset_version: str
    computed_at: datetime
    decisions: list[DecisionOut]


class HistoryPage(BaseModel):
    sku: str
    records: list[AuditRecordOut]
    next_cursor: str | None


class LowestPriceOut(BaseModel):
    """The lowest price in force during the period, e.g. for the EU Omnibus rule."""

    sku: str
    segment: str
    days: int
    since: datetime
    until: datetime
    price: str
    currency: str
    decision_id: str
    in_force_from: datetime
    in_force_until: datetime


def _epoch_datetime(epoch: int | None) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(epoch, tz=UTC)


def _parse_segment(text: str | None) -> Segment:
    try:
        return Segment.parse(text)
    except ValueError as exc:
        raise invalid(f"segment: {exc}") from None


def _window_in_force(schedule: Schedule, epoch: int) -> tuple[Window, bool] | None:
    """The window to answer with at ``epoch``, and whether it is out of date."""
    window = schedule.window_at(epoch)
    ran_out = False
    if window is None and schedule.windows and epoch >= schedule.windows[-1].valid_from:
        # The schedule ran out before the repricer extended it: the last price still
        # holds on the storefront, so say so rather than pretend there is none.
        window, ran_out = schedule.windows[-1], True
    if window is None or window.price is None:
        return None
    return window, ran_out


def _from_schedule(schedule: Schedule, epoch: int, *, stale: bool) -> PriceOut | None:
    found = _window_in_force(schedule, epoch)
    if found is None:
        return None
    window, ran_out = found
    valid_from = _epoch_datetime(window.valid_from)
    assert valid_from is not None
    # Built from a decoded schedule, so there is nothing to validate.
    return PriceOut.model_construct(
        sku=schedule.sku,
        segment=schedule.segment,
        price=str(window.price),
        currency=schedule.currency,
        valid_from=valid_from,
        valid_until=_epoch_datetime(window.valid_until),
        decision_id=schedule.decision_id(window),
        ruleset_version=schedule.ruleset_version,
        computed_at=datetime.fromtimestamp(schedule.computed_at / 1000, tz=UTC),
        stale=stale or ran_out,
    )


def _iso(moment: datetime) -> str:
    """As pydantic writes an aware UTC datetime in JSON."""
    return moment.isoformat().replace("+00:00", "Z")


@functools.lru_cache(maxsize=8192)
def _iso_seconds(epoch: int) -> str:
    return _iso(datetime.fromtimestamp(epoch, tz=UTC))


@functools.lru_cache(maxsize=8192)
def _iso_milliseconds(epoch_ms: int) -> str:
    return _iso(datetime.fromtimestamp(epoch_ms / 1000, tz=UTC))


@functools.lru_cache(maxsize=256)
def _json_string(text: str) -> str:
    return json.dumps(text)


def _price_json(schedule: Schedule, epoch: int, *, stale: bool) -> tuple[str, bool] | None:
    """What :func:`_from_schedule` serialises to, written directly as JSON text, and
    whether it is stale: a batch lookup answers a thousand of these, and models or
    ``json.dumps`` of dicts cost several times the lookup itself. Boundaries repeat
    across SKUs, so their text is memoised. SKUs, segments, currencies, prices and
    decision ids need no escaping (their patterns allow no quote or backslash); the
    free-form ruleset version is escaped."""
    found = _window_in_force(schedule, epoch)
    if found is None:
        return None
    window, ran_out = found
    stale = stale or ran_out
    until = "null" if window.valid_until is None else f'"{_iso_seconds(window.valid_until)}"'
    text = (
        f'{{"sku":"{schedule.sku}","segment":"{schedule.segment}","price":"{window.price}",'
        f'"currency":"{schedule.currency}","valid_from":"{_iso_seconds(window.valid_from)}",'
        f'"valid_until":{until},"decision_id":"{schedule.decision_id(window)}",'
        f'"ruleset_version":{_json_string(schedule.ruleset_version)},'
        f'"computed_at":"{_iso_milliseconds(schedule.computed_at)}",'
        f'"stale":{"true" if stale else "false"},"explanation":null}}'
    )
    return text, stale


def _decision_window(decision: dict[str, Any]) -> tuple[datetime, datetime | None]:
    until = decision.get("valid_until")
    return (
        datetime.fromisoformat(decision["valid_from"]),
        None if until is None else datetime.fromisoformat(until),
    )


def _from_record(record: AuditRecord, index: int) -> PriceOut | None:
    decision = record.decisions[index]
    if decision.get("price") is None:
        return None
    valid_from, valid_until = _decision_window(decision)
    return PriceOut(
        sku=record.sku,
        segment=record.segment,
        price=decision["price"],
        currency=decision["currency"],
        valid_from=valid_from,
        valid_until=valid_until,
        decision_id=record.decision_id(index),
        ruleset_version=record.ruleset_version,
        computed_at=datetime.fromtimestamp(record.computed_at / 1000, tz=UTC),
        stale=False,
    )


async def _segment_records(
    store: Store, sku: str, segment: str, until: datetime
) -> AsyncIterator[AuditRecord]:
    """The segment's audit records published up to ``until``, newest first."""
    cursor = None
    while True:
        page, cursor = await store.history(sku, until=until, limit=_AUDIT_PAGE, cursor=cursor)
        for record in page:
            if record.segment == segment:
                yield record
        if cursor is None:
            return


async def _records_in_force(
    store: Store, sku: str, segment: str, since: datetime, until: datetime
) -> list[AuditRecord]:
    """The segment's audit records published up to ``until``, newest first, down to the
    one in force at ``since``: records published before the period still set prices in it."""
    records: list[AuditRecord] = []
    async for record in _segment_records(store, sku, segment, until):
        records.append(record)
        if record.computed_at <= since.timestamp() * 1000:
            break
    return records


async def _price_from_history(
    store: Store, sku: str, segment: str, at: datetime
) -> PriceOut | None:
    """The window in force at ``at`` from the newest record published by then."""
    async for record in _segment_records(store, sku, segment, at):
        for index, decision in enumerate(record.decisions):
            valid_from, valid_until = _decision_window(decision)
            if valid_from <= at and (valid_until is None or at < valid_until):
                return _from_record(record, index)
    return None


async def _explanation(store: Store, decision_id: str) -> DecisionOut | None:
    parsed = parse_decision_id(decision_id)
    if parsed is None:
        return None
    sku, stream_id, index = parsed
    if not _SKU.match(sku) or not _STREAM_ID.match(stream_id):
        return None
    record = await store.get_audit(sku, stream_id)
    if record is None or index >= len(record.decisions):
        return None
    return DecisionOut.model_validate(record.decisions[index])


def _warn_undeclared(response: Response, undeclared: list[str]) -> None:
    # Ignored, not refused: a storefront sending a value the rules have not declared yet
    # (or no longer do) still gets a price, and whoever reads the headers learns why it
    # is the default one.
    if undeclared:
        LOOKUP_SEGMENTS_IGNORED.inc()
        # Each message has semicolons of its own.
        response.headers[SEGMENT_WARNING_HEADER] = " | ".join(undeclared)


def _mark_stale(response: Response, stale_seconds: float) -> None:
    response.headers[STALE_HEADER] = "true"
    response.headers["Age"] = str(int(stale_seconds))


def _lookup_result(price: PriceOut | None, *, from_cache: bool) -> str:
    if price is None:
        return "not_found"
    if price.stale:
        return "stale"
    return "hit" if from_cache else "miss"


def _count_lookup(price: PriceOut | None, *, from_cache: bool) -> None:
    LOOKUPS.labels(result=_lookup_result(price, from_cache=from_cache)).inc()


@router.get(
    "/v1/prices/{sku}",
    response_model_exclude_unset=True,
    responses={404: {"description": "No price for the SKU (at that instant)."}},
)
async def get_price(
    sku: Sku,
    principal: PublicReader,
    store: StoreDep,
    cache: CacheDep,
    rules: RulesDep,
    response: Response,
    segment: Annotated[
        str | None, Query(max_length=200, examples=["channel:app"], description=SEGMENT_HELP)
    ] = None,
    at: Annotated[datetime | None, Query(description="ISO 8601 instant; default now.")] = None,
    explain: bool = False,
) -> PriceOut:
    """The price of a SKU for a segment, now or at an instant, optionally explained."""
    if at is not None and at.tzinfo is None:
        raise invalid("at: give a timezone, e.g. 2026-11-27T00:00:00Z")
    if explain and principal.scope is None:
        raise ProblemError(
            401,
            "unauthorized",
            "explanations need an API key with the read scope",
            headers={"WWW-Authenticate": 'Bearer realm="pricing"'},
        )
    asked = _parse_segment(segment)
    stored_segment = str(rules.canonical(asked))
    _warn_undeclared(response, rules.undeclared(asked))
    moment = at or datetime.now(UTC)
    stale_seconds = cache.stale_seconds()
    schedule, from_cache = await cache.get(sku, stored_segment)
    stale = from_cache and stale_seconds is not None
    result = None
    if schedule is not None:
        result = _from_schedule(schedule, int(moment.timestamp()), stale=stale)
    if result is None and at is not None:
        cache.check_store_reachable()
        from_cache = stale = False
        result = await _price_from_history(store, sku, stored_segment, at)
    _count_lookup(result, from_cache=from_cache)
    if result is None:
        when = f" at {at.isoformat()}" if at is not None else ""
        raise not_found("price", f"no price for SKU {sku!r}{when}")
    if explain:
        cache.check_store_reachable()
        result.explanation = await _explanation(store, result.decision_id)
    if stale and stale_seconds is not None:
        _mark_stale(response, stale_seconds)
    return result


@router.post("/v1/prices/lookup", response_model=LookupResponse)
async def lookup_prices(
    body: LookupRequest,
    _: PublicReader,
    cache: CacheDep,
    rules: RulesDep,
    settings: SettingsDep,
) -> Response:
    """Current prices of many SKUs at once; unknown SKUs are reported one by one.

    While the store is unreachable, the cached SKUs are answered (stale) and the others
    reported one by one; a 503 when none is cached."""
    if len(body.skus) > settings.max_lookup_skus:
        raise invalid(f"skus: at most {settings.max_lookup_skus} SKUs per lookup")
    asked = _parse_segment(body.segment)
    stored_segment = str(rules.canonical(asked))
    undeclared = rules.undeclared(asked)
    valid = [sku for sku in dict.fromkeys(body.skus) if _SKU.match(sku)]
    stale_seconds = cache.stale_seconds()
    read = await cache.get_many([(sku, stored_segment) for sku in valid], partial=True)
    schedules = dict(zip(valid, read, strict=True))
    now = int(datetime.now(UTC).timestamp())
    results: list[str] = []
    any_stale = False
    outcomes: Counter[str] = Counter()  # one metric update per outcome, not per SKU
    for sku in body.skus:
        if sku not in schedules:
            results.append(_missing(sku, "not a valid SKU"))
            continue
        entry = schedules[sku]
        if entry is None:
            outcomes["unavailable"] += 1
            results.append(_missing(sku, "not cached, and the price store is unreachable: retry"))
            continue
        schedule, from_cache = entry
        price = None
        stale = from_cache and stale_seconds is not None
        any_stale = any_stale or stale
        if schedule is not None:
            price = _price_json(schedule, now, stale=stale)
        if price is None:
            outcomes["not_found"] += 1
            results.append(_missing(sku, "no price for this SKU"))
        else:
            text, price_stale = price
            outcomes["stale" if price_stale else "hit" if from_cache else "miss"] += 1
            results.append(f'{{"sku":"{sku}","found":true,"price":{text},"error":null}}')
    for outcome, count in outcomes.items():
        LOOKUPS.labels(result=outcome).inc(count)
    # JSON text, built once: the response has the LookupResponse shape (a test holds it
    # to the single lookup's), without a thousand models validated and serialised.
    reply = Response(
        ('{"results":[' + ",".join(results) + "]}").encode(), media_type="application/json"
    )
    if any_stale and stale_seconds is not None:
        _mark_stale(reply, stale_seconds)
    _warn_undeclared(reply, undeclared)
    return reply


def _missing(sku: str, error: str) -> str:
    # Not a valid SKU may hold any character: escaped.
    return json.dumps({"sku": sku, "found": False, "price": None, "error": error})


def _record_out(record: AuditRecord) -> AuditRecordOut:
    return AuditRecordOut(
        record_id=record.stream_id,
        segment=record.segment,
        ruleset_version=record.ruleset_version,
        computed_at=datetime.fromtimestamp(record.computed_at / 1000, tz=UTC),
        decisions=[DecisionOut.model_validate(decision) for decision in record.decisions],
    )


@router.get("/v1/prices/{sku}/history", responses={404: {"description": "No such item."}})
async def price_history(
    sku: Sku,
    _: Reader,
    store: StoreDep,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=45)] = None,
) -> HistoryPage:
    """The audit trail of a SKU's published prices, newest first, paginated."""
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and moment.tzinfo is None:
            raise invalid(f"{name}: give a timezone, e.g. 2026-11-27T00:00:00Z")
    if cursor is not None and not _STREAM_ID.match(cursor):
        raise invalid("cursor: use the next_cursor of a previous page")
    records, next_cursor = await store.history(
        sku, since=since, until=until, limit=limit, cursor=cursor
    )
    if not records and cursor is None and await store.get_item(sku) is None:
        raise not_found("item", f"no item and no price history for SKU {sku!r}")
    return HistoryPage(
        sku=sku, records=[_record_out(record) for record in records], next_cursor=next_cursor
    )


@router.get("/v1/prices/{sku}/lowest", responses={404: {"description": "No price in force."}})
async def lowest_price(
    sku: Sku,
    _: PublicReader,
    store: StoreDep,
    rules: RulesDep,
    settings: SettingsDep,
    days: Annotated[int, Query(ge=1)] = 30,
    segment: Annotated[str | None, Query(max_length=200)] = None,
) -> LowestPriceOut:
    """The lowest price in force during the prior N days and the decision that set it."""
    if days > settings.retention_days:
        raise invalid(f"days: the audit trail keeps {settings.retention_days} days")
    stored_segment = str(rules.canonical(_parse_segment(segment)))
    until = datetime.now(UTC)
    since = until - timedelta(days=days)
    records = await _records_in_force(store, sku, stored_segment, since, until)
    lowest = _lowest_in_force(records, since, until)
    if lowest is None:
        raise not_found("price", f"no price in force for SKU {sku!r} in the last {days} days")
    record, index, start, end = lowest
    decision = record.decisions[index]
    return LowestPriceOut(
        sku=sku,
        segment=stored_segment,
        days=days,
        since=since,
        until=until,
        price=decision["price"],
        currency=decision["currency"],
        decision_id=record.decision_id(index),
        in_force_from=start,
        in_force_until=end,
    )


def _lowest_in_force(
    newest_first: list[AuditRecord], since: datetime, until: datetime
) -> tuple[AuditRecord, int, datetime, datetime] | None:
    """Each record rules from its publication until the next one's; within that span its
    windows say which price was in force. The lowest of those in [since, until]; on a tie,
    the one from the newest record."""
    best: tuple[AuditRecord, int, datetime, datetime] | None = None
    best_price: Decimal | None = None
    superseded_at = until
    for record in newest_first:
        published = datetime.fromtimestamp(record.computed_at / 1000, tz=UTC)
        span_start, span_end = max(published, since), superseded_at
        superseded_at = published
        if span_start >= span_end:
            if published <= since:
                break
            continue
        for index, decision in enumerate(record.decisions):
            if decision.get("price") is None:
                continue
            valid_from, valid_until = _decision_window(decision)
            start = max(valid_from, span_start)
            end = span_end if valid_until is None else min(valid_until, span_end)
            price = Decimal(decision["price"])
            if start < end and (best_price is None or price < best_price):
                best, best_price = (record, index, start, end), price
        if published <= since:
            break
    return best


@router.get("/v1/decisions/{decision_id}", responses={404: {"description": "No such decision."}})
async def get_decision(
    decision_id: Annotated[str, Path(max_length=200)], _: Reader, store: StoreDep
) -> DecisionOut:
    """A published decision with its full explanation."""
    decision = await _explanation(store, decision_id)
    if decision is None:
        raise not_found("decision", f"no decision {decision_id!r}")
    return decision
