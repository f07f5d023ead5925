"""The address policy applied where the socket is opened (DNS rebinding cannot slip by)."""

from __future__ import annotations

from decimal import Decimal
from ipaddress import ip_address, ip_network

import httpx
import pytest
import redis.asyncio as aioredis

from crawlers.demo_site import DemoSiteServer
from crawlers.fetch import Fetcher
from crawlers.network import AddressPolicy, AddressRefused, IPAddress
from crawlers.outcome import Outcome
from crawlers.settings import CrawlerSettings
from crawlers.transport import VettedTransport
from pricing_service.rules.model import Competitor

pytestmark = pytest.mark.anyio
LIMITS = httpx.Limits(max_connections=4, max_keepalive_connections=2)
LOOPBACK_ALLOWED = AddressPolicy((ip_network("127.0.0.0/8"),))


class Answers:
    """A name server for the test: every name answers the given addresses."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = [ip_address(a) for a in addresses]
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.asked.append(host)
        return self.addresses


async def _get(transport: VettedTransport, url: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=transport) as client:
        return await client.get(url)


async def test_a_name_is_resolved_once_and_connected_to_the_vetted_address(
    site: DemoSiteServer,
) -> None:
    answers = Answers("127.0.0.1")
    url = site.url.replace("127.0.0.1", "shop.example") + "/jsonld/A-1"
    response = await _get(VettedTransport(LOOPBACK_ALLOWED, LIMITS, answers), url)
    assert response.status_code == 200
    assert "A-1" in response.text
    assert answers.asked == ["shop.example"]
    assert site.state.hits("/jsonld/") != []


async def test_a_private_answer_is_refused_before_any_connection(site: DemoSiteServer) -> None:
    url = site.url.replace("127.0.0.1", "shop.example") + "/jsonld/A-1"
    with pytest.raises(AddressRefused, match=r"shop\.example resolves to 127\.0\.0\.1"):
        await _get(VettedTransport(AddressPolicy(), LIMITS, Answers("127.0.0.1")), url)
    assert site.state.requests == []


async def test_a_name_mixing_public_and_private_addresses_is_refused(site: DemoSiteServer) -> None:
    # A rebinding name may hand out both; trying them in turn would reach the private one.
    answers = Answers("93.184.215.14", "10.0.0.7")
    url = site.url.replace("127.0.0.1", "shop.example") + "/"
    with pytest.raises(AddressRefused, match=r"10\.0\.0\.7"):
        await _get(VettedTransport(AddressPolicy(), LIMITS, answers), url)
    assert site.state.requests == []


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("93.184.215.14", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("169.254.169.254", False),  # cloud metadata
        ("::1", False),
        ("fd00::1", False),
        ("2606:4700::1111", True),
    ],
)
def test_only_public_addresses_pass_by_default(address: str, allowed: bool) -> None:
    assert AddressPolicy().allows(ip_address(address)) is allowed


async def test_a_name_that_does_not_resolve_is_a_network_error_not_a_robots_refusal(
    redis_client: aioredis.Redis,
) -> None:
    competitor = Competitor(
        name="Nowhere",
        domains=["nowhere.invalid"],
        requests_per_second=Decimal(100),
    )
    fetcher = Fetcher(CrawlerSettings(_env_file=None), redis_client, {"nowhere": competitor})
    try:
        result = await fetcher.fetch("nowhere", "http://nowhere.invalid/p/1")
    finally:
        await fetcher.close()
    assert result.outcome is Outcome.NETWORK_ERROR
    assert result.detail.startswith("cannot resolve nowhere.invalid")
