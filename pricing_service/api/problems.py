"""Errors as RFC 9457 problem details (``application/problem+json``).

Every error the API returns goes through here, so clients parse one shape: ``type``,
``title``, ``status``, ``detail``, ``instance``, plus ``errors`` for invalid input.
Redis being unreachable is a 503 with ``Retry-After``, bad input is a 4xx, and
anything unexpected is a 500 that does not leak internals.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse
from starlette.routing import Match

from pricing_service.api.cache import StoreUnavailableError
from pricing_service.logs import REQUEST_ID
from pricing_service.metrics import REDIS_ERRORS
from pricing_service.store.store import InvalidStoredItemError

PROBLEM_CONTENT_TYPE = "application/problem+json"
#: Problem types are URNs: stable identifiers that need no web page behind them.
TYPE_PREFIX = "urn:pricing:problem:"
REDIS_RETRY_AFTER_SECONDS = 1

_log = logging.getLogger(__name__)


class InvalidField(BaseModel):
    location: list[int | str] = Field(description='Where, e.g. ["body", "skus", 0].')
    message: str
    type: str


class Problem(BaseModel):
    """An error, as RFC 9457 problem details (``application/problem+json``)."""

    type: str = Field(description="A URN naming the problem, or about:blank.")
    title: str
    status: int
    detail: str
    instance: str = Field(description="The request's path.")
    request_id: str | None = None
    errors: list[InvalidField] | None = Field(default=None, description="For invalid input.")


#: Error responses for routes' and routers' ``responses=``: a description is enough, the
#: problem document is added to every error response by :func:`install_problem_handlers`.
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"description": "No API key, or a malformed or unknown one."}
}
FORBIDDEN: dict[int | str, dict[str, Any]] = {403: {"description": "The key's scope is too low."}}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"description": "Redis is unreachable; retry after Retry-After seconds."}
}


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


def unparseable(detail: str) -> ProblemError:
    """A body that is not the JSON it claims to be: a syntax error (400), not a value the
    route refuses (422)."""
    return ProblemError(400, "unparseable-body", detail, title="Unparseable body")


def problem_body(
    status: int, *, type_: str, title: str, detail: str, instance: str
) -> dict[str, Any]:
    """An RFC 9457 problem document, with the request's id when there is one."""
    body: dict[str, Any] = {
        "type": type_,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    request_id = REQUEST_ID.get()
    if request_id is not None:
        body["request_id"] = request_id
    return body


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
    body = problem_body(status, type_=type_, title=title, detail=detail, instance=request.url.path)
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
    headers = exc.headers
    if exc.status_code == 405:
        # Starlette's Allow names the methods of the first route on the path only; one
        # path often has several (GET and PUT of an item are two routes).
        headers = {**(headers or {}), "Allow": ", ".join(_methods_allowed(request))}
    return problem_response(
        request,
        exc.status_code,
        type_="about:blank",
        title=HTTPStatus(exc.status_code).phrase,
        detail=str(exc.detail),
        headers=headers,
    )


def _methods_allowed(request: Request) -> list[str]:
    """Every method some route answers on the request's path (HEAD wherever GET is).
    Each method is tried against the routes, as the router itself would: routers
    included in others keep their routes to themselves."""
    routes = request.app.router.routes
    methods = {
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    }
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


async def _request_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = validation_errors(exc.errors())
    media_type = request_media_type(request)
    body_refused = any(error["location"][:1] == ["body"] for error in errors)
    if body_refused and media_type and not _is_json(media_type):
        # Read as something else, a JSON body would be reported as "not an object".
        unsupported = ProblemError(
            415,
            "unsupported-media-type",
            f"send the body as application/json, not {media_type}",
            title="Unsupported media type",
        )
        return await _problem_error(request, unsupported)
    first = errors[0] if errors else {"location": [], "message": "invalid request"}
    where = ".".join(str(part) for part in first["location"])
    if first.get("type") == "json_invalid":
        return await _problem_error(request, unparseable(f"not valid JSON: {first['message']}"))
    return problem_response(
        request,
        422,
        type_=TYPE_PREFIX + "invalid-request",
        title="Invalid request",
        detail=f"{where}: {first['message']}" if where else str(first["message"]),
        errors=errors,
    )


def request_media_type(request: Request) -> str:
    """The request body's media type, without parameters, lower case ('' if none)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


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


async def _invalid_stored_item(request: Request, exc: Exception) -> JSONResponse:
    # The stored state is at fault, not the request; a PUT of the item mends it.
    assert isinstance(exc, InvalidStoredItemError)
    _log.warning("%s (%s %s)", exc, request.method, request.url.path)
    return problem_response(
        request,
        409,
        type_=TYPE_PREFIX + "stored-item-invalid",
        title="Stored item invalid",
        detail=f"{exc}: PUT /v1/items/{exc.sku} to replace it",
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    _log.exception("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    # Answered outside the middleware that adds the request id to every other response.
    request_id = REQUEST_ID.get()
    return problem_response(
        request,
        500,
        type_="about:blank",
        title="Internal Server Error",
        detail="An unexpected error occurred; it has been logged.",
        headers={"X-Request-ID": request_id} if request_id else None,
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, _problem_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    # Unreachable or slow Redis is retryable; other Redis errors are bugs (500).
    app.add_exception_handler(redis.exceptions.ConnectionError, _redis_error)
    app.add_exception_handler(redis.exceptions.TimeoutError, _redis_error)
    app.add_exception_handler(StoreUnavailableError, _known_unavailable)
    app.add_exception_handler(InvalidStoredItemError, _invalid_stored_item)
    app.add_exception_handler(Exception, _unexpected_error)
    _document_problems(app)


_REF = "#/components/schemas/"
_FASTAPI_VALIDATION_ERRORS = ("HTTPValidationError", "ValidationError")


def _document_problems(app: FastAPI) -> None:
    """Declares in the OpenAPI document what the handlers above answer: every error
    response is a :class:`Problem` (FastAPI's own validation error schema is replaced),
    and an operation with a request body may answer 400 (unparseable) or 413."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        problem = Problem.model_json_schema(ref_template=_REF + "{model}")
        schemas.update(problem.pop("$defs", {}), Problem=problem)
        for path_item in document.get("paths", {}).values():
            for operation in path_item.values():
                _problem_responses(operation.setdefault("responses", {}), operation)
        for name in _FASTAPI_VALIDATION_ERRORS:
            if f'"{_REF}{name}"' not in json.dumps(document):
                schemas.pop(name, None)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def _problem_responses(responses: dict[str, Any], operation: dict[str, Any]) -> None:
    if "requestBody" in operation:
        responses.setdefault("400", {"description": "The request body cannot be parsed."})
        responses.setdefault("413", {"description": "The request body is too large."})
    for status, response in responses.items():
        content = response.get("content")
        default_422 = content is not None and f"{_REF}HTTPValidationError" in json.dumps(content)
        if status[:1] in ("4", "5") and (content is None or default_422):
            response["content"] = {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": _REF + "Problem"}}}
