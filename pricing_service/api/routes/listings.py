"""Competitor listings: which competitor page the crawlers fetch for a SKU, and how often.

The same validation as ``pricing listings import`` (:func:`crawlers.listings.parse_listing`):
the competitor must be declared in the rules, the URL must be on one of its domains and
the frequency at most once a minute. A new listing is due for a crawl at once, and so is one
whose URL changed; one whose frequency got shorter is due no later than that period from
now; otherwise replacing a listing keeps its due time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from crawlers.listings import (
    Listing,
    delete_listing,
    format_frequency,
    next_crawls,
    parse_listing,
    put_listing,
    sku_listings,
)
from pricing_service.api.deps import CrawlerSettingsDep, Reader, RulesDep, StoreDep, Writer
from pricing_service.api.problems import (
    FORBIDDEN,
    UNAUTHORIZED,
    UNAVAILABLE,
    invalid,
    not_found,
)
from pricing_service.catalogue import SKU_PATTERN
from pricing_service.rules.model import Competitor
from pricing_service.rules.watch import RulesState

router = APIRouter(tags=["listings"], responses={**UNAUTHORIZED, **UNAVAILABLE})

Sku = Annotated[str, Path(pattern=SKU_PATTERN, description="The item's SKU.")]
CompetitorId = Annotated[str, Path(max_length=64, description="A competitor id from the rules.")]


class ListingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="The competitor's product page, on one of its domains.")
    frequency: str = Field(
        description='How often to crawl it: "6h", "30m", "1d12h" (at most once a minute).',
        examples=["6h"],
    )


class ListingOut(BaseModel):
    sku: str
    competitor: str
    url: str
    frequency: str = Field(description='As written in listings: "6h", "1d12h".')
    every_seconds: int
    next_crawl_at: datetime | None = Field(
        default=None, description="When the scheduler next queues it; null when not scheduled."
    )

    @classmethod
    def of(cls, listing: Listing, next_crawl: float | None) -> ListingOut:
        return cls(
            sku=listing.sku,
            competitor=listing.competitor,
            url=listing.url,
            frequency=format_frequency(listing.frequency),
            every_seconds=listing.every_seconds,
            next_crawl_at=None if next_crawl is None else datetime.fromtimestamp(next_crawl, UTC),
        )


def _competitors(rules: RulesState) -> Mapping[str, Competitor]:
    """The competitors of the ruleset in force (none before a ruleset has loaded)."""
    return {} if rules.current is None else rules.current.compiled.ruleset.competitors


@router.put("/v1/listings/{sku}/{competitor}", responses={201: {"model": ListingOut}, **FORBIDDEN})
async def put_listing_route(
    sku: Sku,
    competitor: CompetitorId,
    body: ListingIn,
    _: Writer,
    store: StoreDep,
    rules: RulesDep,
    crawl: CrawlerSettingsDep,
    response: Response,
) -> ListingOut:
    """Create or replace the SKU's listing at a competitor (201 when it is new)."""
    values = {"sku": sku, "competitor": competitor, "url": body.url, "frequency": body.frequency}
    parsed = parse_listing(values, _competitors(rules))
    if isinstance(parsed, str):
        raise invalid(parsed)
    partitions = crawl.queue_partitions
    created = await put_listing(store.redis, parsed, partitions=partitions)
    response.status_code = 201 if created else 200
    [next_crawl] = await next_crawls(store.redis, [parsed], partitions=partitions)
    return ListingOut.of(parsed, next_crawl)


@router.get("/v1/items/{sku}/listings")
async def get_listings(
    sku: Sku, _: Reader, store: StoreDep, crawl: CrawlerSettingsDep
) -> list[ListingOut]:
    """The SKU's listings, by competitor (an empty list when it has none)."""
    listings = await sku_listings(store.redis, sku)
    due = await next_crawls(store.redis, listings, partitions=crawl.queue_partitions)
    return [ListingOut.of(listing, at) for listing, at in zip(listings, due, strict=True)]


@router.delete(
    "/v1/listings/{sku}/{competitor}",
    status_code=204,
    responses={**FORBIDDEN, 404: {"description": "No such listing."}},
)
async def delete_listing_route(
    sku: Sku, competitor: CompetitorId, _: Writer, store: StoreDep, crawl: CrawlerSettingsDep
) -> Response:
    """Stop crawling the SKU at a competitor; its recorded observations stay."""
    if not await delete_listing(store.redis, sku, competitor, partitions=crawl.queue_partitions):
        raise not_found("listing", f"no listing of {sku!r} at {competitor!r}")
    return Response(status_code=204)
