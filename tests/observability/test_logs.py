"""Request ids (from X-Request-ID when sane, else made up) in the response header, the
problem body and every log line of the request; JSON log lines; access logs that can be
turned off."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pricing_service.api import create_app
from pricing_service.logs import log_handler, redacted_url
from pricing_service.settings import Settings
from tests.reliability.conftest import price_catalogue
from tests.servers import ThreadedServers

ServeApp = Callable[..., httpx.Client]


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The JSON log lines written so far (by every logger) during the test."""
    stream = io.StringIO()
    handler = log_handler(stream, "json")
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
def serve_app(clean_redis: str, rules_dir: Path, tmp_path: Path) -> Iterator[ServeApp]:
    """The app with two test routes: one logging a line, one failing."""
    servers = ThreadedServers()

    def serve(**overrides: Any) -> httpx.Client:
        settings = Settings(
            redis_url=clean_redis,
            rules_dir=rules_dir,
            data_dir=tmp_path,
            public_reads=True,
            _env_file=None,
            **overrides,
        )
        app = create_app(settings)

        @app.get("/test/logs")
        async def logs_a_line() -> dict[str, str]:
            logging.getLogger("tests.handler").info("handling", extra={"widgets": 3})
            return {}

        @app.get("/test/fails")
        async def fails() -> None:
            raise RuntimeError("boom")

        return servers.start(app)

    yield serve
    servers.stop_all()


def test_a_sane_request_id_is_echoed_by_the_fast_path_and_the_full_route(
    serve_app: ServeApp, clean_redis: str, rules_dir: Path
) -> None:
    price_catalogue(clean_redis, rules_dir, {"SKU-1": "10.00"})
    api = serve_app()
    for _ in range(3):  # a cache miss (full route), then hits (fast path)
        response = api.get("/v1/prices/SKU-1", headers={"X-Request-ID": "order-42:abc/1"})
        assert response.status_code == 200
        assert response.headers["x-request-id"] == "order-42:abc/1"
    response = api.get("/v1/prices/SKU-1?segment=", headers={"X-Request-ID": "full-route"})
    assert response.headers["x-request-id"] == "full-route"


@pytest.mark.parametrize(
    "sent",
    [None, "", "a" * 129, "has space", 'quote"d', "naïve"],
    ids=["none", "empty", "too-long", "space", "quote", "non-ascii"],
)
def test_a_missing_or_unsafe_request_id_is_replaced(
    serve_app: ServeApp, clean_redis: str, rules_dir: Path, sent: str | None
) -> None:
    price_catalogue(clean_redis, rules_dir, {"SKU-1": "10.00"})
    api = serve_app()
    headers = {} if sent is None else {"X-Request-ID": sent.encode()}
    ids = set()
    for path in ("/v1/prices/SKU-1", "/v1/prices/SKU-1", "/healthz"):
        response = api.get(path, headers=headers)
        assert response.status_code == 200
        ids.add(response.headers["x-request-id"])
    assert len(ids) == 3  # a new one each time
    assert all(len(made) == 32 and made.isalnum() for made in ids)


def test_problems_carry_the_request_id(serve_app: ServeApp) -> None:
    api = serve_app()
    response = api.get("/v1/prices/NOPE", headers={"X-Request-ID": "missing-sku"})
    assert response.status_code == 404
    assert response.headers["x-request-id"] == "missing-sku"
    assert response.json()["request_id"] == "missing-sku"


def test_every_line_logged_during_a_request_has_its_id(
    serve_app: ServeApp, log_lines: Callable[[], list[dict[str, Any]]]
) -> None:
    api = serve_app()
    assert api.get("/test/logs", headers={"X-Request-ID": "r-1"}).status_code == 200
    failed = api.get("/test/fails", headers={"X-Request-ID": "r-2"})
    assert failed.status_code == 500
    assert failed.headers["x-request-id"] == "r-2"
    assert failed.json()["request_id"] == "r-2"
    lines = log_lines()
    [handled] = [line for line in lines if line["logger"] == "tests.handler"]
    assert handled["request_id"] == "r-1"
    assert handled["message"] == "handling"
    assert handled["widgets"] == 3
    assert handled["level"] == "INFO"
    assert handled["time"].endswith("+00:00")
    [error] = [line for line in lines if line["message"].startswith("unhandled error")]
    assert error["request_id"] == "r-2"
    assert "RuntimeError: boom" in error["exception"]
    access = {line["request_id"]: line for line in lines if line["logger"].endswith(".access")}
    assert access["r-1"]["status"] == 200
    assert access["r-1"]["path"] == "/test/logs"
    assert access["r-2"]["status"] == 500


def test_access_logs_can_be_turned_off(
    serve_app: ServeApp,
    clean_redis: str,
    rules_dir: Path,
    log_lines: Callable[[], list[dict[str, Any]]],
) -> None:
    price_catalogue(clean_redis, rules_dir, {"SKU-1": "10.00"})
    api = serve_app(access_log=False)
    for path in ("/v1/prices/SKU-1", "/v1/prices/SKU-1", "/test/logs"):
        assert api.get(path).status_code == 200
    lines = log_lines()
    assert [line["logger"] for line in lines if line.get("request_id")] == ["tests.handler"]


@pytest.mark.parametrize(
    ("url", "logged"),
    [
        ("redis://default:Hunter2@redis:6379/0", "redis://default:***@redis:6379/0"),
        ("rediss://:s3cret@10.0.0.5:6380", "rediss://:***@10.0.0.5:6380"),
        ("redis://redis:6379/0", "redis://redis:6379/0"),
        ("unix:///var/run/redis.sock?db=1", "unix:///var/run/redis.sock?db=1"),
    ],
)
def test_a_url_is_logged_without_its_password(url: str, logged: str) -> None:
    # The repricer logged REDIS_URL whole, a production password included.
    assert redacted_url(url) == logged
