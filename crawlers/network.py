"""Where a crawler may connect: the address policy, and the names it is applied to.

A competitor's host name must not lead a worker to our own network (SSRF). Checking the
name's addresses before the request and letting the HTTP client resolve it again to
connect leaves a gap: a name can answer a public address to the check and a private one
to the connection (DNS rebinding). So the name is resolved once, where the connection is
opened (:class:`crawlers.transport.VettedTransport`): every address it resolves to is
vetted, and the socket goes to one of those very addresses.

Through a proxy, the proxy resolves the competitor's host; its address cannot be vetted
here, so the fetcher checks the name before the request instead.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]


class HostNotFound(Exception):
    """A host name did not resolve; nothing was connected."""

    def __init__(self, host: str, reason: OSError) -> None:
        super().__init__(f"{host}: {reason}")
        self.host = host
        self.reason = reason


class AddressRefused(Exception):
    """A host resolved to an address the policy refuses; nothing was connected."""

    def __init__(self, host: str, address: IPAddress) -> None:
        super().__init__(f"{host} resolves to {address}")
        self.host = host
        self.address = address


async def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses of ``host`` (itself, when it is an address literal)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Public addresses only, plus the private networks the settings allow."""

    allowed_private_networks: Sequence[IPNetwork] = ()

    def allows(self, address: IPAddress) -> bool:
        return address.is_global or any(
            address in network for network in self.allowed_private_networks
        )

    def first_refused(self, addresses: Iterable[IPAddress]) -> IPAddress | None:
        return next((a for a in addresses if not self.allows(a)), None)
