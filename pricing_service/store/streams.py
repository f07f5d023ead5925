"""A consumer group's work split over several streams (the partitions of a queue).

The repricers' queue and the crawl queue are both read this way: the group is created on
every partition, the partitions take turns at being read first, and entries that idle
consumers (dead workers) hold are claimed before new ones are read. On one Redis one
XREADGROUP reads (and waits on) every partition. A Redis Cluster keeps the partitions
on different shards, where one command cannot name them all: each is read in turn, and
the wait is on one of them, a different one each time.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

#: A stream's entries as redis-py returns them: (entry id, fields).
Entries = list[tuple[bytes, dict[bytes, bytes]]]
#: The shortest wait on one partition of a clustered queue when all were empty.
MIN_PARTITION_BLOCK_MS = 50


class PartitionedGroup:
    """One consumer of ``group`` over the partition ``streams``."""

    def __init__(
        self,
        redis: aioredis.Redis,
        streams: Sequence[str],
        group: str,
        consumer: str,
        *,
        cluster: bool,
    ) -> None:
        self.redis = redis
        self.streams = list(streams)
        self.group = group
        self.consumer = consumer
        self.cluster = cluster
        self._claim_cursors = dict.fromkeys(self.streams, "0-0")
        self._next_partition = 0

    async def ensure(self) -> None:
        await ensure_groups(self.redis, self.streams, self.group)

    def in_turn(self) -> list[str]:
        """The partitions, starting one further each call."""
        first = self._next_partition % len(self.streams)
        self._next_partition += 1
        return self.streams[first:] + self.streams[:first]

    async def claim_idle(self, count: int, min_idle_ms: int) -> list[tuple[str, Entries]]:
        """Up to ``count`` entries idle consumers hold, from the first partition with some
        (entries trimmed away while pending are left out)."""
        for stream in self.in_turn():
            result: Any = await self.redis.xautoclaim(
                stream,
                self.group,
                self.consumer,
                min_idle_time=min_idle_ms,
                start_id=self._claim_cursors[stream],
                count=count,
            )
            cursor, claimed = result[0], result[1]
            self._claim_cursors[stream] = _text(cursor)
            entries = [(entry_id, fields) for entry_id, fields in claimed if fields]
            if entries:
                return [(stream, entries)]
        return []

    async def read_new(self, count: int, block_ms: int) -> list[tuple[str, Entries]]:
        """Up to ``count`` new entries, waiting up to about ``block_ms`` for some."""
        streams = self.in_turn()
        if not self.cluster:
            return await self._read(streams, count, block_ms)
        for stream in streams:
            found = await self._read([stream], count, None)
            if found:
                return found
        wait = max(MIN_PARTITION_BLOCK_MS, block_ms // len(streams))
        return await self._read(streams[:1], count, wait)

    async def _read(
        self, streams: list[str], count: int, block_ms: int | None
    ) -> list[tuple[str, Entries]]:
        """XREADGROUP on ``streams``, as (stream, entries) pairs without the empty ones."""
        response: Any = await self.redis.xreadgroup(
            self.group,
            self.consumer,
            dict.fromkeys(streams, ">"),
            count=count,
            block=block_ms,
        )
        return named_entries(response)


async def ensure_groups(redis: aioredis.Redis, streams: Sequence[str], group: str) -> None:
    """Create ``group`` on every stream that has none (and the stream with it)."""
    for stream in streams:
        try:
            await redis.xgroup_create(stream, group, id="0", mkstream=True)
        except aioredis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


async def group_backlog(redis: aioredis.Redis, streams: Sequence[str], group: str) -> int:
    """Entries of ``streams`` the group has not acknowledged: delivered (pending) or not
    yet (lag). A stream without the group counts every entry; no stream counts none."""
    backlog = 0
    for stream in streams:
        try:
            groups: Any = await redis.xinfo_groups(stream)
        except aioredis.ResponseError:  # no stream yet
            continue
        found = next((g for g in groups if g.get("name") in (group, group.encode())), None)
        if found is None or found.get("lag") is None:
            # No group yet: every entry waits. Redis < 7 reports no lag: the stream's
            # length is then the bound known.
            backlog += int(await redis.xlen(stream))
        else:
            backlog += int(found.get("pending", 0)) + int(found["lag"])
    return backlog


def named_entries(response: Any) -> list[tuple[str, Entries]]:
    """An XREAD or XREADGROUP reply as (stream name, entries) pairs, without the empty ones."""
    return [(_text(name), list(entries)) for name, entries in response or [] if entries]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
