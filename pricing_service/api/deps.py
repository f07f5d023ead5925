"""FastAPI dependencies, as ``Annotated`` aliases routes declare as parameters."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from crawlers.settings import CrawlerSettings
from pricing_service.api.auth import Authenticator, Principal, Scope
from pricing_service.api.cache import ScheduleCache
from pricing_service.rules.watch import RulesState
from pricing_service.settings import Settings
from pricing_service.store.store import Store


# Every dependency is ``async def``: a plain ``def`` one runs in the thread pool.
async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def _cache(request: Request) -> ScheduleCache:
    cache: ScheduleCache = request.app.state.cache
    return cache


async def _crawler_settings(request: Request) -> CrawlerSettings:
    crawler_settings: CrawlerSettings = request.app.state.crawler_settings
    return crawler_settings


async def _rules(request: Request) -> RulesState:
    rules: RulesState = request.app.state.rules
    return rules


SettingsDep = Annotated[Settings, Depends(_settings)]
StoreDep = Annotated[Store, Depends(_store)]
CacheDep = Annotated[ScheduleCache, Depends(_cache)]
RulesDep = Annotated[RulesState, Depends(_rules)]
#: The quality gate's FX table and outlier ratio, shared with the crawlers.
CrawlerSettingsDep = Annotated[CrawlerSettings, Depends(_crawler_settings)]

#: Declares bearer auth in the OpenAPI document (the "Authorize" button of /docs); the
#: header itself is checked by the Authenticator, which also rejects malformed ones.
_bearer_scheme = HTTPBearer(auto_error=False, description="An API key.")
BearerDoc = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)]


def _requires(scope: Scope, *, public: bool = False) -> Callable[..., Awaitable[Principal]]:
    # Async on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, which
    # cost a lookup several times its own work.
    async def dependency(request: Request, _: BearerDoc) -> Principal:
        authenticator: Authenticator = request.app.state.authenticator
        authorization = request.headers.get("authorization")
        return authenticator.authorize(authorization, scope, public=public)

    return dependency


#: Price lookups: open to anyone when ``public_reads`` is on.
PublicReader = Annotated[Principal, Depends(_requires(Scope.READ, public=True))]
Reader = Annotated[Principal, Depends(_requires(Scope.READ))]
Writer = Annotated[Principal, Depends(_requires(Scope.WRITE))]
Admin = Annotated[Principal, Depends(_requires(Scope.ADMIN))]
