"""The API process's schedule cache, so a price lookup needs no Redis round trip.

It holds decoded :class:`Schedule` objects (every window, not one price), so a lookup at
a window boundary gets the window valid at that instant without waiting for a refresh.
A background task tails the changes streams (``keys.changes_streams``: one, or one per
queue partition) and refreshes the entries they name;
misses read Redis and fill the cache. A SKU without a schedule is cached as None too:
the publish that creates its schedule also names it on the stream.

The tailer is also how the process knows whether Redis is there. When it loses the
stream, cached entries are still served, marked stale, for ``stale_serve_seconds`` after
the last successful read; misses fail at once (:class:`StoreUnavailableError`) instead
of each waiting for a Redis timeout. Once the stream is readable again the cache is
emptied and starts over from the stream's end: what changed meanwhile cannot be known
(entries may have been trimmed from the stream, or Redis may have lost its data), so
every entry is read again on its next lookup.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
import redis.exceptions

from pricing_service.metrics import (
    CACHE_HITS,
    CACHE_MISSES,
    REDIS_ERRORS,
    cache_entries,
    cache_staleness_seconds,
    redis_contact_age_seconds,
)
from pricing_service.store import keys
from pricing_service.store.store import Schedule, Store
from pricing_service.store.streams import named_entries

_log = logging.getLogger(__name__)

CacheKey = tuple[str, str]  # (sku, segment as stored: "" for the default)
#: How many recent changes to remember, to refuse filling the cache with a value read
#: before a change to it arrived (the read and the change can cross).
_RECENT_CHANGES = 8192
#: The tailer's XREAD returns at least this often, so a quiet stream still proves that
#: Redis answers: the staleness of the cache is known to within this.
TAIL_BLOCK_SECONDS = 1.0
_READ_COUNT = 1000
_MIN_BACKOFF_SECONDS = 0.05
#: The tailer retries at least this often while Redis is away: it is the probe that
#: notices Redis is back.
_MAX_BACKOFF_SECONDS = 1.0
#: After a failed read, misses skip Redis for this long (or until the tailer is back).
_RETRY_AFTER_FAILURE_SECONDS = 1.0
#: Cached schedules live long and hold no reference cycles (refcounting frees them), yet
#: every full garbage collection walks them all: 135 ms at 100,000 entries on these
#: machines, a pause every lookup waiting at that moment pays. After this many new
#: entries the collector is told to leave everything alive so far alone (``gc.freeze``).
#: The price: a reference cycle that is garbage at that very moment is never collected.
_FREEZE_EVERY_ENTRIES = 10_000

_T = TypeVar("_T")


class StoreUnavailableError(redis.exceptions.ConnectionError):
    """Redis is known to be unreachable, so it was not tried."""


class ScheduleCache:
    """A bounded LRU of schedules, kept fresh by tailing the changes stream."""

    def __init__(
        self,
        store: Store,
        tail_client: aioredis.Redis,
        *,
        max_items: int,
        stale_serve_seconds: float,
    ) -> None:
        self.store = store
        self.max_items = max_items
        self.stale_serve_seconds = stale_serve_seconds
        self._tail_client = tail_client
        self._entries: OrderedDict[CacheKey, Schedule | None] = OrderedDict()
        self._segments: dict[str, set[str]] = {}
        self._sequence = 0  # counts changes applied
        self._recent: deque[tuple[int, str]] = deque(maxlen=_RECENT_CHANGES)
        #: Reads begun before this sequence predate the last emptying: not cached.
        self._emptied_at = 0
        self._in_sync = False
        started = time.monotonic()
        #: When the cache was last known to hold every change (monotonic).
        self._synced_at = started
        #: When Redis last answered one of the cache's reads (monotonic).
        self._last_contact = started
        #: The tailer's last attempt failed: Redis is taken to be down until it succeeds.
        self._tail_failing = False
        self._filled_since_freeze = 0
        #: After a failed read, misses skip Redis until then (monotonic).
        self._retry_at = 0.0
        #: On a cluster: the XREAD in flight on each changes stream (see _read_changes).
        self._reads: dict[str, asyncio.Future[Any]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    # -- health -------------------------------------------------------------------------

    def stale_seconds(self) -> float | None:
        """None while the cache follows the changes stream, else seconds since it last
        did: how out of date a cached schedule may be."""
        if self._in_sync:
            return None
        return time.monotonic() - self._synced_at

    def _servable(self) -> bool:
        """May cached entries be answered: in sync, or not for too long?"""
        return self._in_sync or time.monotonic() - self._synced_at <= self.stale_serve_seconds

    def serving_stale(self) -> bool:
        """Out of sync, yet still answering lookups from what it holds."""
        return not self._in_sync and bool(self._entries) and self._servable()

    def check_store_reachable(self) -> None:
        """Raise :class:`StoreUnavailableError` rather than try Redis while it is known to
        be down, so requests during an outage do not each wait for a timeout."""
        if self._tail_failing:
            raise StoreUnavailableError("the price store is unreachable")
        if time.monotonic() < self._retry_at:
            raise StoreUnavailableError("the price store failed a moment ago")

    async def _read(self, read: Awaitable[_T]) -> _T:
        try:
            result = await read
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            self._retry_at = time.monotonic() + _RETRY_AFTER_FAILURE_SECONDS
            raise
        self._last_contact = time.monotonic()
        return result

    def export_metrics(self) -> None:
        """Set the cache's gauges (at scrape time: they are ages, not events)."""
        cache_entries().set(len(self._entries))
        cache_staleness_seconds().set(self.stale_seconds() or 0.0)
        redis_contact_age_seconds().set(time.monotonic() - self._last_contact)

    # -- lookups ------------------------------------------------------------------------

    def peek(self, sku: str, segment: str) -> tuple[bool, Schedule | None]:
        """(found, schedule) without touching Redis."""
        key = (sku, segment)
        if key not in self._entries:
            return False, None
        self._entries.move_to_end(key)
        return True, self._entries[key]

    async def get(self, sku: str, segment: str) -> tuple[Schedule | None, bool]:
        """The schedule and whether it came from the cache."""
        if self._servable():
            found, cached = self.peek(sku, segment)
            if found:
                CACHE_HITS.inc()
                return cached, True
        CACHE_MISSES.inc()
        self.check_store_reachable()
        sequence = self._sequence
        schedule = await self._read(self.store.get_schedule(sku, segment))
        self._fill(sku, segment, schedule, sequence)
        return schedule, False

    async def get_many(
        self, pairs: Sequence[CacheKey], *, partial: bool = False
    ) -> list[tuple[Schedule | None, bool] | None]:
        """Like :meth:`get` for many keys, with one pipelined read for the misses. With
        ``partial``, while the store cannot be read, the keys not cached are None instead,
        provided one key is served from the cache: a batch answers what it can."""
        results: list[tuple[Schedule | None, bool] | None] = []
        missing: list[int] = []
        servable = self._servable()
        for index, (sku, segment) in enumerate(pairs):
            found, cached = self.peek(sku, segment) if servable else (False, None)
            results.append((cached, True))
            if not found:
                missing.append(index)
        if len(missing) < len(pairs):
            CACHE_HITS.inc(len(pairs) - len(missing))
        if not missing:
            return results
        CACHE_MISSES.inc(len(missing))
        try:
            self.check_store_reachable()
            sequence = self._sequence
            fetched = await self._read(self.store.get_schedules([pairs[i] for i in missing]))
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            if not partial or len(missing) == len(pairs):
                raise
            for index in missing:
                results[index] = None
            return results
        for index, schedule in zip(missing, fetched, strict=True):
            sku, segment = pairs[index]
            self._fill(sku, segment, schedule, sequence)
            results[index] = (schedule, False)
        return results

    # -- bookkeeping --------------------------------------------------------------------

    def _changed_since(self, sequence: int, sku: str) -> bool:
        if sequence < self._emptied_at:
            return True
        if sequence == self._sequence:
            return False
        if len(self._recent) == self._recent.maxlen and self._recent[0][0] > sequence:
            return True  # the changes since are no longer all remembered: assume so
        for changed_at, changed_sku in reversed(self._recent):
            if changed_at <= sequence:
                return False
            if changed_sku == sku:
                return True
        return False

    def _fill(self, sku: str, segment: str, schedule: Schedule | None, sequence: int) -> None:
        # Out of sync, no change to the entry would reach it: serve the read, keep nothing.
        if self.max_items == 0 or not self._in_sync or self._changed_since(sequence, sku):
            return
        self._entries[(sku, segment)] = schedule
        self._entries.move_to_end((sku, segment))
        self._segments.setdefault(sku, set()).add(segment)
        self._filled_since_freeze += 1
        if self._filled_since_freeze >= _FREEZE_EVERY_ENTRIES:
            gc.freeze()
            self._filled_since_freeze = 0
        while len(self._entries) > self.max_items:
            (old_sku, old_segment), _ = self._entries.popitem(last=False)
            self._forget_segment(old_sku, old_segment)

    def _forget_segment(self, sku: str, segment: str) -> None:
        segments = self._segments.get(sku)
        if segments is not None:
            segments.discard(segment)
            if not segments:
                del self._segments[sku]

    def invalidate(self, sku: str, segment: str | None = None) -> None:
        """Drop one segment of a SKU, or all of them."""
        segments = [segment] if segment is not None else list(self._segments.get(sku, ()))
        for name in segments:
            self._entries.pop((sku, name), None)
            self._forget_segment(sku, name)

    def begin_sync(self) -> None:
        """Start following the changes stream from a position read just before: empty the
        cache, and keep out whatever reads began before (they may predate changes that
        the stream will not repeat)."""
        dropped = len(self._entries)
        self._entries.clear()
        self._segments.clear()
        self._sequence += 1
        self._emptied_at = self._sequence
        if self._tail_failing:
            _log.info("schedule cache: changes stream readable again; %d entries dropped", dropped)
        self._in_sync, self._tail_failing, self._retry_at = True, False, 0.0
        self._synced_at = self._last_contact = time.monotonic()

    def lose_sync(self, error: Exception) -> None:
        """The stream could not be read: serve what is cached as stale, and fail misses."""
        if not self._tail_failing:
            _log.warning("schedule cache: cannot read the changes stream: %s", error)
        self._in_sync, self._tail_failing = False, True

    async def apply_changes(self, changes: Sequence[tuple[str, str | None]]) -> None:
        """Apply (sku, segment or None for every segment) changes: refresh cached entries."""
        refresh: list[CacheKey] = []
        for sku, segment in changes:
            self._sequence += 1
            self._recent.append((self._sequence, sku))
            if segment is None:
                self.invalidate(sku)
            elif (sku, segment) in self._entries:
                refresh.append((sku, segment))
        if not refresh:
            return
        sequence = self._sequence
        fetched = await self.store.get_schedules(refresh)
        for (sku, segment), schedule in zip(refresh, fetched, strict=True):
            if (sku, segment) in self._entries and not self._changed_since(sequence, sku):
                self._entries[(sku, segment)] = schedule

    async def run(self) -> None:
        """Tail the changes streams until cancelled, starting over after any failure."""
        positions: dict[str, str] | None = None
        backoff = _MIN_BACKOFF_SECONDS
        try:
            while True:
                try:
                    if positions is None:
                        await self.store.check_partitions()
                        # Explicit ids, not "$": "$" between two reads would skip what was
                        # added in between. The cache starts empty: older entries don't matter.
                        positions = {
                            stream: await self._stream_end(stream)
                            for stream in self.store.changes_streams
                        }
                        self.begin_sync()
                    for stream, entries in await self._read_changes(positions):
                        changes = [_decode_change(fields) for _entry_id, fields in entries]
                        positions[stream] = entries[-1][0].decode()
                        await self.apply_changes(changes)
                    self._synced_at = self._last_contact = time.monotonic()
                    backoff = _MIN_BACKOFF_SECONDS
                except redis.exceptions.RedisError as exc:
                    REDIS_ERRORS.labels(operation="cache_tail").inc()
                    self.lose_sync(exc)
                    await self._cancel_reads()
                    positions = None
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
        finally:
            await self._cancel_reads()

    async def _read_changes(self, positions: dict[str, str]) -> list[tuple[str, list[Any]]]:
        """New entries of the changes streams, as (stream, entries) pairs.

        One Redis reads (and waits on) every stream in one XREAD. A cluster keeps the
        partitions on different shards, so each has an XREAD of its own in flight; the
        first to answer is served, and the others stay in flight."""
        if not self.store.cluster or len(positions) == 1:
            streams: dict[Any, Any] = dict(positions)
            response: Any = await self._tail_client.xread(
                streams, block=int(TAIL_BLOCK_SECONDS * 1000), count=_READ_COUNT
            )
            return named_entries(response)
        for stream, position in positions.items():
            if stream not in self._reads:
                one: dict[Any, Any] = {stream: position}
                read = self._tail_client.xread(
                    one, block=int(TAIL_BLOCK_SECONDS * 1000), count=_READ_COUNT
                )
                self._reads[stream] = asyncio.ensure_future(read)
        done, _ = await asyncio.wait(self._reads.values(), return_when=asyncio.FIRST_COMPLETED)
        found: list[tuple[str, list[Any]]] = []
        for stream, task in list(self._reads.items()):
            if task in done:
                del self._reads[stream]
                found += named_entries(task.result())
        return found

    async def _cancel_reads(self) -> None:
        reads = list(self._reads.values())
        self._reads.clear()
        for read in reads:
            read.cancel()
        await asyncio.gather(*reads, return_exceptions=True)

    async def _stream_end(self, stream: str) -> str:
        newest: Any = await self._tail_client.xrevrange(stream, count=1)
        if not newest:
            return "0-0"
        entry_id: bytes = newest[0][0]
        return entry_id.decode()


def _decode_change(fields: dict[bytes, bytes]) -> tuple[str, str | None]:
    sku = fields[b"sku"].decode()
    segment = fields.get(b"seg")
    if segment is None:
        return sku, None
    text = segment.decode()
    return sku, "" if text == keys.DEFAULT_SEGMENT_KEY else text
