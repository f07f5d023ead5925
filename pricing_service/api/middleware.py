"""Pure ASGI middleware: a request's id, latency and access log line, a request body
limit, and HEAD answered wherever GET is."""

from __future__ import annotations

import json
import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pricing_service.api.problems import (
    PROBLEM_CONTENT_TYPE,
    TYPE_PREFIX,
    ProblemError,
    problem_body,
)
from pricing_service.logs import REQUEST_ID, REQUEST_ID_HEADER, request_id_for
from pricing_service.metrics import REQUEST_SECONDS

#: The label for requests no route matched: raw paths would make cardinality unbounded.
UNMATCHED_ROUTE = "<unmatched>"

access_logger = logging.getLogger("pricing_service.access")


def log_access(scope: Scope, status: int, seconds: float, request_id: str) -> None:
    access_logger.info(
        "%s %s %d",
        scope["method"],
        scope["path"],
        status,
        extra={
            "method": scope["method"],
            "path": scope["path"],
            "status": status,
            "duration_seconds": round(seconds, 6),
            "request_id": request_id,
        },
    )


class RequestTelemetryMiddleware:
    """Per request: its id (the client's ``X-Request-ID`` when sane, else a new one) in
    every log line and back in the response header; ``REQUEST_SECONDS`` by method, route
    template (never the raw path, which holds SKUs) and status class; and, when
    ``access_log``, one access log line."""

    def __init__(self, app: ASGIApp, *, access_log: bool) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_for(scope["headers"])
        # Not reset afterwards: each request runs in its own task, and the error handler
        # that answers an unhandled exception runs outside this middleware, after it.
        REQUEST_ID.set(request_id.decode())
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (REQUEST_ID_HEADER, request_id)]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            template = str(getattr(scope.get("route"), "path_format", UNMATCHED_ROUTE))
            REQUEST_SECONDS.labels(
                method=scope["method"], route=template, status_class=f"{status // 100}xx"
            ).observe(elapsed)
            if self.access_log:
                log_access(scope, status, elapsed, request_id.decode())


class NoStoreMiddleware:
    """``Cache-Control: no-store`` on every answer that does not say otherwise: each one
    is the live state (a price, a rule, a queue), and a CDN's default lifetime for an
    answer without the header (a day, for some) would go on serving a price long after
    the next decision."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers", ())
                if not any(name.lower() == b"cache-control" for name, _ in headers):
                    message["headers"] = [*headers, NO_STORE]
            await send(message)

        await self.app(scope, receive, send_no_store)


#: The header :class:`NoStoreMiddleware` adds.
NO_STORE = (b"cache-control", b"no-store")


class HeadAsGetMiddleware:
    """HEAD where GET works (RFC 9110): the GET's status and headers, without its body.
    Load balancers probe with HEAD; FastAPI routes answer GET only."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


class BodyLimitMiddleware:
    """Refuses request bodies over ``max_bytes`` with 413, by Content-Length up front or
    while reading a body sent without one."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise self._too_large()
            return message

        await self.app(scope, limited_receive, send)

    def _too_large(self) -> ProblemError:
        return ProblemError(
            413, "body-too-large", f"request bodies are limited to {self.max_bytes} bytes"
        )

    async def _refuse(self, scope: Scope, send: Send) -> None:
        error = self._too_large()
        body = json.dumps(
            problem_body(
                413,
                type_=TYPE_PREFIX + error.slug,
                title=error.title,
                detail=str(error.detail),
                instance=scope.get("path", ""),
            )
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_CONTENT_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
