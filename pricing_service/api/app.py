"""The FastAPI application: price lookups, catalogue and signals, control, operations.

``create_app`` wires settings, auth, error handling and middleware; the lifespan connects
to Redis (an embedded server when ``REDIS_URL`` is unset), loads the ruleset and starts
the schedule cache's refresher and the rules watcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Any, cast

import redis.asyncio as aioredis
from fastapi import FastAPI
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from crawlers.settings import CrawlerSettings
from pricing_service.api.auth import Authenticator, load_api_keys
from pricing_service.api.cache import TAIL_BLOCK_SECONDS, ScheduleCache
from pricing_service.api.fast_lookup import FastPriceLookup
from pricing_service.api.middleware import (
    BodyLimitMiddleware,
    HeadAsGetMiddleware,
    NoStoreMiddleware,
    RequestTelemetryMiddleware,
)
from pricing_service.api.problems import install_problem_handlers
from pricing_service.api.routes.control import router as control_router
from pricing_service.api.routes.elasticity import router as elasticity_router
from pricing_service.api.routes.items import router as items_router
from pricing_service.api.routes.listings import router as listings_router
from pricing_service.api.routes.ops import router as ops_router
from pricing_service.api.routes.prices import router as prices_router
from pricing_service.api.routes.signals import router as signals_router
from pricing_service.logs import configure_logging
from pricing_service.metrics import MULTIPROCESS_DIR_VARIABLE, forget_this_process
from pricing_service.rules.watch import RulesState
from pricing_service.settings import Settings
from pricing_service.store.embedded import resolve_redis_url
from pricing_service.store.store import ClusterClient, Store

_log = logging.getLogger(__name__)
#: How often each worker updates the cache's gauges when another worker may answer scrapes.
CACHE_METRICS_SECONDS = 1.0


def served_app() -> FastAPI:
    """The app ``pricing serve`` runs: logging configured in each worker process."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)


async def _export_cache_metrics(cache: ScheduleCache) -> None:
    while True:
        cache.export_metrics()
        await asyncio.sleep(CACHE_METRICS_SECONDS)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API, configured by ``settings`` (from the environment by default)."""
    settings = settings or Settings()
    keys = load_api_keys(settings)
    if not keys:
        _log.warning("no API keys configured: every call that needs a key will get 401")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url, embedded = await asyncio.to_thread(
            resolve_redis_url, settings.configured_redis_url, settings.data_dir
        )
        store = Store.from_settings(url, settings)
        tail_options: dict[str, Any] = {
            "socket_connect_timeout": settings.redis_connect_timeout,
            # The XREAD blocks that long before the command's own time starts.
            "socket_timeout": TAIL_BLOCK_SECONDS + settings.redis_socket_timeout,
            # The tailer retries by itself; the client's retries would only delay its
            # noticing an outage, and with it the stale marking and fast failures.
            "retry": Retry(NoBackoff(), retries=0),
        }
        tail_client = cast(
            aioredis.Redis,
            ClusterClient.from_url(url, **tail_options)
            if store.cluster
            else aioredis.Redis.from_url(url, **tail_options),
        )
        rules = RulesState(settings.rules_dir)
        await asyncio.to_thread(rules.reload)
        cache = ScheduleCache(
            store,
            tail_client,
            max_items=settings.cache_max_items,
            stale_serve_seconds=settings.stale_serve_seconds,
        )
        app.state.store, app.state.cache, app.state.rules = store, cache, rules
        tasks = [
            asyncio.create_task(cache.run(), name="schedule-cache"),
            asyncio.create_task(rules.watch(settings.rules_poll_seconds), name="rules-watch"),
        ]
        if os.environ.get(MULTIPROCESS_DIR_VARIABLE):
            tasks.append(asyncio.create_task(_export_cache_metrics(cache), name="cache-metrics"))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await tail_client.aclose()
            await store.close()
            if embedded is not None:
                embedded.stop()
            forget_this_process()

    app = FastAPI(
        title="Pricing service",
        version="0.1.0",
        description="Price lookups with an audit trail, catalogue and signals, and controls.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.crawler_settings = CrawlerSettings()
    app.state.authenticator = Authenticator(keys, public_reads=settings.public_reads)
    install_problem_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestTelemetryMiddleware, access_log=settings.access_log)
    app.add_middleware(NoStoreMiddleware)
    # Outermost: it answers cache hits itself, with their request id and access log line.
    app.add_middleware(FastPriceLookup, access_log=settings.access_log)
    app.add_middleware(HeadAsGetMiddleware)
    for router in (prices_router, items_router, signals_router, control_router, ops_router):
        app.include_router(router)
    app.include_router(listings_router)
    app.include_router(elasticity_router)
    return app
