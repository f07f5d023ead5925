"""The crawler's HTTP/1.1 transport for httpx: vetted addresses, pooled connections.

httpx does the HTTP client's work: requests, headers, redirects (followed by the fetcher),
decompression and the response API. This module is the part underneath, the one httpx
lets a program replace (``httpx.AsyncBaseTransport``). httpx's default transport,
httpcore over anyio with the pure-Python h11 parser, cost a worker about 0.6 ms of CPU a
page (about a third of it) against 0.06 ms for the exchange itself on an asyncio
connection; the crawler's throughput goal needs that back. So a connection here is an
``asyncio.Protocol`` that feeds ``httptools`` (llhttp, the parser uvicorn uses), and the
pool is a list of idle connections per origin.

Where the socket goes is vetted as before (:mod:`crawlers.network`): the host name is
resolved once, every address it resolves to must pass the policy, and the socket connects
to one of those very addresses, so a name cannot answer differently to a check (DNS
rebinding). TLS verifies the certificate against the host name.

What a hostile server can do is bounded: the response head is capped (``MAX_HEAD_BYTES``),
a body is read only as fast as the caller consumes it (reading pauses past
``READ_BUFFER_BYTES``), and every wait for the network has the request's timeout. The
caller caps the body's size and the whole exchange's time.

Only GET and HEAD are sent: a crawler asks for nothing else.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, cast

import httptools
import httpx

from crawlers.network import AddressPolicy, AddressRefused, HostNotFound, Resolver, resolve

#: A response's status line and headers may not exceed this.
MAX_HEAD_BYTES = 64 * 1024
#: Reading from the socket pauses while this much body waits for the caller.
READ_BUFFER_BYTES = 256 * 1024
_METHODS = frozenset({"GET", "HEAD"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
Origin = tuple[str, str, int]


class _Exchange(asyncio.Protocol):
    """One connection, one response at a time: the socket's bytes go to the parser, the
    parser's events to whoever waits for them."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._error: Exception | None = None
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.reason = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_done = False
        self.complete = False
        self.received_any = False
        self._head_bytes = 0
        self._body: deque[bytes] = deque()
        self._buffered = 0
        self._paused = False
        self._delimited = False  # by a length or chunks, rather than by closing
        self._keep_alive = False

    # -- asyncio.Protocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        if not self.head_done:
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"malformed response: {exc}"))
            return
        if not self.head_done and self._head_bytes > MAX_HEAD_BYTES:
            self._fail(httpx.RemoteProtocolError("response head too large"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.head_done and not self.complete and not self._delimited:
            self.complete = True  # the body ran until the server closed, as announced
        elif not self.complete:
            reason = f": {exc}" if exc else ""
            self._error = self._error or httpx.ReadError(f"server closed the connection{reason}")
        self._wake()

    # -- httptools callbacks ----------------------------------------------------------

    def on_status(self, reason: bytes) -> None:
        self.reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))  # httptools joins a header split across reads

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        # Asked now: the parser forgets it once the message is complete.
        self._keep_alive = self._parser.should_keep_alive()
        for name, value in self.headers:
            lowered = name.lower()
            if lowered == b"content-length" or (
                lowered == b"transfer-encoding" and b"chunked" in value.lower()
            ):
                self._delimited = True
        if self.status >= 200:
            self.head_done = True
            self._wake()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        self._buffered += len(body)
        if self._buffered > READ_BUFFER_BYTES and not self._paused and self.transport:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.status < 200:  # 100 Continue and the like: the real answer follows
            self._reset()
            return
        self.complete = True
        self._wake()

    # -- for the transport ------------------------------------------------------------

    @property
    def usable(self) -> bool:
        """Connected, and not closed by either side as far as the loop has seen."""
        transport = self.transport
        return not self.closed and transport is not None and not transport.is_closing()

    @property
    def reusable(self) -> bool:
        """Usable for another request: this one's response read whole, kept alive."""
        return (
            self.usable
            and self.complete
            and not self._body
            and self._error is None
            and self._keep_alive
        )

    def send(self, head: bytes) -> None:
        assert self.transport is not None
        self._reset()
        self._error = None
        self.transport.write(head)

    async def head(self, timeout: float | None) -> None:
        while not self.head_done:
            await self._wait(timeout)

    async def chunks(self, timeout: float | None) -> AsyncIterator[bytes]:
        while True:
            if self._body:
                chunk = self._body.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered <= READ_BUFFER_BYTES // 2 and self.transport:
                    self._paused = False
                    self.transport.resume_reading()
                yield chunk
            elif self.complete:
                return
            else:
                await self._wait(timeout)

    def end_head_only(self) -> None:
        """A HEAD response has no body whatever its headers say; the parser cannot be
        told so, so the connection is not reused, and whatever came after the head is
        dropped."""
        self._body.clear()
        self.complete = True
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def _wait(self, timeout: float | None) -> None:
        if self._error is not None:
            raise self._error
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        try:
            async with asyncio.timeout(timeout):
                await self._waiter
        except TimeoutError:
            raise httpx.ReadTimeout("timed out waiting for the server") from None
        finally:
            self._waiter = None
        if self._error is not None:
            raise self._error

    def _fail(self, error: Exception) -> None:
        self._error = error
        self.close()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class _Body(httpx.AsyncByteStream):
    """A response's body: its connection goes back to the pool once read to the end,
    and is closed when the caller stops early."""

    def __init__(self, pool: VettedTransport, exchange: _Exchange, timeout: float | None):
        self._pool = pool
        self._exchange = exchange
        self._timeout = timeout
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._exchange.chunks(self._timeout):
            yield chunk
        self._finish()

    async def aclose(self) -> None:
        self._finish()

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._pool.give_back(self._exchange)


class VettedTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 to addresses the policy allows, with a pool of kept-alive connections.

    ``limits``: at most ``max_connections`` open at once (a request waits up to the pool
    timeout for one, then fails with ``httpx.PoolTimeout``), ``max_keepalive_connections``
    idle ones kept, each for up to ``keepalive_expiry`` seconds.
    """

    def __init__(
        self, policy: AddressPolicy, limits: httpx.Limits, resolver: Resolver = resolve
    ) -> None:
        self._policy = policy
        self._resolve = resolver
        self._ssl_context = httpx.create_ssl_context(trust_env=False)
        self._idle: dict[Origin, list[_Exchange]] = {}
        self._idle_count = 0
        self._max_idle = limits.max_keepalive_connections or 0
        self._expiry = limits.keepalive_expiry
        self._slots = asyncio.Semaphore(limits.max_connections) if limits.max_connections else None
        self._open: set[_Exchange] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        method = request.method.upper()
        if method not in _METHODS:
            raise httpx.UnsupportedProtocol(f"the crawler sends GET and HEAD only, not {method}")
        url = request.url
        scheme = url.scheme
        if scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported scheme {scheme!r}")
        origin: Origin = (scheme, url.host, url.port or _DEFAULT_PORTS[scheme])
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        head = _request_head(request, method)
        await self._take_slot(timeouts.get("pool"))
        try:
            exchange = await self._exchange_for(origin, head, timeouts)
        except BaseException:
            self._free_slot()
            raise
        if method == "HEAD":
            exchange.end_head_only()
        return httpx.Response(
            exchange.status,
            headers=exchange.headers,
            stream=_Body(self, exchange, timeouts.get("read")),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": exchange.reason},
        )

    async def aclose(self) -> None:
        for exchange in list(self._open):
            exchange.close()
        self._open.clear()
        self._idle.clear()
        self._idle_count = 0

    # -- the pool -------------------------------------------------------------------------

    async def _exchange_for(
        self, origin: Origin, head: bytes, timeouts: dict[str, float | None]
    ) -> _Exchange:
        """A connection that has sent the request and received the response head."""
        reused = self._reuse(origin)
        if reused is not None:
            try:
                return await self._send(reused, head, timeouts)
            except (httpx.ReadError, httpx.RemoteProtocolError):
                # The server closed the idle connection as the request left: nothing of
                # a response came back, so the GET is sent again on a new connection.
                if reused.received_any:
                    raise
        return await self._send(await self._connect(origin, timeouts), head, timeouts)

    async def _send(
        self, exchange: _Exchange, head: bytes, timeouts: dict[str, float | None]
    ) -> _Exchange:
        try:
            exchange.send(head)
            await exchange.head(timeouts.get("read"))
        except BaseException:
            self._discard(exchange)
            raise
        return exchange

    def _reuse(self, origin: Origin) -> _Exchange | None:
        idle = self._idle.get(origin)
        now = time.monotonic()
        while idle:
            exchange = idle.pop()
            self._idle_count -= 1
            expired = self._expiry is not None and now - exchange.idle_since > self._expiry
            if not expired and exchange.usable:
                return exchange
            self._discard(exchange)
        return None

    def give_back(self, exchange: _Exchange) -> None:
        """A response is done with: keep its connection for the next request, or close it."""
        self._free_slot()
        if not exchange.reusable or self._idle_count >= self._max_idle:
            self._discard(exchange)
            return
        exchange.idle_since = time.monotonic()
        self._idle.setdefault(exchange.origin, []).append(exchange)
        self._idle_count += 1

    def _discard(self, exchange: _Exchange) -> None:
        exchange.close()
        self._open.discard(exchange)

    async def _take_slot(self, timeout: float | None) -> None:
        if self._slots is None:
            return
        try:
            async with asyncio.timeout(timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no free connection") from None

    def _free_slot(self) -> None:
        if self._slots is not None:
            self._slots.release()

    async def _connect(self, origin: Origin, timeouts: dict[str, float | None]) -> _Exchange:
        scheme, host, port = origin
        try:
            addresses = await self._resolve(host, port)
        except OSError as exc:
            raise HostNotFound(host, exc) from exc
        refused = self._policy.first_refused(addresses)
        if refused is not None:
            raise AddressRefused(host, refused)
        tls: dict[str, Any] = {}
        if scheme == "https":
            tls = {"ssl": self._ssl_context, "server_hostname": host.strip("[]")}
        loop = asyncio.get_running_loop()
        last_error: Exception = httpx.ConnectError(f"{host} has no address")
        for address in addresses:
            try:
                async with asyncio.timeout(timeouts.get("connect")):
                    _, exchange = await loop.create_connection(
                        lambda: _Exchange(origin), str(address), port, **tls
                    )
            except TimeoutError:
                last_error = httpx.ConnectTimeout(f"connecting to {host} ({address}) timed out")
                continue
            except (OSError, ssl.SSLError) as exc:
                last_error = httpx.ConnectError(f"{host} ({address}): {exc}")
                continue
            self._open.add(exchange)
            return exchange
        raise last_error


def _request_head(request: httpx.Request, method: str) -> bytes:
    target = request.url.raw_path or b"/"
    lines = [method.encode("ascii") + b" " + target + b" HTTP/1.1"]
    lines.extend(name + b": " + value for name, value in request.headers.raw)
    return b"\r\n".join(lines) + b"\r\n\r\n"
