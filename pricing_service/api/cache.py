"""The API process's schedule cache, so a price lookup needs no Redis round trip.

It holds decoded :class:`Schedule` objects (every window, not one price), so a lookup at
a window boundary gets the window valid at that instant without waiting for a refresh.
A background task tails ``keys.CHANGES_STREAM`` and refreshes the entries it names;
misses read Redis and fill the cache. A SKU without a schedule is cached as None too:
the publish that creates its schedule also names it on the stream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

from pricing_service.metrics import REDIS_ERRORS
from pricing_service.store import keys
from pricing_service.store.store import Schedule, Store

_log = logging.getLogger(__name__)

CacheKey = tuple[str, str]  # (sku, segment as stored: "" for the default)
#: How many recent changes to remember, to refuse filling the cache with a value read
#: before a change to it arrived (the read and the change can cross).
_RECENT_CHANGES = 8192
_BLOCK_MS = 5_000
_MAX_BACKOFF_SECONDS = 5.0


class ScheduleCache:
    """A bounded LRU of schedules, kept fresh by tailing the changes stream."""

    def __init__(self, store: Store, tail_client: aioredis.Redis, *, max_items: int) -> None:
        self.store = store
        self.max_items = max_items
        self._tail_client = tail_client
        self._entries: OrderedDict[CacheKey, Schedule | None] = OrderedDict()
        self._segments: dict[str, set[str]] = {}
        self._sequence = 0  # counts changes applied
        self._recent: deque[tuple[int, str]] = deque(maxlen=_RECENT_CHANGES)
        #: When the changes stream stopped being read (monotonic), None while it is read.
        self.unsynced_since: float | None = None

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def in_sync(self) -> bool:
        return self.unsynced_since is None

    def peek(self, sku: str, segment: str) -> tuple[bool, Schedule | None]:
        """(found, schedule) without touching Redis."""
        key = (sku, segment)
        if key not in self._entries:
            return False, None
        self._entries.move_to_end(key)
        return True, self._entries[key]

    async def get(self, sku: str, segment: str) -> tuple[Schedule | None, bool]:
        """The schedule and whether it came from the cache."""
        found, cached = self.peek(sku, segment)
        if found:
            return cached, True
        sequence = self._sequence
        schedule = await self.store.get_schedule(sku, segment)
        self._fill(sku, segment, schedule, sequence)
        return schedule, False

    async def get_many(self, pairs: Sequence[CacheKey]) -> list[tuple[Schedule | None, bool]]:
        """Like :meth:`get` for many keys, with one pipelined read for the misses."""
        results: list[tuple[Schedule | None, bool]] = []
        missing: list[int] = []
        for index, (sku, segment) in enumerate(pairs):
            found, cached = self.peek(sku, segment)
            results.append((cached, True))
            if not found:
                missing.append(index)
        if missing:
            sequence = self._sequence
            fetched = await self.store.get_schedules([pairs[i] for i in missing])
            for index, schedule in zip(missing, fetched, strict=True):
                sku, segment = pairs[index]
                self._fill(sku, segment, schedule, sequence)
                results[index] = (schedule, False)
        return results

    def _changed_since(self, sequence: int, sku: str) -> bool:
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
        if self.max_items == 0 or self._changed_since(sequence, sku):
            return
        self._entries[(sku, segment)] = schedule
        self._entries.move_to_end((sku, segment))
        self._segments.setdefault(sku, set()).add(segment)
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

    def clear(self) -> None:
        self._entries.clear()
        self._segments.clear()

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
        """Tail the changes stream until cancelled, reconnecting with backoff."""
        last_id: str | None = None
        backoff = 0.1
        while True:
            try:
                if last_id is None:
                    # An explicit id, not "$": "$" between two reads would skip what was
                    # added in between. The cache starts empty, so older entries don't matter.
                    last_id = await self._stream_end()
                response: Any = await self._tail_client.xread(
                    {keys.CHANGES_STREAM: last_id}, block=_BLOCK_MS, count=1000
                )
                if self.unsynced_since is not None:
                    _log.info("schedule cache: changes stream readable again")
                    self.unsynced_since = None
                backoff = 0.1
                for _stream, entries in response or ():
                    changes = [_decode_change(fields) for _entry_id, fields in entries]
                    last_id = entries[-1][0].decode()
                    await self.apply_changes(changes)
            except asyncio.CancelledError:
                raise
            except redis.exceptions.RedisError as exc:
                REDIS_ERRORS.labels(operation="cache_tail").inc()
                if self.unsynced_since is None:
                    _log.warning("schedule cache: cannot read the changes stream: %s", exc)
                    self.unsynced_since = time.monotonic()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)

    async def _stream_end(self) -> str:
        newest: Any = await self._tail_client.xrevrange(keys.CHANGES_STREAM, count=1)
        return newest[0][0].decode() if newest else "0-0"


def _decode_change(fields: dict[bytes, bytes]) -> tuple[str, str | None]:
    sku = fields[b"sku"].decode()
    segment = fields.get(b"seg")
    if segment is None:
        return sku, None
    text = segment.decode()
    return sku, "" if text == keys.DEFAULT_SEGMENT_KEY else text
