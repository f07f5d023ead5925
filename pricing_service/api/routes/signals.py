"""Signals that move prices: sales and competitor observations."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, ValidationError

from pricing_service.api.deps import (
    CrawlerSettingsDep,
    Reader,
    RulesDep,
    SettingsDep,
    StoreDep,
    Writer,
)
from pricing_service.api.problems import (
    FORBIDDEN,
    UNAUTHORIZED,
    UNAVAILABLE,
    invalid,
    not_found,
)
from pricing_service.catalogue import (
    SKU_PATTERN,
    ExactMoney,
    describe_validation_error,
    is_exact_in,
)
from pricing_service.demand.buckets import bucket_start, decode_buckets
from pricing_service.engine.inputs import AwareDatetime, CompetitorObservation, ItemFacts
from pricing_service.money import from_minor
from pricing_service.observations import (
    HISTORY_SCAN,
    MAX_CLOCK_SKEW,
    build_market,
    gate_in_market,
)
from pricing_service.store.offers import OfferStatus, history_entry_as_read
from pricing_service.store.store import InvalidStoredItemError, Sale, demand_from_sales

router = APIRouter(tags=["signals"], responses={**UNAUTHORIZED, **UNAVAILABLE})

Sku = Annotated[str, Path(pattern=SKU_PATTERN, description="The item's SKU.")]
SkuField = Annotated[str, Field(pattern=SKU_PATTERN)]
Resolution = Literal["day", "hour"]


class SaleIn(BaseModel):
    """Units sold at a unit price (negative quantities are returns)."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="The event's id: an event sent again with the same id (for the same "
        "SKU and a ts in the same 7-day period, as a resend has) is counted once. Events "
        "without one cannot be told from a resend.",
    )
    sku: SkuField
    quantity: int = Field(ge=-1_000_000, le=1_000_000)
    unit_price: ExactMoney
    ts: AwareDatetime


class ObservationIn(BaseModel):
    """A competitor's offer for one of our SKUs, as seen at ``observed_at``."""

    model_config = ConfigDict(extra="forbid")

    sku: SkuField
    competitor: str = Field(min_length=1, max_length=100)
    price: ExactMoney  # zero reaches the market gate, which rejects that one entry
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    shipping: ExactMoney | None = None
    in_stock: bool = True
    observed_at: AwareDatetime
    url: AnyHttpUrl | None = Field(default=None, description="Where it was seen.")


class Rejection(BaseModel):
    index: int
    sku: str
    message: str


class SalesResult(BaseModel):
    accepted: int = Field(description="Events counted now.")
    duplicates: list[int] = Field(
        default_factory=list, description="Indexes of events whose id was already counted."
    )
    rejected: list[Rejection]


class ObservationVerdict(BaseModel):
    index: int
    sku: str
    competitor: str
    status: str = Field(description="accepted, quarantined, or rejected (not stored).")
    reason: str | None = None


class ObservationsResult(BaseModel):
    accepted: int
    quarantined: int
    rejected: int
    results: list[ObservationVerdict]


class _Seen(BaseModel):
    """What an observation says, and the quality gate's verdict on it."""

    competitor: str
    price: Decimal
    currency: str
    shipping: Decimal | None
    in_stock: bool
    observed_at: datetime
    status: str = Field(description="accepted, or quarantined (pricing kept the earlier one).")
    reason: str | None
    received_at: datetime

    @classmethod
    def fields_of(cls, offer: OfferStatus) -> dict[str, Any]:
        observation = offer.observation
        return {
            "competitor": observation.competitor,
            "price": observation.price,
            "currency": observation.currency,
            "shipping": observation.shipping,
            "in_stock": observation.in_stock,
            "observed_at": observation.observed_at,
            "status": offer.status,
            "reason": offer.reason,
            "received_at": offer.received_at,
        }


class CompetitorOffer(_Seen):
    age_seconds: int
    last_accepted_price: Decimal | None = Field(
        default=None,
        description="For a quarantined observation: the competitor's last accepted price, "
        "which pricing goes on using until a later observation is accepted.",
    )
    last_accepted_observed_at: datetime | None = None


class CompetitorsOut(BaseModel):
    sku: str
    offers: list[CompetitorOffer]


class ObservationOut(_Seen):
    """One observation as received, with the quality gate's verdict on it."""

    observation_id: str = Field(description="Its offer-history entry id; pages continue after it.")
    source: str = Field(description="crawler, or feed (POST /v1/observations).")


class ObservationHistoryPage(BaseModel):
    sku: str
    observations: list[ObservationOut] = Field(description="Newest first.")
    next_cursor: str | None = Field(
        description="Pass as cursor for the next page; null when there is no more."
    )


class SalesBucketOut(BaseModel):
    start: datetime = Field(description="The bucket's first instant (UTC).")
    units: int = Field(description="Units sold, net of returns.")
    currency: str | None = Field(
        description="The currency of revenue and average_price: the item's when the sales "
        "were recorded. Null when the bucket holds revenue in two currencies (the item's "
        "currency changed within it): then revenue and average_price are null too."
    )
    revenue: Decimal | None = Field(description="Revenue, net of returns.")
    average_price: Decimal | None = Field(
        description="Revenue per unit sold, rounded half up to the currency's minor unit; "
        "null without net units sold."
    )
    inventory: int | None = Field(description="The inventory level last reported in it.")


class DemandOut(BaseModel):
    """Money as exact decimal strings; the signals are statistics, plain JSON numbers."""

    sku: str
    currency: str
    as_of: datetime
    velocity_7d: float | None = Field(description="Units a day over the last 7 days.")
    velocity_28d: float | None = Field(description="Units a day over the last 28 days.")
    velocity_ratio: float | None = Field(description="velocity_7d over velocity_28d.")
    days_of_supply: float | None = Field(
        description="Inventory over the forecast daily demand; null if either is unknown."
    )
    sell_through: float | None = Field(
        description="Units sold in 28 days over those units plus the inventory on hand."
    )
    resolution: Resolution
    buckets: list[SalesBucketOut] = Field(
        description="Oldest first; buckets with no sale and no inventory report are left out."
    )


def _items_by_sku(
    store_items: list[ItemFacts | InvalidStoredItemError | None], skus: list[str]
) -> tuple[dict[str, ItemFacts], dict[str, str]]:
    """The items found, and for each stored item that does not validate, why a batch's
    entries for it are rejected (one by one: the others' are stored)."""
    items, broken = {}, {}
    for sku, item in zip(skus, store_items, strict=True):
        if isinstance(item, InvalidStoredItemError):
            broken[sku] = f"{item}: PUT /v1/items/{sku} to replace it"
        elif item is not None:
            items[sku] = item
    return items, broken


@router.post("/v1/sales", responses=FORBIDDEN)
async def post_sales(
    body: list[SaleIn], _: Writer, store: StoreDep, settings: SettingsDep
) -> SalesResult:
    """Record a batch of sales events into hourly and daily buckets; unknown SKUs are
    rejected one by one. The batch is stored whole or not at all. An event whose id was
    counted before (in this batch or an earlier one) is listed in ``duplicates`` and not
    counted again; a late event lands in its own hour and day, unless it is older than
    the retention."""
    if len(body) > settings.max_batch_events:
        raise invalid(f"at most {settings.max_batch_events} events per call")
    skus = list(dict.fromkeys(sale.sku for sale in body))
    items, broken = _items_by_sku(await store.get_items(skus), skus)
    now = datetime.now(UTC)
    oldest = now - timedelta(days=settings.retention_days)
    rejected: list[Rejection] = []
    by_sku: dict[str, list[Sale]] = defaultdict(list)
    indexes: dict[str, list[int]] = defaultdict(list)
    for index, sale in enumerate(body):
        item = items.get(sale.sku)
        if item is None:
            message = broken.get(sale.sku, "unknown SKU")
        elif sale.quantity == 0:  # counted, it would be a sale that sold nothing
            message = "quantity is 0: no units sold or returned"
        elif sale.ts > now + MAX_CLOCK_SKEW:
            message = "ts is in the future"
        elif sale.ts < oldest:
            message = f"ts is older than the retention ({settings.retention_days} days)"
        elif not is_exact_in(sale.unit_price, item.currency):
            message = f"unit_price has more decimals than {item.currency} allows"
        else:
            by_sku[sale.sku].append(Sale(sale.ts, sale.quantity, sale.unit_price, sale.id))
            indexes[sale.sku].append(index)
            continue
        rejected.append(Rejection(index=index, sku=sale.sku, message=message))
    skipped = await store.record_sales(
        {sku: (items[sku].currency, sales) for sku, sales in by_sku.items()}, reason="sales"
    )
    duplicates = sorted(
        indexes[sku][position] for sku, positions in skipped.items() for position in positions
    )
    return SalesResult(
        accepted=sum(map(len, by_sku.values())) - len(duplicates),
        duplicates=duplicates,
        rejected=rejected,
    )


@router.post("/v1/observations", responses=FORBIDDEN)
async def post_observations(
    body: list[ObservationIn],
    _: Writer,
    store: StoreDep,
    settings: SettingsDep,
    rules: RulesDep,
    gate: CrawlerSettingsDep,
) -> ObservationsResult:
    """Take a batch of competitor observations through the same gate as crawler results."""
    if len(body) > settings.max_batch_events:
        raise invalid(f"at most {settings.max_batch_events} observations per call")
    skus = list(dict.fromkeys(entry.sku for entry in body))
    items, broken = _items_by_sku(await store.get_items(skus), skus)
    markets = await store.market_reads(list(items), HISTORY_SCAN)
    loaded = rules.current
    competitors = dict(loaded.compiled.ruleset.competitors) if loaded is not None else {}
    now = datetime.now(UTC)
    verdicts: list[ObservationVerdict] = []
    offers: dict[str, list[OfferStatus]] = defaultdict(list)
    for index, entry in enumerate(body):
        item = items.get(entry.sku)
        verdict = ObservationVerdict(
            index=index, sku=entry.sku, competitor=entry.competitor, status="rejected"
        )
        verdicts.append(verdict)
        if item is None:
            verdict.reason = broken.get(entry.sku, "unknown SKU")
            continue
        try:
            observation = CompetitorObservation(
                competitor=entry.competitor,
                price=entry.price,
                currency=entry.currency,
                observed_at=entry.observed_at,
                shipping=entry.shipping,
                in_stock=entry.in_stock,
                source="feed",
            )
        except ValidationError as exc:
            verdict.reason = describe_validation_error(exc)
            continue
        raw_offers, history = markets[entry.sku]
        market = build_market(
            raw_offers, history, item, entry.competitor, competitors, now, gate.fx_rates
        )
        known = competitors.get(entry.competitor)
        offer = gate_in_market(
            observation,
            item,
            now,
            market,
            own_store=known is not None and known.ours,
            fx_rates=gate.fx_rates,
            outlier_ratio=gate.outlier_ratio,
        ).offer
        verdict.status, verdict.reason = offer.status, offer.reason
        offers[entry.sku].append(offer)
        # A later observation in the same batch is judged against this one.
        stored = offer.model_dump_json().encode()
        raw_offers[entry.competitor.encode()] = stored
        history.insert(0, (b"0-0", history_entry_as_read(offer)))
    await store.record_offers(offers, reason="observation")
    counts: dict[str, int] = defaultdict(int)
    for verdict in verdicts:
        counts[verdict.status] += 1
    return ObservationsResult(
        accepted=counts["accepted"],
        quarantined=counts["quarantined"],
        rejected=counts["rejected"],
        results=verdicts,
    )


@router.get("/v1/items/{sku}/competitors", responses={404: {"description": "No such item."}})
async def get_competitors(sku: Sku, _: Reader, store: StoreDep) -> CompetitorsOut:
    """The latest observation of each competitor, with its age and gate status."""
    if await store.get_item(sku) is None:
        raise not_found("item", f"no item {sku!r}")
    now = datetime.now(UTC)
    return CompetitorsOut(
        sku=sku,
        offers=[
            CompetitorOffer(
                **CompetitorOffer.fields_of(offer),
                age_seconds=max(0, int((now - offer.observation.observed_at).total_seconds())),
                last_accepted_price=offer.last_accepted.price if offer.last_accepted else None,
                last_accepted_observed_at=(
                    offer.last_accepted.observed_at if offer.last_accepted else None
                ),
            )
            for offer in await store.get_offers(sku)
        ],
    )


@router.get(
    "/v1/items/{sku}/competitors/history", responses={404: {"description": "No such item."}}
)
async def get_competitor_history(
    sku: Sku,
    _: Reader,
    store: StoreDep,
    competitor: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
    since: Annotated[datetime | None, Query(description="Received at or after.")] = None,
    until: Annotated[datetime | None, Query(description="Received at or before.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(pattern=r"^\d{1,20}-\d{1,20}$")] = None,
) -> ObservationHistoryPage:
    """Every competitor observation received for the item over the retention, newest
    first, paginated: accepted and quarantined alike."""
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and moment.tzinfo is None:
            raise invalid(f"{name}: give a timezone, e.g. 2026-11-27T00:00:00Z")
    if cursor is not None and any(int(part) >= 2**64 for part in cursor.split("-")):
        raise invalid("cursor: use the next_cursor of a previous page")
    found, next_cursor = await store.offer_history(
        sku, competitor=competitor, since=since, until=until, limit=limit, cursor=cursor
    )
    if not found and cursor is None and await store.get_item(sku) is None:
        raise not_found("item", f"no item {sku!r}")
    return ObservationHistoryPage(
        sku=sku,
        observations=[
            ObservationOut(
                **ObservationOut.fields_of(offer),
                observation_id=entry_id,
                source=offer.observation.source,
            )
            for entry_id, offer in found
        ],
        next_cursor=next_cursor,
    )


@router.get("/v1/items/{sku}/demand", responses={404: {"description": "No such item."}})
async def get_demand(
    sku: Sku,
    _: Reader,
    store: StoreDep,
    resolution: Annotated[
        Resolution, Query(description="Day buckets (the retention) or hour buckets (7 days).")
    ] = "day",
) -> DemandOut:
    """The item's demand signals as the rules read them now, and its sales buckets."""
    item = await store.get_item(sku)
    if item is None:
        raise not_found("item", f"no item {sku!r}")
    now = datetime.now(UTC)
    days = (await store.sales_buckets([sku]))[0]
    stats = demand_from_sales(days, now, item.inventory)
    raw = days if resolution == "day" else await store.hourly_buckets(sku)
    buckets = []
    for name, bucket in sorted(decode_buckets(raw, item.currency).items()):
        start = bucket_start(name)
        if start is None:
            continue
        currency = bucket.currency
        average = bucket.average_price_minor
        buckets.append(
            SalesBucketOut(
                start=start,
                units=bucket.units,
                currency=currency,
                revenue=None if currency is None else from_minor(bucket.revenue_minor, currency),
                average_price=(
                    None if currency is None or average is None else from_minor(average, currency)
                ),
                inventory=bucket.inventory,
            )
        )
    return DemandOut(
        sku=sku,
        currency=item.currency,
        as_of=now,
        velocity_7d=None if stats is None else stats.velocity_7d,
        velocity_28d=None if stats is None else stats.velocity_28d,
        velocity_ratio=None if stats is None else stats.velocity_ratio,
        days_of_supply=None if stats is None else stats.days_of_supply,
        sell_through=None if stats is None else stats.sell_through,
        resolution=resolution,
        buckets=buckets,
    )
