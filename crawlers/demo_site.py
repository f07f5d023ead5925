"""``pricing demo-site``: a small competitor shop to crawl, for tests, demos and benchmarks.

A real HTTP server (Starlette on uvicorn) with one product page per SKU in four markup
styles, prices and stock that move over time, a robots.txt, a per-client rate limit
(429 with Retry-After) and fault injection. Paths:

- ``/jsonld/{sku}``, ``/microdata/{sku}``, ``/opengraph/{sku}``, ``/plain/{sku}`` (the last
  needs selectors: ``span.price-now``); ``/private/{sku}`` is disallowed by robots.txt;
- ``/captcha/{sku}``: a CAPTCHA wall dressed as the product page;
- ``/flaky/{failures}/{sku}``: 503 with ``Retry-After`` for the first ``failures`` requests
  (``?retry_after=date`` sends it as an HTTP date), then the page;
- ``/slow/{seconds}/{sku}``, ``/redirect?to=URL``, ``/loop/{n}`` (redirects forever),
  ``/huge`` (50 MB), ``/garbage`` (random bytes), ``/drip`` (a byte a second) and
  ``/wrong-charset/{sku}`` (Latin-1 bytes labelled UTF-8).

``SiteState`` holds what tests steer: fixed prices, robots.txt status, the rate limit,
random fault rates, and a log of requests.
"""

from __future__ import annotations

import asyncio
import html
import math
import os
import random
import threading
import time
import zlib
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from types import TracebackType
from typing import Self

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

STYLES = ("jsonld", "microdata", "opengraph", "plain")
CURRENCY = "USD"
#: Prices swing by up to this share around their base over one period.
PRICE_SWING = 0.15
HUGE_BODY_BYTES = 50 * 1024 * 1024
ROBOTS_TXT = "User-agent: *\nDisallow: /private/\n"


@dataclass
class SiteState:
    """What a test or the demo steers; mutable while the server runs."""

    period_seconds: float = 3600.0
    fixed_prices: dict[str, Decimal] = field(default_factory=dict)
    out_of_stock: set[str] = field(default_factory=set)
    robots_status: int = 200
    robots_txt: str = ROBOTS_TXT
    rate_limit_per_second: float = 0.0  # per client; 0: unlimited
    error_rate: float = 0.0
    slow_rate: float = 0.0
    captcha_rate: float = 0.0
    requests: list[tuple[float, str]] = field(default_factory=list)
    _failures_served: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    _recent: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))

    def price(self, sku: str, now: float | None = None) -> Decimal:
        if sku in self.fixed_prices:
            return self.fixed_prices[sku]
        seed = zlib.crc32(sku.encode())
        base = 10 + seed % 990
        phase = (seed % 628) / 100
        moment = time.time() if now is None else now
        swing = 1 + PRICE_SWING * math.sin(2 * math.pi * moment / self.period_seconds + phase)
        return Decimal(base * swing).quantize(Decimal("0.01"))

    def in_stock(self, sku: str, now: float | None = None) -> bool:
        if sku in self.out_of_stock:
            return False
        moment = time.time() if now is None else now
        return (zlib.crc32(sku.encode()) + int(moment / self.period_seconds * 8)) % 7 != 0

    def hits(self, prefix: str) -> list[float]:
        """Arrival times of the requests whose path starts with ``prefix``."""
        return [at for at, path in self.requests if path.startswith(prefix)]

    def over_rate_limit(self, client: str, now: float) -> bool:
        if self.rate_limit_per_second <= 0:
            return False
        recent = self._recent[client]
        while recent and recent[0] <= now - 1:
            recent.popleft()
        if len(recent) >= self.rate_limit_per_second:
            return True
        recent.append(now)
        return False


def product_page(state: SiteState, style: str, sku: str, *, captcha: bool = False) -> str:
    price = state.price(sku)
    in_stock = state.in_stock(sku)
    name = f"Demo product {html.escape(sku)}"
    schema_availability = "https://schema.org/" + ("InStock" if in_stock else "OutOfStock")
    stock_text = "In stock" if in_stock else "Out of stock"
    head = ""
    body = f"<h1>{name}</h1>"
    if style == "jsonld":
        head = (
            '<script type="application/ld+json">{"@context": "https://schema.org", '
            f'"@type": "Product", "name": "{name}", "sku": "{sku}", "offers": {{"@type": '
            f'"Offer", "price": "{price}", "priceCurrency": "{CURRENCY}", '
            f'"availability": "{schema_availability}"}}}}</script>'
        )
        body += f'<p class="price">${price}</p><p>{stock_text}</p>'
    elif style == "microdata":
        body = (
            '<div itemscope itemtype="https://schema.org/Product">'
            f'<h1 itemprop="name">{name}</h1><span itemprop="sku">{sku}</span>'
            '<div itemprop="offers" itemscope itemtype="https://schema.org/Offer">'
            f'<span itemprop="price" content="{price}">${price}</span>'
            f'<meta itemprop="priceCurrency" content="{CURRENCY}">'
            f'<link itemprop="availability" href="{schema_availability}"></div></div>'
        )
    elif style == "opengraph":
        head = (
            '<meta property="og:type" content="product">'
            f'<meta property="product:price:amount" content="{price}">'
            f'<meta property="product:price:currency" content="{CURRENCY}">'
            f'<meta property="product:availability" content="{stock_text.lower()}">'
            f'<meta property="product:retailer_item_id" content="{sku}">'
        )
        body += f"<p>${price}</p>"
    else:
        body += (
            f'<div class="buy"><span class="price-was">${price * 2}</span>'
            f'<span class="price-now">${price}</span>'
            f'<div id="stock">{stock_text}</div><span class="ref">{sku}</span></div>'
        )
    if captcha:
        body += (
            "<form action='/errors/validateCaptcha'><p>Enter the characters you see below. "
            "Sorry, we just need to make sure you're not a robot.</p></form>"
        )
    title = "Robot check" if captcha else f"{name} | Demo Shop"
    filler = "<p>" + "A sturdy product with a long description. " * 20 + "</p>"
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
        f"{head}</head><body><nav>Home / Products</nav>{body}{filler}</body></html>"
    )


def create_app(state: SiteState) -> ASGIApp:
    def page(request: Request, style: str, *, captcha: bool = False) -> Response:
        sku = request.path_params["sku"]
        return Response(product_page(state, style, sku, captcha=captcha), media_type="text/html")

    async def styled(request: Request) -> Response:
        style = request.path_params["style"]
        if style not in STYLES:
            return PlainTextResponse("no such page style", status_code=404)
        if random.random() < state.error_rate:
            return PlainTextResponse("injected failure", status_code=503)
        if random.random() < state.slow_rate:
            await asyncio.sleep(2)
        return page(request, style, captcha=random.random() < state.captcha_rate)

    async def private(request: Request) -> Response:
        return page(request, "jsonld")

    async def captcha(request: Request) -> Response:
        return page(request, "jsonld", captcha=True)

    async def flaky(request: Request) -> Response:
        key = request.url.path
        if state._failures_served[key] < int(request.path_params["failures"]):
            state._failures_served[key] += 1
            if request.query_params.get("retry_after") == "date":
                retry_after = format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
            else:
                retry_after = "1"
            headers = {"Retry-After": retry_after}
            return PlainTextResponse("try later", status_code=503, headers=headers)
        return page(request, "jsonld")

    async def slow(request: Request) -> Response:
        await asyncio.sleep(float(request.path_params["seconds"]))
        return page(request, "jsonld")

    async def robots(_: Request) -> Response:
        return PlainTextResponse(state.robots_txt, status_code=state.robots_status)

    async def redirect(request: Request) -> Response:
        return RedirectResponse(request.query_params.get("to", "/"), status_code=302)

    async def loop(request: Request) -> Response:
        return RedirectResponse(f"/loop/{int(request.path_params['n']) + 1}", status_code=302)

    async def huge(_: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            block = b"<p>" + b"x" * 65_530 + b"</p>"
            for _ in range(HUGE_BODY_BYTES // len(block)):
                yield block

        return StreamingResponse(chunks(), media_type="text/html")

    async def garbage(_: Request) -> Response:
        return Response(os.urandom(64 * 1024), media_type="text/html")

    async def drip(_: Request) -> Response:
        async def slowly() -> AsyncIterator[bytes]:
            yield b"<html><body>"
            for _ in range(3600):
                await asyncio.sleep(1)
                yield b" "

        return StreamingResponse(slowly(), media_type="text/html")

    async def wrong_charset(request: Request) -> Response:
        text = product_page(state, "jsonld", request.path_params["sku"]) + "<p>Café crème</p>"
        return Response(text.encode("latin-1"), media_type="text/html; charset=utf-8")

    app = Starlette(
        routes=[
            Route("/robots.txt", robots),
            Route("/private/{sku}", private),
            Route("/captcha/{sku}", captcha),
            Route("/flaky/{failures:int}/{sku}", flaky),
            Route("/slow/{seconds:float}/{sku}", slow),
            Route("/redirect", redirect),
            Route("/loop/{n:int}", loop),
            Route("/huge", huge),
            Route("/garbage", garbage),
            Route("/drip", drip),
            Route("/wrong-charset/{sku}", wrong_charset),
            Route("/{style}/{sku}", styled),
        ]
    )

    return _CountAndLimit(app, state)


class _CountAndLimit:
    """Logs every request, and answers 429 to a client above the rate limit."""

    def __init__(self, app: ASGIApp, state: SiteState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            now = time.time()
            path: str = scope["path"]
            self.state.requests.append((now, path))
            client = scope["client"][0] if scope.get("client") else "-"
            if path != "/robots.txt" and self.state.over_rate_limit(client, now):
                response = PlainTextResponse(
                    "slow down", status_code=429, headers={"Retry-After": "1"}
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class DemoSiteServer:
    """The demo site on a background thread: ``with DemoSiteServer() as site: site.url``."""

    def __init__(self, state: SiteState | None = None, *, host: str = "127.0.0.1", port: int = 0):
        self.state = state or SiteState()
        config = uvicorn.Config(
            create_app(self.state),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="demo-site", daemon=True)

    @property
    def url(self) -> str:
        socket = self._server.servers[0].sockets[0]
        host, port = socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the demo site did not start")
            time.sleep(0.01)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)
