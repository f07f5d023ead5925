"""A real local Redis Cluster of 3 masters, from the same redis-server binary the other
tests use; ``TEST_REDIS_CLUSTER_URL`` points the tests at an existing cluster instead
(wiped before each test). Not ``REDIS_CLUSTER_URL``: the service's settings read that one,
and would take every other test's app to the cluster."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster as SyncRedisCluster

from pricing_service.store.embedded import redis_server_binary
from pricing_service.store.store import Store

SLOTS = 16384
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


class LocalCluster:
    """``MASTERS`` redis-server processes, the hash slots split between them, joined."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ports = [_free_port() for _ in range(MASTERS)]
        self._processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}"

    def start(self, timeout: float = 20.0) -> None:
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
                self._wait(lambda node=node: bool(node.ping()), deadline)
            share = SLOTS // MASTERS
            for index, node in enumerate(nodes):
                last = SLOTS - 1 if index == MASTERS - 1 else (index + 1) * share - 1
                slots = list(range(index * share, last + 1))
                for start in range(0, len(slots), 1000):
                    node.execute_command("CLUSTER ADDSLOTS", *slots[start : start + 1000])
            for node in nodes[1:]:
                node.execute_command("CLUSTER MEET", "127.0.0.1", self.ports[0])
            self._wait(
                lambda: all(
                    node.execute_command("CLUSTER INFO").get("cluster_state") == "ok"
                    for node in nodes
                ),
                deadline,
            )
        finally:
            for node in nodes:
                node.close()

    @staticmethod
    def _wait(ready: object, deadline: float) -> None:
        last_error: Exception | None = None
        while True:
            try:
                if ready():  # type: ignore[operator]
                    return
            except (redis.RedisError, OSError) as exc:
                last_error = exc
            if time.monotonic() > deadline:
                raise RuntimeError(f"the local Redis Cluster did not come up: {last_error}")
            time.sleep(0.05)

    def stop(self) -> None:
        for process in self._processes:
            process.terminate()
        for process in self._processes:
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("TEST_REDIS_CLUSTER_URL")
    if configured:
        yield configured
        return
    cluster = LocalCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture
def clean_cluster(redis_cluster_url: str) -> str:
    client = SyncRedisCluster.from_url(redis_cluster_url)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_cluster_url


@pytest.fixture
async def store(clean_cluster: str) -> AsyncIterator[Store]:
    """The store tests' store, on the cluster."""
    instance = Store.from_url(clean_cluster, retention=timedelta(days=35), cluster=True)
    assert instance.cluster
    try:
        yield instance
    finally:
        await instance.close()
