"""Superseded audit records packed into blocks (pure).

A SKU's audit list (``keys.audit``) gets an entry each time one of its schedules is
replaced: ``<record id> <ms it was replaced> <fingerprint> <schedule JSON>``, a newline,
then the record's payload, deflated on its own (about 440 bytes in Redis). Records of one
SKU differ in a few numbers, so deflated together they take about a fifth of that: a
sweep (``Store.compact_audit``) packs, in a list whose newest ``2 * BLOCK_RECORDS``
entries are all single records, the older half of those into one block entry::

    * <ms the newest of them was replaced> <how many>\\n<deflate of the records>

The records inside are the entries as they were, each payload as plain JSON, separated
by NUL bytes (neither JSON nor the header holds one). The ms stands where an entry's
"replaced at" stands, so the retention trim of the publish script drops a block once its
newest record is past the retention. The newest ``BLOCK_RECORDS`` or more entries always
stay single: publishing never touches a block.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

#: Records per block: 32 deflate to 5.6x less than one by one, 16 to 4.6x, 64 to 6.4x.
BLOCK_RECORDS = 32
_MARK = b"* "
_SEPARATOR = b"\x00"


def is_block(entry: bytes) -> bool:
    return entry[:2] == _MARK


def pack_block(entries: Sequence[bytes]) -> bytes:
    """One block of ``entries`` (newest first, each with its payload as plain JSON)."""
    newest_replaced = max(int(entry.split(b" ", 2)[1]) for entry in entries)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = compressor.compress(_SEPARATOR.join(entries)) + compressor.flush()
    return b"%s%d %d\n%s" % (_MARK, newest_replaced, len(entries), body)


def unpack_block(block: bytes) -> list[bytes]:
    """The entries of a block, newest first, each payload as plain JSON."""
    _, _, body = block.partition(b"\n")
    return zlib.decompress(body, -15).split(_SEPARATOR)
