"""Listings: which competitor page to crawl for which SKU, and how often.

A listing lives in its SKU's ``listings`` hash (one field per competitor); its next due
time lives in the due set of its SKU's crawl queue partition, which the scheduler reads;
its period in its competitor's periods index, which the scheduler exports a median of.
"""

from __future__ import annotations

import csv
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from redis.asyncio.cluster import RedisCluster

from crawlers import keys
from pricing_service.catalogue import utf8_problem
from pricing_service.rules.model import Competitor, Duration, format_duration

#: Crawling a page more often than this is neither polite nor useful for pricing.
MIN_FREQUENCY = timedelta(minutes=1)
#: The longest period a listing may have.
MAX_FREQUENCY = timedelta(days=90)
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


SkuField = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")
]
CompetitorField = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_\-]*$")
]


class ListingRef(BaseModel):
    """Which listing: a SKU at a competitor."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: SkuField
    competitor: CompetitorField


class Listing(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sku: SkuField
    competitor: CompetitorField
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
            periods = keys.competitor_periods(listing.competitor)
            pipe.zadd(periods, {listing.sku: listing.every_seconds})
            pipe.hsetnx(keys.LISTED_COMPETITORS, listing.competitor, moment)
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


#: Forgets a listing in its queue partition: its due time, its failures in a row and its
#: in-flight mark (a job already queued for it ends ``unknown_listing``).
#: KEYS: due set, failures hash, in-flight hash. ARGV: due member.
_UNQUEUE_FUNCTION = """
local function unqueue(KEYS, ARGV)
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('HDEL', KEYS[3], ARGV[1])
end
"""
_UNQUEUE = _UNQUEUE_FUNCTION + "unqueue(KEYS, ARGV)"
#: The whole deletion in one script, for one Redis.
#: KEYS: listings hash, competitor periods, then ``_UNQUEUE``'s.
#: ARGV: competitor, SKU, due member. Returns 1 when the listing was there.
_DELETE = (
    _UNQUEUE_FUNCTION
    + """
local removed = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[2])
if redis.call('ZCARD', KEYS[2]) == 0 then
    redis.call('HDEL', KEYS[6], ARGV[1])
end
unqueue({KEYS[3], KEYS[4], KEYS[5]}, {ARGV[3]})
return removed
"""
)


class ListingDeleter:
    """Deletes listings: on one Redis each in one script; on a Redis Cluster, where the
    listing, its competitor's periods and its queue partition are on different shards,
    the listing first (the scheduler then queues it no more), then the rest, each step
    atomic. Every step runs even when the listing is gone already, so deleting again
    finishes a deletion cut short."""

    def __init__(self, redis: aioredis.Redis, partitions: int) -> None:
        self._redis = redis
        self._partitions = partitions
        self._cluster = isinstance(redis, RedisCluster)
        self._delete = redis.register_script(_DELETE)
        self._unqueue = redis.register_script(_UNQUEUE)

    async def delete(self, sku: str, competitor: str) -> bool:
        """Delete the listing; True when it was there."""
        queue = keys.queue_of(sku, self._partitions)
        queue_keys = [queue.due, queue.failures, queue.in_flight]
        member = keys.due_member(sku, competitor)
        listing_key, periods = keys.listings(sku), keys.competitor_periods(competitor)
        if not self._cluster:
            removed = await self._delete(
                keys=[listing_key, periods, *queue_keys, keys.LISTED_COMPETITORS],
                args=[competitor, sku, member],
            )
            return bool(removed)
        removed = await self._redis.hdel(listing_key, competitor)
        await self._unqueue(keys=queue_keys, args=[member])
        await self._redis.zrem(periods, sku)
        if not await self._redis.zcard(periods):
            # Another shard, so not atomic: a listing stored in between leaves the
            # competitor unlisted until another of its listings is stored.
            await self._redis.hdel(keys.LISTED_COMPETITORS, competitor)
        return bool(removed)


async def delete_listing(
    redis: aioredis.Redis, sku: str, competitor: str, *, partitions: int = 1
) -> bool:
    """Delete one listing (see :class:`ListingDeleter`); True when it was there."""
    return await ListingDeleter(redis, partitions).delete(sku, competitor)


async def listed(redis: aioredis.Redis, pairs: Iterable[tuple[str, str]]) -> list[bool]:
    """Whether each (SKU, competitor) has a listing."""
    async with redis.pipeline(transaction=False) as pipe:
        for sku, competitor in pairs:
            pipe.hexists(keys.listings(sku), competitor)
        found: list[bool] = await pipe.execute()
    return [bool(one) for one in found]


@dataclass(frozen=True, slots=True)
class Scheduled:
    """A stored listing and when its next crawl is due (epoch seconds; None if never)."""

    listing: Listing
    next_due: float | None


async def scan_listings(
    redis: aioredis.Redis,
    *,
    partitions: int = 1,
    competitors: Iterable[str] = (),
    batch: int = 1000,
) -> AsyncIterator[list[Scheduled]]:
    """Every scheduled listing (of ``competitors``, when given), a batch at a time, in no
    particular order: from the due sets (ZSCAN), so memory stays bounded however many
    there are. A due time whose listing is gone is left out; a listing may come twice
    while Redis rehashes a due set (SCAN's guarantee)."""
    wanted = frozenset(competitors)
    for queue in keys.queues(partitions):
        cursor = 0
        while True:
            reply: Any = await redis.zscan(queue.due, cursor, count=batch)
            cursor, entries = reply
            due = [(*keys.parse_due_member(raw.decode()), float(score)) for raw, score in entries]
            due = [entry for entry in due if not wanted or entry[1] in wanted]
            if due:
                async with redis.pipeline(transaction=False) as pipe:
                    for sku, competitor, _ in due:
                        pipe.hget(keys.listings(sku), competitor)
                    bodies: list[bytes | None] = await pipe.execute()
                found = [
                    Scheduled(stored_listing(sku, competitor, body), at)
                    for (sku, competitor, at), body in zip(due, bodies, strict=True)
                    if body is not None
                ]
                if found:
                    yield found
            if cursor == 0:
                break


async def skus_listings(
    redis: aioredis.Redis,
    skus: Iterable[str],
    *,
    partitions: int = 1,
    competitors: Iterable[str] = (),
) -> list[Scheduled]:
    """The listings of ``skus`` (at ``competitors``, when given), by SKU and competitor."""
    wanted = frozenset(competitors)
    found = [
        listing
        for sku in sorted(set(skus))
        for listing in await sku_listings(redis, sku)
        if not wanted or listing.competitor in wanted
    ]
    due = await next_crawls(redis, found, partitions=partitions)
    return [Scheduled(listing, at) for listing, at in zip(found, due, strict=True)]


@dataclass(frozen=True, slots=True)
class RowError:
    line: int
    message: str


def read_listings_csv(
    path: Path, competitors: Mapping[str, Competitor]
) -> Iterator[Listing | RowError]:
    """Each row of a listings CSV as a listing, or as an error with its line number; a
    file that is not UTF-8 text is one error, and no listing."""
    first_line: dict[tuple[str, str], int] = {}
    for line, row in _csv_rows(path, CSV_COLUMNS):
        if isinstance(row, RowError):
            yield row
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


def read_listing_refs_csv(path: Path) -> Iterator[ListingRef | RowError]:
    """Each row of a CSV with columns sku and competitor (others are ignored, so the output
    of ``pricing listings list --format csv`` will do) as a listing's reference, or as an
    error with its line number. Competitors are not checked against the rules: the
    listings of one removed from them are the ones to delete."""
    for line, row in _csv_rows(path, ("sku", "competitor")):
        if isinstance(row, RowError):
            yield row
            continue
        try:
            yield ListingRef.model_validate({"sku": row["sku"], "competitor": row["competitor"]})
        except ValidationError as exc:
            yield RowError(line, _first_error(exc))


def _csv_rows(
    path: Path, columns: Iterable[str]
) -> Iterator[tuple[int, dict[str, str] | RowError]]:
    """Each row of a CSV with (at least) ``columns`` by line number, or an error: one for
    a file that is not UTF-8 text or lacks a column, then nothing."""
    problem = utf8_problem(path)
    if problem is not None:
        yield problem[0], RowError(*problem)
        return
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in columns if column not in (reader.fieldnames or [])]
        if missing:
            yield 1, RowError(1, f"missing column(s): {', '.join(missing)}")
            return
        for row in reader:
            line = reader.line_num
            if row.get(None):  # cells past the header
                yield line, RowError(line, "more cells than the header has columns")
                continue
            yield line, row


def _first_error(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    field = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{field}: {message}" if field else message
