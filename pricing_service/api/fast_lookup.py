"""The storefront's hottest request, answered without FastAPI's machinery.

``GET /v1/prices/{sku}`` with no query string, for a SKU whose default-segment schedule
is in the in-sync cache, is answered here: no routing, dependency injection or response
validation, which together cost several times the lookup itself. Anything else (a query
string, a cache miss, a stale cache, an authentication problem, a schedule that ran out)
goes to the full route, which gives the same answer: a test holds the two equal.
"""

from __future__ import annotations

import re
import time

from starlette.types import ASGIApp, Receive, Scope, Send

from pricing_service.api.auth import Scope as AccessScope
from pricing_service.api.middleware import NO_STORE, log_access
from pricing_service.api.problems import ProblemError
from pricing_service.api.routes.prices import PriceOut, _from_schedule
from pricing_service.catalogue import SKU_PATTERN
from pricing_service.logs import REQUEST_ID_HEADER, request_id_for
from pricing_service.metrics import LOOKUPS, REQUEST_SECONDS

PREFIX = "/v1/prices/"
ROUTE_TEMPLATE = "/v1/prices/{sku}"
_SKU = re.compile(SKU_PATTERN)
_HEADERS_BASE = [(b"content-type", b"application/json"), NO_STORE]


class FastPriceLookup:
    """Pure ASGI middleware in front of the app; see the module docstring."""

    def __init__(self, app: ASGIApp, *, access_log: bool) -> None:
        self.app = app
        self.access_log = access_log
        self._hits = LOOKUPS.labels(result="hit")
        self._latency = REQUEST_SECONDS.labels(
            method="GET", route=ROUTE_TEMPLATE, status_class="2xx"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and not scope["query_string"]
            and scope["path"].startswith(PREFIX)
        ):
            started = time.perf_counter()
            body = self._answer(scope, scope["path"][len(PREFIX) :])
            if body is not None:
                request_id = request_id_for(scope["headers"])
                headers = [
                    *_HEADERS_BASE,
                    (b"content-length", str(len(body)).encode()),
                    (REQUEST_ID_HEADER, request_id),
                ]
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                self._hits.inc()
                elapsed = time.perf_counter() - started
                self._latency.observe(elapsed)
                if self.access_log:
                    log_access(scope, 200, elapsed, request_id.decode())
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _answer(scope: Scope, sku: str) -> bytes | None:
        """The response body, or None to let the full route answer."""
        if _SKU.fullmatch(sku) is None:
            return None
        state = scope["app"].state
        cache = getattr(state, "cache", None)
        if cache is None or cache.stale_seconds() is not None:
            return None
        authorization = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                break
        try:
            state.authenticator.authorize(authorization, AccessScope.READ, public=True)
        except ProblemError:
            return None
        found, schedule = cache.peek(sku, "")
        if not found or schedule is None:
            return None
        price = _from_schedule(schedule, int(time.time()), stale=False)
        if price is None or price.stale:
            return None
        body: bytes = PriceOut.__pydantic_serializer__.to_json(price, exclude_unset=True)
        return body
