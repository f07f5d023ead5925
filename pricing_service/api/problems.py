"""Errors as RFC 9457 problem details (``application/problem+json``).

Every error the API returns goes through here, so clients parse one shape: ``type``,
``title``, ``status``, ``detail``, ``instance``, plus ``errors`` for invalid input.
Redis being unreachable is a 503 with ``Retry-After``, bad input is a 4xx, and
anything unexpected is a 500 that does not leak internals.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from pricing_service.api.cache import StoreUnavailableError
from pricing_service.metrics import REDIS_ERRORS

PROBLEM_CONTENT_TYPE = "application/problem+json"
#: Problem types are URNs: stable identifiers that need no web page behind them.
TYPE_PREFIX = "urn:pricing:problem:"
REDIS_RETRY_AFTER_SECONDS = 1

_log = logging.getLogger(__name__)


class ProblemError(StarletteHTTPException):
    """An error to answer with a problem document.

    A Starlette ``HTTPException`` so that FastAPI re-raises it untouched when it happens
    while reading a body (it wraps any other exception into a generic 400).
    """

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        *,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        errors: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(status_code=status, detail=detail, headers=dict(headers or {}))
        self.slug = slug
        self.title = title or HTTPStatus(status).phrase
        self.errors = list(errors) if errors is not None else None


def not_found(what: str, detail: str) -> ProblemError:
    return ProblemError(404, f"{what}-not-found", detail, title=f"{what.capitalize()} not found")


def invalid(detail: str, errors: Sequence[Mapping[str, Any]] | None = None) -> ProblemError:
    return ProblemError(422, "invalid-request", detail, title="Invalid request", errors=errors)


def problem_response(
    request: Request,
    status: int,
    *,
    type_: str,
    title: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
    errors: Sequence[Mapping[str, Any]] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": type_,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    if errors is not None:
        body["errors"] = list(errors)
    return JSONResponse(
        body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_CONTENT_TYPE
    )


def _location(loc: Sequence[int | str]) -> list[int | str]:
    return [part if isinstance(part, int) else str(part) for part in loc]


def validation_errors(raw_errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Pydantic errors reduced to JSON-safe ``{location, message, type}`` entries
    (their ``ctx`` may hold exception objects)."""
    return [
        {
            "location": _location(error.get("loc", ())),
            "message": str(error.get("msg", "")),
            "type": str(error.get("type", "")),
        }
        for error in raw_errors
    ]


async def _problem_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(
        request,
        exc.status_code,
        type_=TYPE_PREFIX + exc.slug,
        title=exc.title,
        detail=str(exc.detail),
        headers=exc.headers,
        errors=exc.errors,
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return problem_response(
        request,
        exc.status_code,
        type_="about:blank",
        title=HTTPStatus(exc.status_code).phrase,
        detail=str(exc.detail),
        headers=exc.headers,
    )


async def _request_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(exc.errors())
    first = errors[0] if errors else {"location": [], "message": "invalid request"}
    where = ".".join(str(part) for part in first["location"])
    return problem_response(
        request,
        422,
        type_=TYPE_PREFIX + "invalid-request",
        title="Invalid request",
        detail=f"{where}: {first['message']}" if where else str(first["message"]),
        errors=errors,
    )


def _store_unavailable(request: Request) -> JSONResponse:
    return problem_response(
        request,
        503,
        type_=TYPE_PREFIX + "store-unavailable",
        title="Store unavailable",
        detail="The price store is unreachable; retry shortly.",
        headers={"Retry-After": str(REDIS_RETRY_AFTER_SECONDS)},
    )


async def _redis_error(request: Request, exc: Exception) -> JSONResponse:
    REDIS_ERRORS.labels(operation="api").inc()
    _log.warning("Redis unavailable during %s %s: %s", request.method, request.url.path, exc)
    return _store_unavailable(request)


async def _known_unavailable(request: Request, exc: Exception) -> JSONResponse:
    # Redis was not tried: nothing failed now, and an outage would log every request.
    return _store_unavailable(request)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    _log.exception("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(
        request,
        500,
        type_="about:blank",
        title="Internal Server Error",
        detail="An unexpected error occurred; it has been logged.",
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _problem_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    # Unreachable or slow Redis is retryable; other Redis errors are bugs (500).
    app.add_exception_handler(redis.exceptions.ConnectionError, _redis_error)
    app.add_exception_handler(redis.exceptions.TimeoutError, _redis_error)
    app.add_exception_handler(StoreUnavailableError, _known_unavailable)
    app.add_exception_handler(Exception, _unexpected_error)
