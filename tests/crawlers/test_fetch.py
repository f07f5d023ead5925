"""Fetching against the real demo site: robots.txt, domains, retries, pacing, hostility."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis

from crawlers import keys
from crawlers.demo_site import DemoSiteServer
from crawlers.fetch import Fetcher, parse_retry_after
from crawlers.outcome import Outcome
from crawlers.ratelimit import RELEASE_DELAY_SECONDS, DomainGate, RateLimitTooFar
from crawlers.settings import CrawlerSettings
from pricing_service.rules.model import Competitor

pytestmark = pytest.mark.anyio


async def test_a_product_page_is_fetched(site: DemoSiteServer, fetcher: Fetcher) -> None:
    result = await fetcher.fetch("demo", f"{site.url}/jsonld/A-1")
    assert result.outcome is Outcome.ACCEPTED
    assert result.status == 200
    assert b"application/ld+json" in result.body


async def test_robots_disallow_is_honoured(site: DemoSiteServer, fetcher: Fetcher) -> None:
    result = await fetcher.fetch("demo", f"{site.url}/private/A-1")
    assert result.outcome is Outcome.ROBOTS_DISALLOWED
    assert site.state.hits("/private/") == []


async def test_robots_4xx_allows_everything(site: DemoSiteServer, fetcher: Fetcher) -> None:
    site.state.robots_status = 404
    result = await fetcher.fetch("demo", f"{site.url}/private/A-1")
    assert result.outcome is Outcome.ACCEPTED


@pytest.mark.parametrize("status", [503, 429])
async def test_robots_5xx_disallows_everything(
    site: DemoSiteServer, fetcher: Fetcher, status: int
) -> None:
    site.state.robots_status = status
    result = await fetcher.fetch("demo", f"{site.url}/jsonld/A-1")
    # Not "disallowed": robots.txt said nothing, so the listing is tried again sooner.
    assert result.outcome is Outcome.ROBOTS_UNREACHABLE
    assert site.state.hits("/jsonld/") == []


async def test_robots_is_read_once_per_host(site: DemoSiteServer, fetcher: Fetcher) -> None:
    await asyncio.gather(*(fetcher.fetch("demo", f"{site.url}/jsonld/A-{n}") for n in range(4)))
    await fetcher.fetch("demo", f"{site.url}/jsonld/A-9")
    assert len(site.state.hits("/robots.txt")) == 1


async def test_an_unreachable_robots_txt_disallows(
    crawler_settings: CrawlerSettings, redis_client: aioredis.Redis
) -> None:
    with DemoSiteServer() as gone:
        url = gone.url
    competitors = {"demo": Competitor(name="Demo", domains=["127.0.0.1"])}
    fetcher = Fetcher(crawler_settings, redis_client, competitors)
    try:
        result = await fetcher.fetch("demo", f"{url}/jsonld/A-1")
    finally:
        await fetcher.close()
    assert result.outcome is Outcome.ROBOTS_UNREACHABLE


async def test_redirects_within_the_domains_are_followed(
    site: DemoSiteServer, fetcher: Fetcher
) -> None:
    result = await fetcher.fetch("demo", f"{site.url}/redirect?to=/jsonld/A-1")
    assert result.outcome is Outcome.ACCEPTED
    assert result.url == f"{site.url}/jsonld/A-1"


async def test_a_redirect_out_of_the_domains_is_refused(
    site: DemoSiteServer, fetcher: Fetcher
) -> None:
    elsewhere = site.url.replace("127.0.0.1", "localhost") + "/jsonld/A-1"
    result = await fetcher.fetch("demo", f"{site.url}/redirect?to={elsewhere}")
    assert result.outcome is Outcome.OFF_DOMAIN
    assert site.state.hits("/jsonld/") == []


async def test_loopback_is_refused_unless_allowed(
    site: DemoSiteServer, redis_client: aioredis.Redis, competitors: dict[str, Competitor]
) -> None:
    strict = CrawlerSettings(_env_file=None)
    fetcher = Fetcher(strict, redis_client, competitors)
    try:
        result = await fetcher.fetch("demo", f"{site.url}/jsonld/A-1")
    finally:
        await fetcher.close()
    assert result.outcome is Outcome.PRIVATE_ADDRESS
    assert site.state.requests == []


async def test_5xx_is_retried_after_retry_after_seconds(
    site: DemoSiteServer, fetcher: Fetcher
) -> None:
    started = time.monotonic()
    result = await fetcher.fetch("demo", f"{site.url}/flaky/2/A-1")
    assert result.outcome is Outcome.ACCEPTED
    assert len(site.state.hits("/flaky/")) == 3
    assert time.monotonic() - started >= 2.0  # two Retry-After: 1


async def test_retry_after_as_an_http_date(site: DemoSiteServer, fetcher: Fetcher) -> None:
    started = time.monotonic()
    result = await fetcher.fetch("demo", f"{site.url}/flaky/1/A-1?retry_after=date")
    assert result.outcome is Outcome.ACCEPTED
    assert time.monotonic() - started >= 1.0  # the date is 2 s ahead, at one-second precision


async def test_429_is_retried(site: DemoSiteServer, fetcher: Fetcher) -> None:
    site.state.rate_limit_per_second = 1
    first, second = await asyncio.gather(
        fetcher.fetch("demo", f"{site.url}/jsonld/A-1"),
        fetcher.fetch("demo", f"{site.url}/jsonld/A-2"),
    )
    assert (first.outcome, second.outcome) == (Outcome.ACCEPTED, Outcome.ACCEPTED)
    assert len(site.state.hits("/jsonld/")) == 3  # one 429, retried after Retry-After: 1


async def test_a_retry_after_pauses_every_worker_for_that_domain(
    site: DemoSiteServer,
    fetcher: Fetcher,
    crawler_settings: CrawlerSettings,
    redis_client: aioredis.Redis,
    competitors: dict[str, Competitor],
) -> None:
    # Only the request told used to wait: the rest of the fleet went on at full rate.
    other_worker = Fetcher(crawler_settings, redis_client, competitors)
    try:
        told = asyncio.create_task(fetcher.fetch("demo", f"{site.url}/flaky/1/A-1"))
        deadline = time.monotonic() + 5
        while True:  # until the 503's Retry-After: 1 is shared with the fleet
            seconds, micros = await redis_client.time()
            tat = await redis_client.get(keys.rate("127.0.0.1"))
            if tat is not None and int(tat) > seconds * 1_000_000 + micros + 500_000:
                break
            if time.monotonic() > deadline:
                pytest.fail("the domain's next slot never moved past the Retry-After")
            await asyncio.sleep(0.01)
        await other_worker.fetch("demo", f"{site.url}/jsonld/B-1")
        await told
    finally:
        await other_worker.close()
    [refused] = site.state.hits("/flaky/")[:1]
    [asked] = site.state.hits("/jsonld/")
    assert asked - refused >= 0.9


async def test_requests_waiting_for_their_slot_obey_an_edit_of_the_competitors(
    site: DemoSiteServer, crawler_settings: CrawlerSettings, redis_client: aioredis.Redis
) -> None:
    # Removed while its requests waited, a competitor was still fetched for a minute.
    slow = Competitor(name="Demo", domains=["127.0.0.1"], requests_per_second=Decimal(1))
    fetcher = Fetcher(crawler_settings, redis_client, {"demo": slow})
    try:
        waiting = [
            asyncio.create_task(fetcher.fetch("demo", f"{site.url}/jsonld/A-{n}")) for n in range(3)
        ]
        while not site.state.hits("/jsonld/"):
            await asyncio.sleep(0.01)
        fetcher.use_competitors({})  # removed from competitors.yaml
        results = await asyncio.gather(*waiting)
    finally:
        await fetcher.close()
    assert sorted(result.outcome for result in results) == [
        Outcome.ACCEPTED,
        Outcome.UNKNOWN_LISTING,
        Outcome.UNKNOWN_LISTING,
    ]
    assert len(site.state.hits("/jsonld/")) == 1


def _connections_to(port: int) -> int:
    """This process's established TCP connections to ``port`` on 127.0.0.1, from the
    kernel's table (the demo site's own sockets have it as their local port)."""
    with open("/proc/net/tcp") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    wanted = f"0100007F:{port:04X}"
    mine = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # the listing's own, closed by now
            mine.add(os.readlink(f"/proc/self/fd/{fd}"))
    return sum(
        1 for row in rows if row[2] == wanted and row[3] == "01" and f"socket:[{row[9]}]" in mine
    )


@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads Linux's /proc")
async def test_an_edit_closes_the_connections_no_competitor_uses_any_more(
    site: DemoSiteServer, crawler_settings: CrawlerSettings, redis_client: aioredis.Redis
) -> None:
    # A route per user agent, proxy and headers: before, every edit left the old one's
    # connections open for the life of the worker.
    port = urlsplit(site.url).port
    assert port is not None
    first = Competitor(name="Demo", domains=["127.0.0.1"], user_agent="PricingBot/1")
    fetcher = Fetcher(crawler_settings, redis_client, {"demo": first})
    try:
        assert (await fetcher.fetch("demo", f"{site.url}/jsonld/A-1")).outcome is Outcome.ACCEPTED
        assert _connections_to(port) == 1  # kept alive for the next request
        fetcher.use_competitors({"demo": first.model_copy(update={"user_agent": "PricingBot/2"})})
        assert (await fetcher.fetch("demo", f"{site.url}/jsonld/A-2")).outcome is Outcome.ACCEPTED
        for _ in range(100):  # the server notices the close a moment later
            if _connections_to(port) == 1:
                break
            await asyncio.sleep(0.01)
        assert _connections_to(port) == 1  # the new route's; the old one's is closed
        fetcher.use_competitors({"demo": first})  # an edit undone: a route of its own again
        assert (await fetcher.fetch("demo", f"{site.url}/jsonld/A-3")).outcome is Outcome.ACCEPTED
    finally:
        await fetcher.close()
    assert len(site.state.hits("/jsonld/")) == 3


async def test_give_up_after_the_attempts(site: DemoSiteServer, fetcher: Fetcher) -> None:
    result = await fetcher.fetch("demo", f"{site.url}/flaky/9/A-1")
    assert result.outcome is Outcome.SERVER_ERROR
    assert len(site.state.hits("/flaky/")) == 3


def test_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30
    assert parse_retry_after(format_datetime(now - timedelta(hours=1), usegmt=True), now) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


async def test_two_workers_share_one_domain_rate(
    site: DemoSiteServer, crawler_settings: CrawlerSettings, clean_redis: str
) -> None:
    """Two fetchers with their own Redis connections, as two processes would have."""
    rate = Decimal(20)
    competitors = {"demo": Competitor(name="Demo", domains=["127.0.0.1"], requests_per_second=rate)}
    clients = [aioredis.Redis.from_url(clean_redis) for _ in range(2)]
    fetchers = [Fetcher(crawler_settings, client, competitors) for client in clients]
    try:
        await asyncio.gather(*(f.fetch("demo", f"{site.url}/jsonld/warm") for f in fetchers))
        results = await asyncio.gather(
            *(
                fetchers[index % 2].fetch("demo", f"{site.url}/jsonld/S-{index}")
                for index in range(20)
            )
        )
    finally:
        for fetcher, client in zip(fetchers, clients, strict=True):
            await fetcher.close()
            await client.aclose()
    assert {result.outcome for result in results} == {Outcome.ACCEPTED}
    arrivals = sorted(site.state.hits("/jsonld/S-"))
    observed_rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    assert observed_rate <= float(rate) * 1.05
    assert observed_rate >= float(rate) * 0.25  # paced, not serialised by something else


async def test_two_workers_share_one_domain_concurrency(
    site: DemoSiteServer, crawler_settings: CrawlerSettings, clean_redis: str
) -> None:
    competitors = {
        "demo": Competitor(
            name="Demo", domains=["127.0.0.1"], requests_per_second=Decimal(100), concurrency=2
        )
    }
    clients = [aioredis.Redis.from_url(clean_redis) for _ in range(2)]
    fetchers = [Fetcher(crawler_settings, client, competitors) for client in clients]
    started = time.monotonic()
    try:
        results = await asyncio.gather(
            *(fetchers[n % 2].fetch("demo", f"{site.url}/slow/0.4/C-{n}") for n in range(4))
        )
    finally:
        for fetcher, client in zip(fetchers, clients, strict=True):
            await fetcher.close()
            await client.aclose()
    assert {result.outcome for result in results} == {Outcome.ACCEPTED}
    assert time.monotonic() - started >= 0.8  # two at a time, 0.4 s each
    arrivals = sorted(site.state.hits("/slow/"))
    assert arrivals[2] - arrivals[0] >= 0.35  # the third waited for a slot


async def test_a_slot_too_far_away_holds_no_lease(redis_client: aioredis.Redis) -> None:
    gate = DomainGate(redis_client, max_wait_seconds=0.5)
    async with gate.hold("example.test", 2, 10.0, 1.0):
        assert await redis_client.zcard(keys.slots("example.test")) == 1
        # The next slot is 1 s away, further than the 0.5 s this gate waits.
        with pytest.raises(RateLimitTooFar):
            async with gate.hold("example.test", 2, 10.0, 1.0):
                pytest.fail("a slot too far away was granted")
        assert await redis_client.zcard(keys.slots("example.test")) == 1
    await gate.close()
    assert await redis_client.zcard(keys.slots("example.test")) == 0


# -- hostile servers: a clear outcome, in bounded time ------------------------------------------


async def test_a_50_mb_body_is_cut_off(site: DemoSiteServer, fetcher: Fetcher) -> None:
    started = time.monotonic()
    result = await fetcher.fetch("demo", f"{site.url}/huge")
    assert result.outcome is Outcome.TOO_LARGE
    assert time.monotonic() - started < 30  # cut off, not read to the end (a hang would hit this)


async def test_an_infinite_redirect_loop_stops(site: DemoSiteServer, fetcher: Fetcher) -> None:
    result = await fetcher.fetch("demo", f"{site.url}/loop/0")
    assert result.outcome is Outcome.TOO_MANY_REDIRECTS
    assert len(site.state.hits("/loop/")) == 6  # the first request and five redirects


async def test_a_dripping_server_times_out(
    site: DemoSiteServer, crawler_settings: CrawlerSettings, redis_client: aioredis.Redis
) -> None:
    competitors = {"demo": Competitor(name="Demo", domains=["127.0.0.1"], requests_per_second=50)}
    once = crawler_settings.model_copy(update={"max_attempts": 1})
    fetcher = Fetcher(once, redis_client, competitors)
    started = time.monotonic()
    try:
        result = await fetcher.fetch("demo", f"{site.url}/drip")
    finally:
        await fetcher.close()
    assert result.outcome is Outcome.TIMEOUT
    assert time.monotonic() - started < once.total_timeout + 20  # bounded, not hung


async def test_robots_crawl_delay_paces_the_domain(site: DemoSiteServer, fetcher: Fetcher) -> None:
    site.state.robots_txt = "User-agent: *\nCrawl-delay: 0.5\n"
    for sku in ("A-1", "A-2", "A-3"):
        await fetcher.fetch("demo", f"{site.url}/jsonld/{sku}")
    first, *_, last = site.state.hits("/jsonld/")
    # Two gaps of half a second, less the arrival jitter of a first, new connection.
    assert last - first >= 0.9


async def test_a_lease_given_back_rides_along_with_the_next_request(
    redis_client: aioredis.Redis,
) -> None:
    gate = DomainGate(redis_client)
    leases = keys.slots("example.test")
    try:
        async with gate.hold("example.test", 4, 10.0, 0.001):
            pass
        async with gate.hold("example.test", 4, 10.0, 0.001):
            # The first lease went with this request's own acquisition.
            assert await redis_client.zcard(leases) == 1
    finally:
        await gate.close()
    assert await redis_client.zcard(leases) == 0


async def test_a_lease_given_back_goes_on_its_own_soon(redis_client: aioredis.Redis) -> None:
    gate = DomainGate(redis_client)
    leases = keys.slots("example.test")
    async with gate.hold("example.test", 4, 10.0, 0.001):
        pass
    assert await redis_client.zcard(leases) == 1  # not yet: it waits for a request to carry it
    await asyncio.sleep(RELEASE_DELAY_SECONDS + 0.1)
    assert await redis_client.zcard(leases) == 0


async def test_a_competitor_proxy_carries_the_request(
    site: DemoSiteServer, crawler_settings: CrawlerSettings, redis_client: aioredis.Redis
) -> None:
    request_lines: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        request_lines.append(head.split(b"\r\n", 1)[0])
        body = b"<html><body><span>via the proxy</span></body></html>"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(proxy, "127.0.0.1", 0)
    proxy_port = listener.sockets[0].getsockname()[1]
    competitor = Competitor(
        name="Proxied",
        domains=["127.0.0.1"],
        requests_per_second=Decimal(100),
        proxy=f"http://127.0.0.1:{proxy_port}",
    )
    fetcher = Fetcher(crawler_settings, redis_client, {"proxied": competitor})
    try:
        result = await fetcher.fetch("proxied", f"{site.url}/jsonld/P-1")
    finally:
        await fetcher.close()
        listener.close()
    assert result.outcome is Outcome.ACCEPTED
    assert b"via the proxy" in result.body
    # robots.txt and the page, both asked of the proxy with their absolute URLs
    assert request_lines == [
        f"GET {site.url}/robots.txt HTTP/1.1".encode(),
        f"GET {site.url}/jsonld/P-1 HTTP/1.1".encode(),
    ]
    assert site.state.hits("/jsonld/") == []
