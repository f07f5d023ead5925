"""Errors raised by the extraction package.

Extraction itself never raises on a strange page: it returns an empty, low-confidence
result. These errors are for inputs the caller must fix (unreadable bytes, a broken
override, a file or URL that cannot be loaded).
"""


class ExtractionError(Exception):
    """Base class for every error raised by `crawlers.extraction`."""


class InvalidOverrideError(ExtractionError):
    """A per-domain override holds a selector or JSON path that cannot be compiled."""


class PageLoadError(ExtractionError):
    """A page could not be read from disk or fetched from its URL."""
