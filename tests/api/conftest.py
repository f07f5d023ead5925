"""A real uvicorn server with the real app, on a free port, against the test Redis."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from pricing_service.api import create_app
from pricing_service.api.auth import hash_key
from pricing_service.settings import Settings

READ_KEY, WRITE_KEY, ADMIN_KEY = "read-secret", "write-secret", "admin-secret"
API_KEYS = ";".join(
    [
        f"reader:read:{hash_key(READ_KEY)}",
        f"writer:read+write:{hash_key(WRITE_KEY)}",
        f"boss:admin:{hash_key(ADMIN_KEY)}",
    ]
)

RULES = """\
timezone: America/New_York
horizon: 7d
segments:
  channel: [web, app]
default:
  description: List price.
  owner: test@example.com
  strategy:
    list_price: true
rules:
  - id: weekend
    description: Weekend sale.
    owner: test@example.com
    priority: 10
    when:
      days: [sat, sun]
    strategy:
      discount: "20%"
  - id: app
    description: App price.
    owner: test@example.com
    priority: 5
    match:
      segment: {channel: app}
    strategy:
      discount: "10%"
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test runner owns signals
        pass


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "rules.yaml").write_text(RULES)
    return folder


ServeApp = Callable[..., httpx.Client]


@pytest.fixture
def serve_app(clean_redis: str, rules_dir: Path, tmp_path: Path) -> Iterator[ServeApp]:
    """Starts the app with settings overrides; returns a client for it (no key set)."""
    started: list[tuple[_Server, threading.Thread, httpx.Client]] = []

    def serve(**overrides: Any) -> httpx.Client:
        values: dict[str, Any] = {
            "redis_url": clean_redis,
            "rules_dir": rules_dir,
            "data_dir": tmp_path / "data",
            "api_keys": API_KEYS,
            "rules_poll_seconds": 0.2,
            **overrides,
        }
        settings = Settings(**values)
        port = _free_port()
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_level="warning"
        )
        server = _Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the API server did not start")
            time.sleep(0.01)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        started.append((server, thread, client))
        return client

    yield serve
    for server, thread, client in started:
        client.close()
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def api(serve_app: ServeApp) -> httpx.Client:
    return serve_app()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
