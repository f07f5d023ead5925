"""Listings: which competitor page to crawl for which SKU, and how often.

A listing lives in its SKU's ``listings`` hash (one field per competitor); its next due
time lives in the due set of its SKU's crawl queue partition, which the scheduler reads.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from redis.asyncio.cluster import RedisCluster

from crawlers import keys
from pricing_service.catalogue import utf8_problem
from pricing_service.rules.model import Competitor, Duration, format_duration

#: Crawling a page more often than this is neither polite nor useful for pricing.
#: The longest period a listing may have.
MAX_FREQUENCY = timedelta(days=90)
MIN_FREQUENCY = timedelta(minutes=1)
CSV_COLUMNS = ("sku", "competitor", "url", "frequency")


def _not_too_often(value: timedelta) -> timedelta:
    if value < MIN_FREQUENCY:
        raise ValueError(f"crawl at most once a minute, got every {value}")
    if value > MAX_FREQUENCY:
        # "1000d" is a typo, not a crawl plan: its first crawl would come in 2029.
        raise ValueError(
            f"crawl at least every {MAX_FREQUENCY.days} days, got every {format_duration(value)}"
        )
    return value


class Listing(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
    competitor: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_\-]*$")
    url: str = Field(pattern=r"^https?://[^\s/]+\S*$", max_length=2000)
    frequency: Annotated[Duration, AfterValidator(_not_too_often)]

    @property
    def every_seconds(self) -> int:
        return int(self.frequency.total_seconds())

    @property
    def host(self) -> str:
        return (urlsplit(self.url).hostname or "").lower()


def host_allowed(host: str, domains: Iterable[str]) -> bool:
    """Whether ``host`` is one of ``domains`` or a subdomain of one."""
    host = host.lower().rstrip(".")
    return any(host == domain or host.endswith("." + domain) for domain in domains)


def check_listing(listing: Listing, competitors: Mapping[str, Competitor]) -> str | None:
    """Why the listing cannot be crawled; None when it can."""
    competitor = competitors.get(listing.competitor)
    if competitor is None:
        known = ", ".join(sorted(competitors)) or "none"
        return f"unknown competitor {listing.competitor!r} (known: {known})"
    if not host_allowed(listing.host, competitor.domains):
        return f"{listing.host} is not among {listing.competitor}'s domains"
    return None


def parse_listing(
    values: Mapping[str, object], competitors: Mapping[str, Competitor]
) -> Listing | str:
    """A listing from its fields (sku, competitor, url, frequency), or why it is invalid.

    The one validation behind both ``pricing listings import`` and the listings API."""
    try:
        listing = Listing.model_validate({name: values.get(name) for name in CSV_COLUMNS})
    except ValidationError as exc:
        return _first_error(exc)
    problem = check_listing(listing, competitors)
    return listing if problem is None else problem


def format_frequency(frequency: timedelta) -> str:
    """A frequency the way listings are written: "6h", "1d12h", "90s"."""
    return format_duration(frequency)


async def put_listings(
    redis: aioredis.Redis,
    listings: Iterable[Listing],
    *,
    partitions: int = 1,
    now: float | None = None,
) -> int:
    """Store listings. A new one is due at once, and so is one whose URL changed (a
    corrected URL should not wait a period); one whose period got shorter is due no later
    than a new period from now; otherwise the due time stands.
    ``partitions``: the crawl queue's (``CrawlerSettings.queue_partitions``)."""
    return len(await _put(redis, listings, partitions, now))


async def put_listing(
    redis: aioredis.Redis, listing: Listing, *, partitions: int = 1, now: float | None = None
) -> bool:
    """Store one listing (due at once when new); True when it is new."""
    [created] = await _put(redis, [listing], partitions, now)
    return created


async def _put(
    redis: aioredis.Redis, listings: Iterable[Listing], partitions: int, now: float | None
) -> list[bool]:
    """Store listings in two pipelines (what is stored, then the writes); for each,
    whether it is new."""
    moment = time.time() if now is None else now
    listings = list(listings)
    async with redis.pipeline(transaction=False) as pipe:
        for listing in listings:
            pipe.hget(keys.listings(listing.sku), listing.competitor)
        before: list[bytes | None] = await pipe.execute()
    async with redis.pipeline(transaction=False) as pipe:
        for listing, old in zip(listings, before, strict=True):
            stored = ListingBody(url=listing.url, every_seconds=listing.every_seconds)
            pipe.hset(keys.listings(listing.sku), listing.competitor, stored.model_dump_json())
            due = keys.queue_of(listing.sku, partitions).due
            member = keys.due_member(listing.sku, listing.competitor)
            previous = None if old is None else ListingBody.model_validate_json(old)
            if previous is None or previous.url != listing.url:
                pipe.zadd(due, {member: moment})
            else:
                pipe.zadd(due, {member: moment + listing.every_seconds}, lt=True)
        await pipe.execute()
    return [old is None for old in before]


async def get_listing(redis: aioredis.Redis, sku: str, competitor: str) -> Listing | None:
    raw = await redis.hget(keys.listings(sku), competitor)
    if raw is None:
        return None
    return stored_listing(sku, competitor, raw)


async def sku_listings(redis: aioredis.Redis, sku: str) -> list[Listing]:
    """A SKU's listings, by competitor id."""
    raw = await redis.hgetall(keys.listings(sku))
    found = [
        stored_listing(sku, field.decode() if isinstance(field, bytes) else field, body)
        for field, body in raw.items()
    ]
    return sorted(found, key=lambda listing: listing.competitor)


async def next_crawls(
    redis: aioredis.Redis, listings: Iterable[Listing], *, partitions: int = 1
) -> list[float | None]:
    """When each listing's next crawl is due (epoch seconds); None when not scheduled."""
    async with redis.pipeline(transaction=False) as pipe:
        for listing in listings:
            member = keys.due_member(listing.sku, listing.competitor)
            pipe.zscore(keys.queue_of(listing.sku, partitions).due, member)
        scores: list[float | None] = await pipe.execute()
    return scores


def stored_listing(sku: str, competitor: str, raw: bytes | str) -> Listing:
    """A listing from its body in the SKU's hash (as ``get_listing`` reads it)."""
    stored = ListingBody.model_validate_json(raw)
    frequency = timedelta(seconds=stored.every_seconds)
    return Listing(sku=sku, competitor=competitor, url=stored.url, frequency=frequency)


class ListingBody(BaseModel):
    """A listing as stored in its SKU's hash: the SKU and competitor are in the key."""

    url: str
    every_seconds: int


async def delete_listing(
    redis: aioredis.Redis, sku: str, competitor: str, *, partitions: int = 1
) -> bool:
    # On a Redis Cluster the two keys live on different shards: no transaction there; a
    # due entry left behind alone is dropped by the scheduler when next due.
    async with redis.pipeline(transaction=not isinstance(redis, RedisCluster)) as pipe:
        queue = keys.queue_of(sku, partitions)
        pipe.hdel(keys.listings(sku), competitor)
        pipe.zrem(queue.due, keys.due_member(sku, competitor))
        pipe.hdel(queue.failures, keys.due_member(sku, competitor))
        removed, _, _ = await pipe.execute()
    return bool(removed)


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    message: str


def read_listings_csv(
    path: Path, competitors: Mapping[str, Competitor]
) -> Iterator[Listing | RowError]:
    """Each row of a listings CSV as a listing, or as an error with its line number; a
    file that is not UTF-8 text is one error, and no listing."""
    problem = utf8_problem(path)
    if problem is not None:
        yield RowError(*problem)
        return
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in CSV_COLUMNS if column not in (reader.fieldnames or [])]
        if missing:
            yield RowError(1, f"missing column(s): {', '.join(missing)}")
            return
        first_line: dict[tuple[str, str], int] = {}
        for row in reader:
            line = reader.line_num
            if row.get(None):  # cells past the header
                yield RowError(line, "more cells than the header has columns")
                continue
            parsed = parse_listing(row, competitors)
            if not isinstance(parsed, Listing):
                yield RowError(line, parsed)
                continue
            key = (parsed.sku, parsed.competitor)
            if key in first_line:  # the first one stands
                yield RowError(
                    line, f"{parsed.sku} at {parsed.competitor} is on line {first_line[key]} too"
                )
                continue
            first_line[key] = line
            yield parsed


def _first_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    field = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{field}: {message}" if field else message
