"""The shared embedded Redis of the ``pricing`` commands: the last process to stop stops
it, whichever started it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

#: A ``pricing`` command in miniature: resolve the Redis (embedded), say so, and stop it as
#: the commands do when told to (a line on stdin).
USER = """
import sys
from pathlib import Path
from pricing_service.store.embedded import resolve_redis_url
url, embedded = resolve_redis_url(None, Path(sys.argv[1]))
print(url, flush=True)
sys.stdin.readline()
embedded.stop()
"""


def _responds(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def _gone(url: str, seconds: float = 15) -> bool:
    deadline = time.monotonic() + seconds
    while _responds(url):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def users(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()
    leftover = tmp_path / "var" / "redis.sock"
    if leftover.exists() and _responds(f"unix://{leftover}"):
        redis.Redis(unix_socket_path=str(leftover)).shutdown(nosave=True)


def _start(users: list[subprocess.Popen[str]], data_dir: Path) -> str:
    process = subprocess.Popen(
        [sys.executable, "-c", USER, str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    users.append(process)
    assert process.stdout is not None
    return process.stdout.readline().strip()


def _ask_to_stop(process: subprocess.Popen[str]) -> None:
    assert process.stdin is not None
    process.stdin.write("stop\n")
    process.stdin.flush()


def _stop(process: subprocess.Popen[str]) -> None:
    _ask_to_stop(process)
    assert process.wait(timeout=30) == 0


def test_the_process_that_started_it_leaves_it_to_the_others(
    tmp_path: Path, users: list[subprocess.Popen[str]]
) -> None:
    data_dir = tmp_path / "var"
    url = _start(users, data_dir)
    assert _start(users, data_dir) == url  # the second one reuses it
    redis.Redis.from_url(url).set("kept", "1")

    _stop(users[0])  # the one that started it
    assert _responds(url)
    assert redis.Redis.from_url(url).get("kept") == b"1"

    _stop(users[1])
    assert _gone(url)


def test_the_starter_stops_it_when_the_others_are_gone_or_dead(
    tmp_path: Path, users: list[subprocess.Popen[str]]
) -> None:
    data_dir = tmp_path / "var"
    url = _start(users, data_dir)
    _start(users, data_dir)
    _start(users, data_dir)
    _stop(users[1])
    users[2].kill()  # kill -9: its registration stays behind, for a dead pid
    users[2].wait()
    assert _responds(url)

    _stop(users[0])
    assert _gone(url)
    assert list((data_dir / "redis.users").iterdir()) == []


def test_two_users_stopping_at_once_do_not_leave_it_running(
    tmp_path: Path, users: list[subprocess.Popen[str]]
) -> None:
    # Each could see the other still registered, and both left the server running (a
    # race: before the lock this failed only when the two stops overlapped).
    data_dir = tmp_path / "var"
    url = _start(users, data_dir)
    _start(users, data_dir)
    for process in users:
        _ask_to_stop(process)
    assert [process.wait(timeout=30) for process in users] == [0, 0]
    assert _gone(url)


def test_a_pid_given_to_another_process_since_does_not_count(
    tmp_path: Path, users: list[subprocess.Popen[str]]
) -> None:
    data_dir = tmp_path / "var"
    url = _start(users, data_dir)
    # A registration for a live pid (this test's) that started at another time: the
    # process that registered it is gone, and its pid was given to this one.
    (data_dir / "redis.users" / str(os.getpid())).write_text("1")
    _stop(users[0])
    assert _gone(url)
