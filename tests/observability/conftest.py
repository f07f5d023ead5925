"""Real ``pricing`` processes against the test Redis, scraped over HTTP."""

from __future__ import annotations

import asyncio
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from crawlers.demo_site import DemoSiteServer
from crawlers.scheduler import Scheduler
from crawlers.settings import CrawlerSettings
from pricing_service.store.store import Store
from tests.crawlers.test_reliability import DEMO_COMPETITOR, RULES, list_skus
from tests.reliability.conftest import PRICING_COMMAND, start_pricing, stop_all, wait_for
from tests.repricer.helpers import write_rules

#: Long enough for a loaded 2-core machine; only there to catch a hang.
EXIT_TIMEOUT_SECONDS = 30.0

StartPricing = Callable[..., subprocess.Popen[bytes]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def get_when_up(url: str, timeout: float = 60.0) -> httpx.Response:
    """GET ``url`` once the process behind it answers."""
    answers: list[httpx.Response] = []

    def answered() -> bool:
        try:
            answers.append(httpx.get(url, timeout=5))
        except httpx.TransportError:
            return False
        return answers[-1].status_code == 200

    wait_for(answered, f"{url} to answer", timeout=timeout)
    return answers[-1]


def check_with_promtool(exposition: bytes) -> None:
    """``promtool check metrics`` passes on ``exposition`` (skips without promtool)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not on PATH (Debian/Ubuntu: apt-get install prometheus)")
    checked = subprocess.run(
        [promtool, "check", "metrics"],
        input=exposition,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, (checked.stdout + checked.stderr).decode()


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM ``process`` and its exit code, once it has exited."""
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=EXIT_TIMEOUT_SECONDS)


def crawl_rules(folder: Path) -> Path:
    """The repository's rules with the demo site as a competitor."""
    folder.mkdir()
    for file in RULES.glob("*.yaml"):
        (folder / file.name).write_text(file.read_text())
    with (folder / "competitors.yaml").open("a") as handle:
        handle.write(DEMO_COMPETITOR)
    return folder


def queue_crawls(redis_url: str, site: DemoSiteServer, skus: list[str], path: str) -> None:
    """Items, their listings on the demo site at ``path`` and their jobs, queued."""

    async def run() -> None:
        store = Store.from_url(redis_url, retention=timedelta(days=35))
        try:
            await list_skus(store, site, skus, path)
            await Scheduler(store.redis, CrawlerSettings(_env_file=None)).tick()
        finally:
            await store.close()

    asyncio.run(run())


@pytest.fixture
def site() -> Iterator[DemoSiteServer]:
    with DemoSiteServer() as server:
        yield server


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    return write_rules(tmp_path / "rules")


@pytest.fixture
def start(clean_redis: str, rules_dir: Path, tmp_path: Path) -> Iterator[StartPricing]:
    """``start(arguments, log_name, **env)``: ``pricing ARGUMENTS`` on the test Redis, its
    output in ``tmp_path/log_name``; whatever still runs at the end is stopped."""
    if not PRICING_COMMAND.exists():
        pytest.skip("the pricing command is not installed")
    started: list[subprocess.Popen[bytes]] = []

    def run(arguments: Sequence[str], log_name: str, **env: str) -> subprocess.Popen[bytes]:
        environment = {"PRICING_LOG_FORMAT": "json", "PRICING_DATA_DIR": str(tmp_path), **env}
        process = start_pricing(
            arguments, clean_redis, rules_dir, tmp_path / log_name, **environment
        )
        started.append(process)
        return process

    yield run
    stop_all(started, timeout=EXIT_TIMEOUT_SECONDS)


#: Gauges only one role sets, by role. Another role exporting them at 0 misleads alerts
#: (a constant 0 beside the repricer's queue length: "not draining") and dashboards.
ROLE_GAUGES = {
    "repricer": ("pricing_dirty_queue_length", "pricing_ruleset_info"),
    "scheduler": ("pricing_crawl_queue_depth",),
    "api": (
        "pricing_schedule_cache_entries",
        "pricing_schedule_cache_staleness_seconds",
        "pricing_redis_last_contact_age_seconds",
    ),
}


def _exported(exposition: bytes) -> set[str]:
    return {
        line.split("{")[0].split(" ")[0]
        for line in exposition.decode().splitlines()
        if line and not line.startswith("#")
    }


def only_this_roles_gauges(exposition: bytes, role: str) -> None:
    """Fails if ``role``'s exposition lacks one of its own gauges or has another role's."""
    exported = _exported(exposition)
    for owner, names in ROLE_GAUGES.items():
        for name in names:
            assert (name in exported) == (owner == role), (role, name)
