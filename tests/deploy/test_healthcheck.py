"""deploy/healthcheck.py, the image's HEALTHCHECK: healthy when the role's endpoint
answers 200, whichever role the container runs."""

from __future__ import annotations

import importlib.util
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType

import pytest

from tests.deploy.files import DEPLOY


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("healthcheck", DEPLOY / "healthcheck.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


healthcheck = _load()


class _Answer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path in ("/healthz", "/metrics") else 500)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_it_asks_every_role_on_its_configured_port() -> None:
    urls = healthcheck.candidate_urls(
        [], {"PRICING_PORT": "8080", "PRICING_CRAWLER_METRICS_PORT": "0"}
    )
    assert urls == [
        "http://127.0.0.1:8080/healthz",
        "http://127.0.0.1:9101/metrics",
        "http://127.0.0.1:9102/metrics",
    ]


def test_an_explicit_url_is_the_only_one_asked() -> None:
    assert healthcheck.candidate_urls(["http://x/readyz"], {}) == ["http://x/readyz"]
    environ = {"PRICING_HEALTHCHECK_URL": "http://y/metrics"}
    assert healthcheck.candidate_urls([], environ) == ["http://y/metrics"]


def test_healthy_when_the_role_running_answers(server_port: int) -> None:
    # A repricer: nothing on the API's port, its metrics on the repricer's.
    environ = {
        "PRICING_PORT": str(_closed_port()),
        "PRICING_REPRICER_METRICS_PORT": str(server_port),
    }
    assert healthcheck.main([], environ) == 0


def test_unhealthy_when_nothing_answers_or_the_answer_is_an_error(server_port: int) -> None:
    closed = str(_closed_port())
    environ = {
        "PRICING_PORT": closed,
        "PRICING_REPRICER_METRICS_PORT": closed,
        "PRICING_SCHEDULER_METRICS_PORT": "0",
        "PRICING_CRAWLER_METRICS_PORT": "0",
    }
    assert healthcheck.main([], environ) == 1
    assert healthcheck.main([f"http://127.0.0.1:{server_port}/readyz"], {}) == 1
