"""Fetching competitor pages politely and defensively.

One :class:`Fetcher` per worker process. For every request, in order:

1. the host must be one of the competitor's domains (checked again after each redirect,
   which is why redirects are followed here and not by httpx);
2. the host must not resolve to a private, loopback or otherwise non-public address,
   unless the settings allow that network: checked on the addresses the socket connects
   to (:mod:`crawlers.transport`), so a name cannot answer differently to a check;
3. robots.txt must allow the path (:mod:`crawlers.robots`);
4. the domain's next slot is reserved and a lease on one of its ``concurrency`` request
   slots taken, both fleet-wide (:mod:`crawlers.ratelimit`);
5. the body is streamed, decompressed, and abandoned past ``max_body_bytes`` or past the
   total time limit, so neither a huge body nor a server dripping bytes can hold a worker.

Network errors, timeouts, 5xx and 429 are retried with exponential backoff and full
jitter; a ``Retry-After`` (seconds or an HTTP date) replaces the backoff when longer.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import httpx
import redis.asyncio as aioredis

from crawlers.listings import host_allowed
from crawlers.network import AddressPolicy, AddressRefused, HostNotFound, resolve
from crawlers.outcome import RETRYABLE, Outcome
from crawlers.ratelimit import DomainGate, RateLimitTooFar
from crawlers.robots import MAX_ROBOTS_BYTES, RobotsCache, RobotsResponse
from crawlers.settings import CrawlerSettings
from crawlers.transport import VettedTransport
from pricing_service import metrics
from pricing_service.rules.model import Competitor

_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
#: A lease outlives the longest request a little; a killed worker's then frees itself.
LEASE_MARGIN_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class FetchResult:
    outcome: Outcome
    url: str
    status: int | None = None
    body: bytes = b""
    content_type: str | None = None
    retry_after: float | None = None
    detail: str = ""
    # The host does not resolve, or resolves to a refused address: nothing was sent.
    host_unusable: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.ACCEPTED


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def backoff_seconds(attempt: int, base: float, cap: float) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0, min(cap, base * 2**attempt))


class Fetcher:
    def __init__(
        self,
        settings: CrawlerSettings,
        redis: aioredis.Redis,
        competitors: Mapping[str, Competitor],
    ) -> None:
        self.settings = settings
        self.gate = DomainGate(redis)
        self._route_identities: dict[int, tuple[Competitor, str]] = {}
        self._routes: dict[str, _Route] = {}
        #: Requests under way per route, and the routes no competitor uses since an edit:
        #: each is closed once its last request ends.
        self._requests_on: Counter[str] = Counter()
        self._retired: set[str] = set()
        self._identities_in_use: set[str] = set()
        self.competitors: Mapping[str, Competitor] = {}
        self._robots: dict[str, RobotsCache] = {}
        self._policy = AddressPolicy(tuple(settings.allowed_private_networks))
        timeout = httpx.Timeout(
            connect=settings.connect_timeout,
            read=settings.read_timeout,
            write=settings.read_timeout,
            pool=settings.total_timeout,
        )
        self._extensions = {"timeout": timeout.as_dict()}
        self.use_competitors(competitors)

    def use_competitors(self, competitors: Mapping[str, Competitor]) -> None:
        """Fetch with ``competitors`` from now on (an edit of the rule files). Requests in
        flight finish as they started; a competitor whose definition changed reads its
        robots.txt again, with its new identity; the connections of a route no competitor
        uses any more (another proxy, user agent or headers) close after its last request."""
        for competitor_id, competitor in self.competitors.items():
            if competitors.get(competitor_id) != competitor:
                self._robots.pop(competitor_id, None)
        kept = {id(competitor) for competitor in competitors.values()}
        self._route_identities = {
            key: known for key, known in self._route_identities.items() if key in kept
        }
        self._identities_in_use = {
            self._route_identity(competitor) for competitor in competitors.values()
        }
        self._retired = (self._retired | self._routes.keys()) - self._identities_in_use
        self.competitors = competitors

    async def close(self) -> None:
        await self.gate.close()
        for route in self._routes.values():
            await route.transport.aclose()
        self._routes.clear()
        self._retired.clear()

    async def _close_idle_retired_routes(self) -> None:
        """Close the routes an edit left unused (another proxy, user agent or headers),
        with their connections, once no request is under way on them."""
        for identity in [one for one in self._retired if not self._requests_on[one]]:
            self._retired.discard(identity)
            route = self._routes.pop(identity, None)
            if route is not None:
                await route.transport.aclose()

    # -- the public entry point ---------------------------------------------------------------

    async def fetch(self, competitor_id: str, url: str) -> FetchResult:
        """GET ``url`` for a competitor, with every check and retry; never raises for
        anything the network or the server does. A competitor whose definition changes
        while the request waits for its slot (an edit of competitors.yaml) is fetched
        under the new one; one removed meanwhile is not fetched at all."""
        started = time.perf_counter()
        while True:
            competitor = self.competitors.get(competitor_id)
            if competitor is None:
                detail = f"{competitor_id} is no longer in competitors.yaml"
                result = FetchResult(Outcome.UNKNOWN_LISTING, url, detail=detail)
                break
            try:
                result = await self._with_retries(competitor_id, competitor, url)
                break
            except _DefinitionChanged:
                continue
        metrics.CRAWL_FETCH_SECONDS.labels(competitor=competitor_id).observe(
            time.perf_counter() - started
        )
        metrics.CRAWL_FETCHES.labels(competitor=competitor_id, outcome=result.outcome).inc()
        return result

    async def _with_retries(
        self, competitor_id: str, competitor: Competitor, url: str
    ) -> FetchResult:
        settings = self.settings
        attempt = 0
        while True:
            result = await self._follow(competitor_id, competitor, url, robots=True)
            attempt += 1
            if result.outcome not in RETRYABLE or attempt >= settings.max_attempts:
                return result
            pause = backoff_seconds(attempt - 1, settings.backoff_base, settings.backoff_cap)
            if result.retry_after is not None:
                if result.retry_after > settings.max_retry_after:
                    return result
                pause = max(pause, result.retry_after)
            await asyncio.sleep(pause)

    # -- one attempt, redirects included -------------------------------------------------------

    async def _follow(
        self,
        competitor_id: str,
        competitor: Competitor,
        url: str,
        *,
        robots: bool,
        max_bytes: int | None = None,
    ) -> FetchResult:
        current = url
        for _ in range(self.settings.max_redirects + 1):
            refused = await self._refusal(competitor, current)
            if refused is not None:
                return refused
            try:
                refusal = robots and await self._robots_refusal(competitor_id, competitor, current)
            except _HostUnusable as unusable:
                # Say what is wrong with the host itself, not that robots.txt was unreachable.
                return replace(unusable.result, url=current)
            if refusal:
                if refusal is Outcome.ROBOTS_DISALLOWED:
                    metrics.CRAWL_ROBOTS_DISALLOWS.labels(competitor=competitor_id).inc()
                return FetchResult(refusal, current)
            # robots.txt itself is paced by the configured rate alone: its Crawl-delay is
            # not known before it is read.
            interval = await self._interval(competitor_id, competitor, current, robots=robots)
            result, location = await self._get_once(
                competitor_id,
                competitor,
                current,
                interval,
                max_bytes or self.settings.max_body_bytes,
            )
            if location is None:
                return result
            current = urljoin(current, location)
        return FetchResult(Outcome.TOO_MANY_REDIRECTS, current)

    async def _refusal(self, competitor: Competitor, url: str) -> FetchResult | None:
        """Why ``url`` must not be fetched for this competitor, if it must not.

        The address check happens when connecting, except through a proxy: the proxy
        resolves the name then, so it is checked here (see :mod:`crawlers.network`)."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host_allowed(host, competitor.domains):
            return FetchResult(Outcome.OFF_DOMAIN, url, detail=f"{host or url} is not allowed")
        if competitor.proxy is None:
            return None
        try:
            addresses = await resolve(host, parts.port or (443 if parts.scheme == "https" else 80))
        except OSError as exc:
            detail = f"cannot resolve {host}: {exc}"
            return FetchResult(Outcome.NETWORK_ERROR, url, detail=detail, host_unusable=True)
        refused = self._policy.first_refused(addresses)
        if refused is not None:
            detail = f"{host} resolves to {refused}"
            return FetchResult(Outcome.PRIVATE_ADDRESS, url, detail=detail, host_unusable=True)
        return None

    async def _get_once(
        self, competitor_id: str, competitor: Competitor, url: str, interval: float, max_bytes: int
    ) -> tuple[FetchResult, str | None]:
        """One GET: the result, and the redirect location when it is a redirect. Raises
        :class:`_DefinitionChanged` when the competitor was edited while the request
        waited for its slot (a slower rate, a removal: jobs in hand obey it too)."""
        route = self._route_for(competitor)
        self._requests_on[route.identity] += 1
        try:
            return await self._get_on(route, competitor_id, competitor, url, interval, max_bytes)
        finally:
            self._requests_on[route.identity] -= 1
            if self._retired:
                await self._close_idle_retired_routes()

    async def _get_on(
        self,
        route: _Route,
        competitor_id: str,
        competitor: Competitor,
        url: str,
        interval: float,
        max_bytes: int,
    ) -> tuple[FetchResult, str | None]:
        host = urlsplit(url).hostname or ""
        # The lease comes first and the rate slot is awaited while holding it: requests
        # cannot then bunch up behind a busy domain and leave together. The lease covers
        # that wait (at most one interval per other holder) and the request itself.
        concurrency = competitor.concurrency
        lease_seconds = self.settings.total_timeout + concurrency * interval + LEASE_MARGIN_SECONDS
        try:
            async with self.gate.hold(host, concurrency, lease_seconds, interval):
                if self.competitors.get(competitor_id) != competitor:
                    raise _DefinitionChanged(competitor_id)
                result, location = await self._read_capped(route, url, max_bytes)
            if result.retry_after is not None:
                # The server asked to wait: the whole fleet does (never longer than this
                # worker would wait itself).
                await self.gate.defer(host, min(result.retry_after, self.settings.max_retry_after))
            return result, location
        except RateLimitTooFar:
            return FetchResult(Outcome.RATE_LIMITED, url, detail="domain queue too long"), None

    async def _read_capped(
        self, route: _Route, url: str, max_bytes: int
    ) -> tuple[FetchResult, str | None]:
        """:meth:`_read` within the total time limit, every failure made a result."""
        try:
            async with asyncio.timeout(self.settings.total_timeout):
                return await self._read(route, url, max_bytes)
        except TimeoutError:
            return FetchResult(Outcome.TIMEOUT, url, detail="total time limit"), None
        except AddressRefused as exc:
            refused = FetchResult(Outcome.PRIVATE_ADDRESS, url, detail=str(exc), host_unusable=True)
            return refused, None
        except HostNotFound as exc:
            detail = f"cannot resolve {exc}"
            return FetchResult(Outcome.NETWORK_ERROR, url, detail=detail, host_unusable=True), None
        except httpx.TimeoutException as exc:
            return FetchResult(Outcome.TIMEOUT, url, detail=type(exc).__name__), None
        except httpx.DecodingError as exc:
            return FetchResult(Outcome.BAD_RESPONSE, url, detail=str(exc)), None
        except (httpx.TransportError, httpx.InvalidURL) as exc:
            return FetchResult(Outcome.NETWORK_ERROR, url, detail=type(exc).__name__), None

    async def _read(
        self, route: _Route, url: str, max_bytes: int
    ) -> tuple[FetchResult, str | None]:
        request = httpx.Request("GET", url, headers=route.headers, extensions=self._extensions)
        response = await route.transport.handle_async_request(request)
        response.request = request
        try:
            status = response.status_code
            location = response.headers.get("location")
            if status in _REDIRECT_STATUSES and location:
                return FetchResult(Outcome.ACCEPTED, url, status), location
            if status == 429 or status >= 500:
                outcome = Outcome.RATE_LIMITED if status == 429 else Outcome.SERVER_ERROR
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                return FetchResult(outcome, url, status, retry_after=retry_after), None
            if status >= 300:
                return FetchResult(Outcome.HTTP_ERROR, url, status), None
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                return FetchResult(Outcome.TOO_LARGE, url, status, detail=declared), None
            body = bytearray()
            async for chunk in response.aiter_bytes():  # decompressed: bombs count in full
                body += chunk
                if len(body) > max_bytes:
                    return FetchResult(Outcome.TOO_LARGE, url, status), None
            content_type = response.headers.get("content-type")
            return FetchResult(Outcome.ACCEPTED, url, status, bytes(body), content_type), None
        finally:
            await response.aclose()

    # -- politeness -----------------------------------------------------------------------------

    async def _interval(
        self, competitor_id: str, competitor: Competitor, url: str, *, robots: bool
    ) -> float:
        """Seconds between two requests to the URL's domain."""
        interval = 1 / float(competitor.requests_per_second)
        if competitor.crawl_delay is not None:
            return max(interval, competitor.crawl_delay.total_seconds())
        if not robots:
            return interval
        policy = await self._robots_cache(competitor_id, competitor).policy(_origin(url))
        delay = policy.crawl_delay(self._user_agent(competitor))
        return max(interval, delay or 0.0)

    async def _robots_refusal(
        self, competitor_id: str, competitor: Competitor, url: str
    ) -> Outcome | None:
        """Why robots.txt keeps ``url`` from being fetched, if it does."""
        policy = await self._robots_cache(competitor_id, competitor).policy(_origin(url))
        if policy.allows(url, self._user_agent(competitor)):
            return None
        return Outcome.ROBOTS_UNREACHABLE if policy.unreachable else Outcome.ROBOTS_DISALLOWED

    def _robots_cache(self, competitor_id: str, competitor: Competitor) -> RobotsCache:
        cache = self._robots.get(competitor_id)
        if cache is None:

            async def fetch_robots(url: str) -> RobotsResponse:
                # One attempt: an unreachable robots.txt disallows and is asked again soon.
                result = await self._follow(
                    competitor_id, competitor, url, robots=False, max_bytes=MAX_ROBOTS_BYTES
                )
                if result.host_unusable:
                    raise _HostUnusable(result)
                if result.status is None or result.outcome is Outcome.TOO_MANY_REDIRECTS:
                    return RobotsResponse(None)
                return RobotsResponse(result.status, result.body)

            cache = RobotsCache(
                fetch_robots,
                cache_seconds=self.settings.robots_cache_seconds,
                unreachable_seconds=self.settings.robots_unreachable_seconds,
            )
            self._robots[competitor_id] = cache
        return cache

    def _user_agent(self, competitor: Competitor) -> str:
        return competitor.user_agent or self.settings.user_agent

    def _route_for(self, competitor: Competitor) -> _Route:
        # Routes differ by their headers, user agent and proxy only. The identity is
        # remembered per competitor object (kept alive with it, so its id is not reused).
        identity = self._route_identity(competitor)
        route = self._routes.get(identity)
        if route is None:
            limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
            transport: httpx.AsyncBaseTransport
            if competitor.proxy is None:
                transport = VettedTransport(self._policy, limits)
            else:
                # no proxy settings or certificates picked up from the environment
                transport = httpx.AsyncHTTPTransport(
                    proxy=competitor.proxy, limits=limits, trust_env=False
                )
            headers = {**competitor.headers, "User-Agent": self._user_agent(competitor)}
            route = _Route(identity, _client_headers(headers), transport)
            self._routes[identity] = route
            if identity not in self._identities_in_use:
                # For a job in hand whose competitor was edited since: closed after it.
                self._retired.add(identity)
        return route

    def _route_identity(self, competitor: Competitor) -> str:
        known = self._route_identities.get(id(competitor))
        if known is not None and known[0] is competitor:
            return known[1]
        identity = competitor.model_dump_json(include={"headers", "user_agent", "proxy"})
        self._route_identities[id(competitor)] = (competitor, identity)
        return identity


@dataclass(frozen=True, slots=True)
class _Route:
    """How a competitor's requests go out: their headers and the transport under them.

    Requests go straight to the httpx transport: redirects are followed by the fetcher
    (every hop checked), there is no authentication, and no cookie is kept, so every
    page is fetched as a first visit and what a session cookie would change (a region,
    a test group) cannot drift between crawls. ``httpx.AsyncClient`` would add nothing
    but its per-request cost (about a tenth of a worker's CPU).
    """

    identity: str  # what the competitor's headers, user agent and proxy make it
    headers: httpx.Headers
    transport: httpx.AsyncBaseTransport


def _client_headers(headers: Mapping[str, str]) -> httpx.Headers:
    """httpx's default request headers (``Accept-Encoding`` lists the encodings it can
    decode here) with the given ones on top."""
    with httpx.Client(headers=headers, trust_env=False) as client:
        return client.headers


class _DefinitionChanged(Exception):
    """The competitor's definition changed while a request for it waited."""


class _HostUnusable(Exception):
    """robots.txt was not fetched because its host does not resolve, or resolves to a
    refused address."""

    def __init__(self, result: FetchResult) -> None:
        super().__init__(result.detail)
        self.result = result


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
