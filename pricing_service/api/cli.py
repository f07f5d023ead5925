"""`pricing serve` and `pricing import`: run the API, and load a catalogue file."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from pricing_service.catalogue import RowError, check_csv, check_ndjson, utf8_problem
from pricing_service.engine.inputs import ItemFacts
from pricing_service.logs import configure_logging
from pricing_service.metrics import MULTIPROCESS_DIR_VARIABLE, reset_multiprocess_dir
from pricing_service.settings import Settings
from pricing_service.store.embedded import resolve_redis_url
from pricing_service.store.store import Store

#: Items written per Redis transaction.
IMPORT_CHUNK = 1000
_JSON_LINES_SUFFIXES = (".jsonl", ".ndjson")
_log = logging.getLogger(__name__)
#: uvicorn kills a worker that does not answer its health check in time, and a starting
#: worker answers once it has imported the app: seconds on a busy machine (5 is too few).
WORKER_HEALTHCHECK_SECONDS = 30


@contextmanager
def _multiprocess_metrics(workers: int) -> Iterator[None]:
    """Metrics in prometheus-client's multiprocess mode when ``PROMETHEUS_MULTIPROC_DIR``
    is set, or in a temporary directory for several workers: emptied before they start."""
    configured = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
    if configured:
        reset_multiprocess_dir(Path(configured))
        yield
    elif workers == 1:
        yield
    else:
        # Set before the workers start, so that they (not this process) write files there.
        with tempfile.TemporaryDirectory(prefix="pricing-metrics-") as directory:
            os.environ[MULTIPROCESS_DIR_VARIABLE] = directory
            try:
                yield
            finally:
                del os.environ[MULTIPROCESS_DIR_VARIABLE]


def _exit_cleanly(number: int, frame: object) -> None:
    raise SystemExit(0)


def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to bind; default from settings.")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port; default from settings.")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Run the price API (uvicorn with uvloop and httptools); OpenAPI docs at /docs.

    On SIGTERM it stops accepting connections and lets requests in progress finish, for up
    to PRICING_SHUTDOWN_GRACE_SECONDS."""
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    # Resolved here, before workers start, so they all share one embedded Redis: the URL
    # goes into REDIS_URL, which each worker's settings read.
    url, embedded = resolve_redis_url(settings.configured_redis_url, settings.data_dir)
    if embedded is not None:
        _log.info("embedded Redis at %s (data in %s)", url, settings.data_dir.resolve())
    # uvicorn stops gracefully on SIGTERM and then raises it again, to die of it: handled
    # here, the process exits 0 like every other role's.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    try:
        with _multiprocess_metrics(workers):
            uvicorn.run(
                "pricing_service.api.app:served_app",
                factory=True,
                host=host or settings.host,
                port=settings.port if port is None else port,
                workers=workers,
                loop="uvloop",
                http="httptools",
                # The app writes the access log lines itself, with their request ids.
                access_log=False,
                log_config=None,
                timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_seconds),
                timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
            )
    finally:
        if embedded is not None:
            embedded.stop()


def import_items(
    path: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, help="A catalogue as .csv or .jsonl/.ndjson."),
    ],
) -> None:
    """Validate a catalogue file and write its items to the store, with per-line errors.

    Exits with 1 when any line is invalid (the valid ones are still stored).
    """
    if path.suffix.lower() not in (".csv", *_JSON_LINES_SUFFIXES):
        raise typer.BadParameter("give a .csv, .jsonl or .ndjson file", param_hint="PATH")
    problem = utf8_problem(path)
    if problem is not None:  # refused before anything is stored
        line, message = problem
        Console(stderr=True, highlight=False, soft_wrap=True).print(
            f"{path}:{line}: {message}", markup=False
        )
        raise typer.Exit(1)
    settings = Settings()
    url, embedded = resolve_redis_url(settings.configured_redis_url, settings.data_dir)
    try:
        stored, errors = asyncio.run(_import(path, url, settings))
    finally:
        if embedded is not None:
            embedded.stop()
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    for error in errors:
        err.print(f"{path}:{error.line}: {error.message}", markup=False)
    console = Console(highlight=False)
    console.print(f"{stored} item(s) stored, {len(errors)} error(s)")
    if errors:
        raise typer.Exit(1)


def _lines(path: Path, progress: Progress, task: TaskID) -> Iterator[str]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        for line in handle:
            progress.advance(task, len(line.encode()))
            yield line


async def _import(path: Path, url: str, settings: Settings) -> tuple[int, list[RowError]]:
    store = Store.from_settings(
        url,
        # Big pipelines: a longer wait per command than the API's.
        settings.model_copy(
            update={"redis_socket_timeout": max(settings.redis_socket_timeout, 10.0)}
        ),
    )
    errors: list[RowError] = []
    stored = 0
    chunk: list[ItemFacts] = []
    progress = Progress(
        TextColumn("importing {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
    )
    try:
        with progress:
            task = progress.add_task(path.name, total=path.stat().st_size)
            lines = _lines(path, progress, task)
            checker = check_csv if path.suffix.lower() == ".csv" else check_ndjson
            for entry in checker(lines):
                if isinstance(entry, RowError):
                    errors.append(entry)
                    continue
                chunk.append(entry)
                if len(chunk) >= IMPORT_CHUNK:
                    await store.put_items(chunk, reason="import")
                    stored, chunk = stored + len(chunk), []
            if chunk:
                await store.put_items(chunk, reason="import")
                stored += len(chunk)
    finally:
        await store.close()
    return stored, errors
