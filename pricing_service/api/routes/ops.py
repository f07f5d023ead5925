"""Operations: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import redis.exceptions
from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel, Field

from pricing_service.api.deps import CacheDep, RulesDep, StoreDep
from pricing_service.api.problems import ProblemError
from pricing_service.metrics import exposition

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str = Field(description="ready, or stale: Redis is away, cached prices are served.")
    ruleset_version: str


@router.get("/healthz")
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", responses={503: {"description": "Redis unreachable or no ruleset."}})
async def readyz(store: StoreDep, cache: CacheDep, rules: RulesDep) -> Readiness:
    """Ready to serve: Redis answers, or cached prices are still served while it does not
    (taking every process out of rotation in an outage would end that), and a ruleset is
    loaded."""
    status = "ready"
    try:
        cache.check_store_reachable()
        await store.ping()
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        if not cache.serving_stale():
            raise ProblemError(
                503, "not-ready", f"Redis is unreachable: {exc}", headers={"Retry-After": "1"}
            ) from None
        status = "stale"
    if rules.current is None:
        detail = "no ruleset is loaded"
        if rules.last_error:
            detail += f": {rules.last_error}"
        raise ProblemError(503, "not-ready", detail, headers={"Retry-After": "5"})
    return Readiness(status=status, ruleset_version=rules.current.compiled.version)


@router.get("/metrics", response_class=Response)
async def metrics(cache: CacheDep) -> Response:
    """Prometheus metrics in the text exposition format (with several workers, all of
    theirs combined)."""
    cache.export_metrics()
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)
