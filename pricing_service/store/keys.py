"""The Redis key schema, in one place (documented in docs/key-schema.md).

Every per-SKU key carries the hash tag ``{SKU}``, so in Redis Cluster all of one SKU's
keys live on one shard and its writes (price + audit record) stay atomic in one script.
Global keys (the SKU index, the work streams, switches) have no SKU in them.
"""

from __future__ import annotations

PREFIX = "p"

#: Set of every SKU in the catalogue.
SKU_INDEX = "pricing:skus"
#: Stream of SKUs whose inputs changed; the repricers' consumer group reads it.
DIRTY_STREAM = "pricing:dirty"
DIRTY_GROUP = "repricers"
#: Stream of published schedules, tailed by API processes to keep their caches fresh.
CHANGES_STREAM = "pricing:changes"
#: Global kill switch: while set, no price changes are published.
FROZEN = "pricing:frozen"
#: Hash describing the ruleset the repricers run (version, files, loaded_at, last_error).
RULESET_STATUS = "pricing:ruleset"
#: Sorted set of (sku, segment) schedules by their next window boundary (epoch seconds).
BOUNDARIES = "pricing:boundaries"

DEFAULT_SEGMENT_KEY = "-"


def _tag(sku: str) -> str:
    return f"{PREFIX}:{{{sku}}}"


def item(sku: str) -> str:
    """String: the catalogue item as JSON."""
    return f"{_tag(sku)}:item"


def offers(sku: str) -> str:
    """Hash: competitor id -> latest observation JSON (with its gate status)."""
    return f"{_tag(sku)}:offers"


def offer_history(sku: str) -> str:
    """Stream: every observation received, trimmed to the retention."""
    return f"{_tag(sku)}:offers:hist"


def sales(sku: str) -> str:
    """Hash: day (YYYYMMDD) -> units and revenue counters (``u:DAY``, ``r:DAY``)."""
    return f"{_tag(sku)}:sales"


def schedule(sku: str, segment: str) -> str:
    """String: ``<decision stream id> <fingerprint> <schedule JSON>`` for one segment."""
    return f"{_tag(sku)}:sched:{segment or DEFAULT_SEGMENT_KEY}"


def changes(sku: str, segment: str) -> str:
    """List: the last published price changes, newest first, ``epoch:price``."""
    return f"{_tag(sku)}:moves:{segment or DEFAULT_SEGMENT_KEY}"


def audit(sku: str) -> str:
    """Stream: the audit trail, one entry per published schedule, append-only."""
    return f"{_tag(sku)}:audit"


def override(sku: str) -> str:
    """String: a manual price override as JSON."""
    return f"{_tag(sku)}:override"


def boundary_member(sku: str, segment: str) -> str:
    return f"{sku}|{segment or DEFAULT_SEGMENT_KEY}"
