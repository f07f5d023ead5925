"""Operations: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import redis.exceptions
from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from pricing_service.api.deps import RulesDep, StoreDep
from pricing_service.api.problems import ProblemError

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    ruleset_version: str


@router.get("/healthz")
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", responses={503: {"description": "Redis unreachable or no ruleset."}})
async def readyz(store: StoreDep, rules: RulesDep) -> Readiness:
    """Ready to serve: Redis answers and a ruleset is loaded."""
    try:
        await store.ping()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        raise ProblemError(
            503, "not-ready", f"Redis is unreachable: {exc}", headers={"Retry-After": "1"}
        ) from None
    if rules.current is None:
        detail = "no ruleset is loaded"
        if rules.last_error:
            detail += f": {rules.last_error}"
        raise ProblemError(503, "not-ready", detail, headers={"Retry-After": "5"})
    return Readiness(status="ready", ruleset_version=rules.current.compiled.version)


@router.get("/metrics", response_class=Response)
async def metrics() -> Response:
    """Prometheus metrics in the text exposition format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
