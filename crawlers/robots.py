"""robots.txt with RFC 9309 semantics, cached per host.

- 2xx: the file's rules (parsed by protego; at most 500 KiB are read, as the RFC allows);
- 4xx ("unavailable"): everything is allowed;
- 5xx, 429 or an unreachable host ("unreachable"): everything is disallowed, and asked
  again soon, since the RFC expects a crawler to retry.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from protego import Protego

#: RFC 9309 section 2.5: crawlers must read at least 500 kibibytes.
MAX_ROBOTS_BYTES = 500 * 1024


@dataclass(frozen=True, slots=True)
class RobotsResponse:
    """What fetching ``/robots.txt`` gave: a status (None when unreachable) and body."""

    status: int | None
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class RobotsPolicy:
    """One host's rules; ``parser`` None means every path is allowed, or none is."""

    parser: Protego | None
    allow_all: bool
    expires_at: float
    #: Disallowed because robots.txt could not be read (5xx, 429, unreachable), not
    #: because it says no.
    unreachable: bool = False

    def allows(self, url: str, user_agent: str) -> bool:
        if self.parser is None:
            return self.allow_all
        return bool(self.parser.can_fetch(url, user_agent))

    def crawl_delay(self, user_agent: str) -> float | None:
        return None if self.parser is None else self.parser.crawl_delay(user_agent)


def policy_from_response(
    response: RobotsResponse, now: float, *, cache_seconds: float, unreachable_seconds: float
) -> RobotsPolicy:
    status = response.status
    if status is None or status == 429 or status >= 500:
        return RobotsPolicy(
            None, allow_all=False, expires_at=now + unreachable_seconds, unreachable=True
        )
    if status >= 400:
        return RobotsPolicy(None, allow_all=True, expires_at=now + cache_seconds)
    text = response.body[:MAX_ROBOTS_BYTES].decode("utf-8", errors="replace")
    return RobotsPolicy(Protego.parse(text), allow_all=True, expires_at=now + cache_seconds)


class RobotsCache:
    """The policy of each host (``scheme://host:port``), fetched when missing or expired."""

    def __init__(
        self,
        fetch: Callable[[str], Awaitable[RobotsResponse]],
        *,
        cache_seconds: float,
        unreachable_seconds: float,
    ) -> None:
        self._fetch = fetch
        self._cache_seconds = cache_seconds
        self._unreachable_seconds = unreachable_seconds
        self._policies: dict[str, RobotsPolicy] = {}
        # One fetch per host at a time: the jobs waiting for it then share its answer.
        self._fetching: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def policy(self, origin: str) -> RobotsPolicy:
        cached = self._policies.get(origin)
        if cached is not None and cached.expires_at > time.monotonic():
            return cached
        async with self._fetching[origin]:
            cached = self._policies.get(origin)
            if cached is not None and cached.expires_at > time.monotonic():
                return cached
            return await self._refresh(origin)

    async def _refresh(self, origin: str) -> RobotsPolicy:
        response = await self._fetch(origin + "/robots.txt")
        policy = policy_from_response(
            response,
            time.monotonic(),
            cache_seconds=self._cache_seconds,
            unreachable_seconds=self._unreachable_seconds,
        )
        self._policies[origin] = policy
        return policy
