"""Real uvicorn servers in background threads for HTTP tests (as httpx's own tests do)."""

from __future__ import annotations

import threading
import time

import httpx
import uvicorn
from starlette.types import ASGIApp


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the test runner owns signals
        pass


class ThreadedServers:
    """Starts apps on free ports of 127.0.0.1 and stops them all at the end."""

    def __init__(self) -> None:
        self._started: list[tuple[_Server, threading.Thread, httpx.Client]] = []

    def start(self, app: ASGIApp, *, timeout: float = 10.0) -> httpx.Client:
        """Serve ``app`` and return a client for it, once it answers connections."""
        server = _Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the API server did not start")
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        self._started.append((server, thread, client))
        return client

    def stop_all(self) -> None:
        for server, thread, client in self._started:
            client.close()
            server.should_exit = True
            thread.join(timeout=10)
        self._started.clear()
