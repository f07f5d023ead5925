"""A real uvicorn server with the real app, on a free port, against the test Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pricing_service.api import create_app
from pricing_service.api.auth import hash_key
from pricing_service.settings import Settings
from tests.servers import ThreadedServers

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
    servers = ThreadedServers()

    def serve(**overrides: Any) -> httpx.Client:
        values: dict[str, Any] = {
            "redis_url": clean_redis,
            "rules_dir": rules_dir,
            "data_dir": tmp_path / "data",
            "api_keys": API_KEYS,
            "rules_poll_seconds": 0.2,
            **overrides,
        }
        return servers.start(create_app(Settings(**values)))

    yield serve
    servers.stop_all()


@pytest.fixture
def api(serve_app: ServeApp) -> httpx.Client:
    return serve_app()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
