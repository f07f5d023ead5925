"""The Redis key schema, in one place (documented in docs/key-schema.md).

Every per-SKU key carries the hash tag ``{SKU}``, so in Redis Cluster all of one SKU's
keys live on one shard and its writes (price + audit record) stay atomic in one script.
Global keys (the SKU index, the work streams, switches) have no SKU in them.
"""

from __future__ import annotations

import zlib

PREFIX = "p"

#: Set of every SKU in the catalogue.
SKU_INDEX = "pricing:skus"
#: Stream of SKUs whose inputs changed; the repricers' consumer group reads it. With
#: several queue partitions, :func:`dirty_streams` names one stream per partition.
DIRTY_STREAM = "pricing:dirty"
DIRTY_GROUP = "repricers"
#: Stream of published schedules, tailed by API processes to keep their caches fresh. With
#: several queue partitions, :func:`changes_streams` names one stream per partition.
CHANGES_STREAM = "pricing:changes"
#: How many partitions the work queue and the changes streams have: recorded by the
#: repricers, checked by the API processes (a different count would miss changes).
QUEUE_PARTITIONS = "pricing:partitions"
#: Global kill switch: while set, no price changes are published.
FROZEN = "pricing:frozen"
#: Hash describing the ruleset the repricers run (version, files, loaded_at, last_error).
RULESET_STATUS = "pricing:ruleset"
#: Sorted set of (sku, segment) schedules by their next window boundary (epoch seconds).
BOUNDARIES = "pricing:boundaries"
#: Hash describing the last elasticity fit (fitted_at, items, estimated, changed, seconds).
ELASTICITY_FIT = "pricing:elasticity:fit"
#: String set (NX, with a TTL of the fit interval) by the repricer that runs the next
#: scheduled fit: one fit per interval across the fleet.
ELASTICITY_FIT_DUE = "pricing:elasticity:due"

#: String set (NX, with a TTL of the sweep interval) by the repricer that runs the next
#: compaction sweep (superseded audit records and old offer-history entries packed into
#: blocks): one sweep per interval.
COMPACTION_DUE = "pricing:compaction:due"

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


def offer_history_blocks(sku: str) -> str:
    """List: the offer history's older entries, packed into blocks, newest block first
    (``offers.pack_history``)."""
    return f"{_tag(sku)}:offers:old"


def sales(sku: str) -> str:
    """Hash: day buckets (UTC ``YYYYMMDD``): ``u:DAY`` units, ``r:DAY`` revenue in minor
    units, ``i:DAY`` the last inventory level reported that day."""
    return f"{_tag(sku)}:sales"


def sales_hourly(sku: str) -> str:
    """Hash: hour buckets (UTC ``YYYYMMDDHH``), the same fields as :func:`sales`."""
    return f"{_tag(sku)}:sales:h"


def sales_events(sku: str) -> str:
    """Sorted set written by earlier versions: ids of the sales events counted, scored by
    the event's epoch second. Still read, so that an id counted before an upgrade is not
    counted again, until it expires (no write renews its TTL)."""
    return f"{_tag(sku)}:sales:ids"


def sales_ids(sku: str, week: str) -> str:
    """Hash: the digests of the sales event ids counted whose events fall in the 7-day
    period that starts on ``week`` (``YYYYMMDD``; see ``store.sales_week``)."""
    return f"{_tag(sku)}:sales:ids:{week}"


def elasticity(sku: str) -> str:
    """String: the latest elasticity estimate as JSON."""
    return f"{_tag(sku)}:elasticity"


def schedule(sku: str, segment: str) -> str:
    """String: ``<record id> <fingerprint> <moves> <schedule JSON>``, a newline, then the
    current audit record, for one segment (see ``store._PUBLISH``)."""
    return f"{_tag(sku)}:sched:{segment or DEFAULT_SEGMENT_KEY}"


def audit(sku: str) -> str:
    """List: the superseded audit records, ``<record id> <payload>``, newest first."""
    return f"{_tag(sku)}:audit"


def segments(sku: str) -> str:
    """Set: the segments other than the default with a schedule (finds their records)."""
    return f"{_tag(sku)}:segs"


def override(sku: str) -> str:
    """String: a manual price override as JSON."""
    return f"{_tag(sku)}:override"


def boundary_member(sku: str, segment: str) -> str:
    return f"{sku}|{segment or DEFAULT_SEGMENT_KEY}"


def dirty_streams(partitions: int) -> list[str]:
    """The work queue's streams (see :func:`partition_streams`)."""
    return partition_streams(DIRTY_STREAM, partitions)


def changes_streams(partitions: int) -> list[str]:
    """The changes streams, split like the work queue (see :func:`partition_streams`)."""
    return partition_streams(CHANGES_STREAM, partitions)


def partition_streams(stream: str, partitions: int) -> list[str]:
    """``stream`` itself, or with several partitions ``stream:{0}``, ``stream:{1}``, ...:
    each its own hash tag, so on a Redis Cluster the partitions spread over the shards.
    A SKU's entries always go to partition :func:`sku_partition`."""
    if partitions == 1:
        return [stream]
    return [f"{stream}:{{{index}}}" for index in range(partitions)]


def sku_partition(sku: str, partitions: int) -> int:
    """The partition of a SKU, for every partitioned queue and stream: stable across
    processes and restarts."""
    return zlib.crc32(sku.encode()) % partitions
