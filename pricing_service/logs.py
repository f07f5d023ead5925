"""Logging for every role, configured in one place: one JSON object a line (or plain text
for people), each carrying the id of the HTTP request it belongs to.

The request id lives in a context variable: set once per request by the API's middleware,
it is in every line logged while that request is handled, whichever module logs it.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import secrets
import sys
import time
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal, TextIO
from urllib.parse import urlsplit, urlunsplit

LogFormat = Literal["json", "text"]

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
REQUEST_ID_HEADER = b"x-request-id"
#: A client's id is kept when it is this safe to echo and log; else a new one is made.
_SAFE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")

#: New ids: a random prefix per process and a counter, unique without a system call each.
_id_prefix = secrets.token_hex(8)
_id_counter = itertools.count()


def _new_id_prefix() -> None:
    global _id_prefix
    _id_prefix = secrets.token_hex(8)


os.register_at_fork(after_in_child=_new_id_prefix)

#: What every LogRecord carries; anything else on a record came as ``extra`` and is logged.
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "request_id",
    "color_message",  # uvicorn's colourised duplicate of the message
}
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def request_id_for(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The request's ``X-Request-ID`` when it is sane (bounded, safe characters), else a
    new random one."""
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            if _SAFE_REQUEST_ID.fullmatch(value):
                return value
            break
    return f"{_id_prefix}{next(_id_counter):016x}".encode()


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request_id, then the record's
    extra fields, and the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def redacted_url(url: str) -> str:
    """``url`` fit for a log line: its password, if any, replaced by ``***``
    (``redis://default:***@redis:6379/0``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _with_request_id(record: logging.LogRecord) -> bool:
    if not hasattr(record, "request_id"):
        request_id = REQUEST_ID.get()
        if request_id is not None:
            record.request_id = request_id
    return True


def log_handler(stream: TextIO, log_format: LogFormat) -> logging.Handler:
    """A handler writing to ``stream`` in ``log_format``, request ids included."""
    handler = logging.StreamHandler(stream)
    handler.addFilter(_with_request_id)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(_TEXT_FORMAT, defaults={"request_id": "-"}))
    return handler


def configure_logging(level: str, log_format: LogFormat) -> None:
    """Send every logger's records, uvicorn's included, to stderr in ``log_format``."""
    handler = log_handler(sys.stderr, log_format)
    root = logging.getLogger()
    for previous in root.handlers[:]:
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):  # uvicorn's own handlers would log twice
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


class OutageLog:
    """A loop's failures as few lines: the first error, then one line a minute while the
    failures go on, and one when the loop works again. A Redis outage used to log two
    warnings a second per loop, burying everything else."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        every_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.what = what
        self.every_seconds = every_seconds
        self.clock = clock
        self.failures = 0
        self._since: float | None = None
        self._last_line = 0.0

    def failed(self, error: BaseException) -> None:
        now = self.clock()
        self.failures += 1
        if self._since is None:
            self._since = self._last_line = now
            self.logger.warning("%s: %s; retrying", self.what, error)
        elif now - self._last_line >= self.every_seconds:
            self._last_line = now
            self.logger.warning(
                "%s: still failing after %.0f s (%d attempts): %s",
                self.what,
                now - self._since,
                self.failures,
                error,
            )

    def succeeded(self) -> None:
        if self._since is not None:
            self.logger.info(
                "%s: working again after %.0f s (%d failed attempts)",
                self.what,
                self.clock() - self._since,
                self.failures,
            )
        self._since, self.failures = None, 0
