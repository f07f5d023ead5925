"""The crawler's HTTP/1.1 transport against a real socket server that misbehaves on cue."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from ipaddress import ip_network

import httpx
import pytest

from crawlers.network import AddressPolicy
from crawlers.transport import MAX_HEAD_BYTES, VettedTransport

pytestmark = pytest.mark.anyio
LOOPBACK_ALLOWED = AddressPolicy((ip_network("127.0.0.0/8"),))
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """A TCP server whose every connection runs ``handler``; counts the connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.url = ""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client went away, or the test is over
        finally:
            writer.close()


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[RawServer]:
    server = RawServer(handler)
    listener = await asyncio.start_server(server._serve, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    server.url = f"http://127.0.0.1:{port}"
    try:
        yield server
    finally:
        listener.close()


@asynccontextmanager
async def client(timeout: float = 5.0) -> AsyncIterator[httpx.AsyncClient]:
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=4)
    transport = VettedTransport(LOOPBACK_ALLOWED, limits)
    async with httpx.AsyncClient(transport=transport, timeout=timeout) as http:
        yield http


def answer(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    head = [f"HTTP/1.1 {status}", *headers]
    if not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def keep_answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer(b"<p>19.99</p>"))
        await writer.drain()


async def test_connections_are_kept_alive_and_reused() -> None:
    async with raw_server(keep_answering) as server, client() as http:
        for _ in range(5):
            response = await http.get(server.url + "/p")
            assert response.text == "<p>19.99</p>"
    assert server.connections == 1


async def test_a_gzip_body_is_decompressed() -> None:
    page = b"<html>" + b"price 19.99 " * 500 + b"</html>"

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        assert b"gzip" in request.lower()  # httpx asks for it
        writer.write(answer(gzip.compress(page), "Content-Encoding: gzip"))
        await writer.drain()

    async with raw_server(handler) as server, client() as http:
        response = await http.get(server.url + "/p")
    assert response.content == page


async def test_a_chunked_body_is_joined() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        chunks = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        writer.write(answer(chunks, "Transfer-Encoding: chunked"))
        await writer.drain()

    async with raw_server(handler) as server, client() as http:
        assert (await http.get(server.url + "/p")).text == "hello world"


async def test_a_body_that_runs_until_the_server_closes() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nall of it")
        await writer.drain()

    async with raw_server(handler) as server, client() as http:
        assert (await http.get(server.url + "/p")).text == "all of it"


async def test_an_idle_connection_the_server_closed_is_replaced() -> None:
    async def one_answer_per_connection(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer(b"ok"))  # says nothing of closing, then closes
        await writer.drain()

    async with raw_server(one_answer_per_connection) as server, client() as http:
        first = await http.get(server.url + "/p")
        await asyncio.sleep(0.05)
        second = await http.get(server.url + "/p")
        assert (first.text, second.text) == ("ok", "ok")
        # Even when the close is not noticed before the request goes out.
        third = await http.get(server.url + "/p")
        assert third.text == "ok"
    assert server.connections == 3


async def test_a_body_cut_short_is_a_read_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
        await writer.drain()

    async with raw_server(handler) as server, client() as http:
        with pytest.raises(httpx.ReadError):
            await http.get(server.url + "/p")


async def test_garbage_is_a_protocol_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"\x00\xff garbage, not HTTP\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    async with raw_server(handler) as server, client() as http:
        with pytest.raises(httpx.RemoteProtocolError, match="malformed response"):
            await http.get(server.url + "/p")


async def test_an_endless_head_is_cut_off() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n")
        for n in range(MAX_HEAD_BYTES // 20):
            writer.write(f"X-Filler-{n}: {'x' * 20}\r\n".encode())
            await writer.drain()
        await asyncio.sleep(1)

    async with raw_server(handler) as server, client() as http:
        with pytest.raises(httpx.RemoteProtocolError, match="head too large"):
            await http.get(server.url + "/p")


async def test_a_silent_server_is_a_read_timeout() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await asyncio.sleep(2)

    async with raw_server(handler) as server, client(timeout=0.2) as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get(server.url + "/p")


async def test_a_large_body_is_read_as_fast_as_it_is_consumed() -> None:
    body = b"x" * (4 * 1024 * 1024)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(answer(body))
        await writer.drain()

    async with raw_server(handler) as server, client() as http:
        async with http.stream("GET", server.url + "/p") as response:
            received = 0
            async for chunk in response.aiter_raw():
                received += len(chunk)
        assert received == len(body)
        # Stopping early closes the connection instead of reading the rest.
        async with http.stream("GET", server.url + "/p") as response:
            async for _ in response.aiter_raw():
                break
    assert server.connections == 2


async def test_only_get_and_head_are_sent() -> None:
    async with raw_server(keep_answering) as server, client() as http:
        with pytest.raises(httpx.UnsupportedProtocol, match="GET and HEAD only"):
            await http.post(server.url + "/p", content=b"x")
        head = await http.head(server.url + "/p")
        assert head.status_code == 200
        assert head.content == b""
