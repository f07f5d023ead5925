"""The demo competitor site on 127.0.0.1, a real Redis, and crawler parts wired to both."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from ipaddress import ip_network

import pytest
import redis.asyncio as aioredis

from crawlers.demo_site import DemoSiteServer
from crawlers.fetch import Fetcher
from crawlers.settings import CrawlerSettings
from pricing_service.rules.model import Competitor, PageField, PageFields

LOOPBACK = "127.0.0.1"


@pytest.fixture
def site() -> Iterator[DemoSiteServer]:
    with DemoSiteServer() as server:
        yield server


@pytest.fixture
def crawler_settings() -> CrawlerSettings:
    """Fast and small limits, so hostile servers cost the tests little time."""
    return CrawlerSettings(
        _env_file=None,
        allowed_private_networks=[ip_network("127.0.0.0/8")],
        connect_timeout=1.0,
        read_timeout=1.0,
        total_timeout=2.0,
        max_body_bytes=1024 * 1024,
        max_attempts=3,
        backoff_base=0.05,
        backoff_cap=0.2,
        max_retry_after=5.0,
        claim_idle_seconds=0.2,
        max_deliveries=3,
    )


@pytest.fixture
def competitors() -> dict[str, Competitor]:
    plain_page = PageFields(price=PageField(css="span.price-now"))
    return {
        "demo": Competitor(
            name="Demo Shop",
            domains=[LOOPBACK],
            requests_per_second=Decimal(200),
            concurrency=8,
            extraction={LOOPBACK: plain_page},
        ),
    }


@pytest.fixture
async def redis_client(clean_redis: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(clean_redis)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def fetcher(
    crawler_settings: CrawlerSettings,
    redis_client: aioredis.Redis,
    competitors: dict[str, Competitor],
) -> AsyncIterator[Fetcher]:
    instance = Fetcher(crawler_settings, redis_client, competitors)
    try:
        yield instance
    finally:
        await instance.close()
