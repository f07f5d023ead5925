"""Where a crawler may connect: the address policy, enforced when the socket is opened.

A competitor's host name must not lead a worker to our own network (SSRF). Checking the
name's addresses before the request and letting the HTTP client resolve it again to
connect leaves a gap: a name can answer a public address to the check and a private one
to the connection (DNS rebinding). So the name is resolved once, in the connection
itself (an httpcore network backend): every address it resolves to is vetted, and the
socket goes to one of those very addresses. TLS still verifies the certificate against
the host name, which httpcore passes to the handshake separately.

Through a proxy, the proxy resolves the competitor's host; its address cannot be vetted
here, so the fetcher checks the name before the request instead.
"""

from __future__ import annotations

import asyncio
import ipaddress
import select
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import httpcore
import httpx

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


class VettedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's default backend, connecting only to addresses the policy allows.

    Every address the name resolves to must pass: a name that mixes a public and a
    private address is refused rather than tried in turn.
    """

    def __init__(self, policy: AddressPolicy, resolver: Resolver = resolve) -> None:
        self._policy = policy
        self._resolve = resolver
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self._resolve(host, port)
        except OSError as exc:
            raise HostNotFound(host, exc) from exc
        refused = self._policy.first_refused(addresses)
        if refused is not None:
            raise AddressRefused(host, refused)
        last_error: Exception = httpcore.ConnectError(f"{host} has no address")
        for address in addresses:
            try:
                stream = await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
                return _SocketCachingStream(stream)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        raise last_error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("crawlers connect over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _SocketCachingStream(httpcore.AsyncNetworkStream):
    """An httpcore stream that knows its socket.

    Before every request httpcore asks each pooled connection whether its socket is
    readable (closed by the server). anyio answers by building all of the socket's
    attributes, the peer address among them, each time: about 7% of a worker's CPU. The
    socket is looked up once here instead.
    """

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: socket.socket | None = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        wrapped = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        return _SocketCachingStream(wrapped)

    def get_extra_info(self, info: str) -> object:
        if info == "socket":
            return self._socket
        if info == "is_readable":
            return _readable(self._socket)
        return self._inner.get_extra_info(info)


def _readable(sock: socket.socket | None) -> bool:
    """Whether reading would not block: data, or the peer closed. A closed socket is."""
    if sock is None or sock.fileno() < 0:
        return True
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class VettedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool that uses :class:`VettedBackend`.

    httpx does not take a network backend, so the pool it builds is replaced by the same
    pool with the backend (``tests/crawlers/test_network.py`` fails if that stops working).
    """

    def __init__(
        self, policy: AddressPolicy, limits: httpx.Limits, resolver: Resolver = resolve
    ) -> None:
        super().__init__(limits=limits, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=VettedBackend(policy, resolver),
        )
