"""The Redis store: catalogue, competitor offers, sales, schedules and the audit trail.

All I/O with Redis for the service goes through :class:`Store` (asyncio). A new price is
published with its audit record in one Lua script per SKU (:meth:`Store.publish`): there
is never a price without its audit record, nor an audit record for a price that was not
published. Publishing the same inputs twice writes nothing the second time.

Every other write that spans keys (an item and the SKU index, the sales counters of
several SKUs, an offer and its history) goes out in one MULTI/EXEC transaction together
with the work-queue entries that get its SKUs repriced, and read-modify-writes run under
WATCH: Redis can go away between any two commands, and either all of a write is applied
or none, so a failed call left nothing half-done and can be retried as a whole.
(Sales counters are increments, but every sales event with an id is counted at most once,
so a retried batch adds nothing twice; only events sent without an id are at risk of being
counted twice if the connection breaks after Redis ran the transaction.)
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import zlib
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import lru_cache, partial
from typing import Any, TypeVar, cast

import orjson
import redis.asyncio as aioredis
import redis.exceptions
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline, RedisCluster
from redis.commands.core import AsyncScript
from redis.exceptions import (
    ClusterDownError,
    MasterDownError,
    NoScriptError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.typing import EncodableT, FieldT

from pricing_service.demand.buckets import (
    FIRST_SALE_FIELD,
    day_bucket,
    hour_bucket,
    selling_days,
    unit_fields,
    units_by_day,
)
from pricing_service.demand.signals import BASELINE_DAYS, demand_stats
from pricing_service.engine.decision import Decision, decision_to_dict
from pricing_service.engine.inputs import (
    AwareDatetime,
    DemandStats,
    ElasticityEstimate,
    ItemFacts,
    Price,
    PriceChange,
)
from pricing_service.money import to_minor
from pricing_service.settings import Settings
from pricing_service.store import keys
from pricing_service.store.audit_blocks import BLOCK_RECORDS, is_block, pack_block, unpack_block
from pricing_service.store.offers import (
    HISTORY_BLOCK_MAX,
    HISTORY_BLOCK_MIN,
    HISTORY_STREAM_KEPT,
    HistoryEntry,
    block_newest_ms,
    history_competitor,
    history_entry,
    history_offer,
    pack_history,
    unpack_history,
)
from pricing_service.store.offers import OfferStatus as OfferStatus
from pricing_service.store.streams import group_backlog

#: Shared by the scripts that replace schedule values: where a value's header fields end,
#: and how a replaced value's record is kept in the history list (bounded by count, and by
#: age since it was replaced).
_HISTORY_LUA = """
local function fields(value)
  local a = string.find(value, ' ', 1, true)
  local b = string.find(value, ' ', a + 1, true)
  local r = string.find(value, ' ', b + 1, true)
  return a, b, r, string.find(value, ' ', r + 1, true)
end
local function keep_replaced(history, value, now_ms, retention_ms, maxlen)
  local a, b, _, c = fields(value)
  redis.call('LPUSH', history, string.sub(value, 1, a - 1) .. ' ' .. now_ms .. ' '
    .. string.sub(value, a + 1, b - 1) .. ' ' .. string.sub(value, c + 1))
  redis.call('LTRIM', history, 0, tonumber(maxlen) - 1)
  local oldest_kept = tonumber(now_ms) - tonumber(retention_ms)
  for _ = 1, 16 do
    local oldest = redis.call('LINDEX', history, -1)
    if not oldest then break end
    local after_id = string.find(oldest, ' ', 1, true)
    local ended = string.sub(oldest, after_id + 1, string.find(oldest, ' ', after_id + 1, true) - 1)
    if tonumber(ended) >= oldest_kept then break end
    redis.call('RPOP', history)
  end
  redis.call('PEXPIRE', history, retention_ms)
end
"""

#: Publishes one schedule and its audit record atomically.
#:
#: One string per SKU and segment holds ``<id> <fingerprint> <read at> <moves> <schedule
#: JSON>``, a newline, then the current audit record: a Redis key costs about 100 bytes before
#: its value, and a stream with a single entry about 4 KiB, so the newest decision and
#: its explanation share the schedule's key (the explanation leaves out what the schedule
#: JSON says: see :func:`encode_audit`). The record a publish replaces moves to the SKU's
#: history list as ``<id> <ms it was replaced> <fingerprint> <schedule JSON>``, a newline
#: and the audit record, and is kept for the retention after it was replaced. Ids look
#: like stream ids, ``ms-seq``, from Redis's clock (the sequence is the microsecond
#: within the millisecond) and grow per key even if the clock steps back.
#: ``publish_one`` takes the schedule key, history list and segments set, and in ``argv``:
#: fingerprint, schedule JSON, audit record, the caller's time (ms), retention (ms),
#: current price ('' if none), epoch of the price, segment ('-' for the default: not added
#: to the set), history bound, moves bound, when the inputs were read (Redis clock, us; 0:
#: unknown). It returns ``{written (0 or 1), id}``. ``_PUBLISH`` and ``_PUBLISH_MANY``
#: share it, so a schedule published alone or in bulk is stored alike.
#:
#: Two repricers can price one SKU at once from different reads of its inputs, and the
#: one that read first may publish last. ``read at`` (Redis's clock, taken after the
#: repricer took its queue entries and before it read the inputs) makes the later read
#: win: a schedule computed from an earlier read than the one in place is not written.
#: The entry of every input change is taken before the read that sees it, so the last
#: schedule standing always reflects every change.
_PUBLISH_ONE_LUA = (
    _HISTORY_LUA
    + """
local function publish_one(schedule, history, segments, argv)
  local current = redis.call('GET', schedule)
  local moves = '-'
  local now = redis.call('TIME')
  local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  local seq = tonumber(now[2]) % 1000
  if current then
    local a, b, r, c = fields(current)
    local old_id = string.sub(current, 1, a - 1)
    if string.sub(current, a + 1, b - 1) == argv[1] then
      return {0, old_id}
    end
    if tonumber(string.sub(current, b + 1, r - 1)) > tonumber(argv[11]) then
      return {0, old_id}  -- computed from older inputs than the schedule in place
    end
    moves = string.sub(current, r + 1, c - 1)
    local dash = string.find(old_id, '-', 1, true)
    local old_ms = tonumber(string.sub(old_id, 1, dash - 1))
    local old_seq = tonumber(string.sub(old_id, dash + 1))
    if ms < old_ms or (ms == old_ms and seq <= old_seq) then
      ms, seq = old_ms, old_seq + 1
    end
    keep_replaced(history, current, argv[4], argv[5], argv[9])
  end
  if argv[6] ~= '' then
    local head = moves
    local comma = string.find(moves, ',', 1, true)
    if comma then head = string.sub(moves, 1, comma - 1) end
    local colon = string.find(head, ':', 1, true)
    if not colon or string.sub(head, colon + 1) ~= argv[6] then
      local move = argv[7] .. ':' .. argv[6]
      if moves == '-' then moves = move else moves = move .. ',' .. moves end
      local count, at = 1, 0
      while true do
        at = string.find(moves, ',', at + 1, true)
        if not at then break end
        count = count + 1
        if count > tonumber(argv[10]) then
          moves = string.sub(moves, 1, at - 1)
          break
        end
      end
    end
  end
  local id = string.format('%d-%d', ms, seq)
  local head = id .. ' ' .. argv[1] .. ' ' .. argv[11] .. ' ' .. moves .. ' ' .. argv[2]
  redis.call('SET', schedule, head .. '\\n' .. argv[3])
  if argv[8] ~= '-' then
    redis.call('SADD', segments, argv[8])
  end
  return {1, id}
end
"""
)

#: Publishes one schedule. KEYS: schedule, history list, segments set. ARGV: as
#: ``publish_one``'s ``argv``.
_PUBLISH = _PUBLISH_ONE_LUA + "return publish_one(KEYS[1], KEYS[2], KEYS[3], ARGV)\n"

#: Removes a SKU's schedules, keeping their records: each moves to the history list as
#: if replaced now (see ``_PUBLISH``). KEYS: history list, segments set, schedule keys.
#: ARGV: the caller's time (ms), retention (ms), history bound.
_RETIRE = (
    _HISTORY_LUA
    + """
for i = 3, #KEYS do
  local current = redis.call('GET', KEYS[i])
  if current then
    keep_replaced(KEYS[1], current, ARGV[1], ARGV[2], ARGV[3])
    redis.call('DEL', KEYS[i])
  end
end
redis.call('DEL', KEYS[2])
return 1
"""
)

#: Names many published schedules on the changes stream in one call. It touches one key,
#: so it stays valid in Redis Cluster. KEYS: the changes stream. ARGV: MAXLEN, then
#: SKU and segment pairs.
_ANNOUNCE = """
for i = 2, #ARGV, 2 do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'sku', ARGV[i], 'seg', ARGV[i + 1])
end
return (#ARGV - 1) / 2
"""

#: Publishes many schedules, each as ``_PUBLISH`` would, and announces on the changes
#: streams those :func:`_needs_announcing` picks, as ``_ANNOUNCE`` would: one call and one
#: round trip for what took a script call per schedule. Its keys span SKUs, so it is for
#: one Redis only (on a cluster each SKU is its own hash slot).
#: KEYS: the changes streams (one per partition), then per schedule: schedule, history
#: list, segments set. ARGV: the caller's time (ms), retention (ms), history bound, moves
#: bound, changes MAXLEN, the caller's wall clock (ms), the re-announce window (ms), the
#: number of changes streams; then per schedule: SKU, fingerprint, schedule JSON, audit
#: record, current price ('' if none), epoch of the price, segment ('-' for the default),
#: when the inputs were read, partition of the SKU's changes stream (from 0).
#: Returns per schedule ``written (0 or 1), id``, flat.
_PUBLISH_MANY = (
    _PUBLISH_ONE_LUA
    + """
local announce_after = tonumber(ARGV[6]) - tonumber(ARGV[7])
-- one table for every call: publish_one keeps nothing of it
local argv = {nil, nil, nil, ARGV[1], ARGV[2], nil, nil, nil, ARGV[3], ARGV[4], nil}
local replies = {}
local key = tonumber(ARGV[8])
for i = 9, #ARGV, 9 do
  argv[1], argv[2], argv[3] = ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  argv[6], argv[7], argv[8], argv[11] = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  local reply = publish_one(KEYS[key + 1], KEYS[key + 2], KEYS[key + 3], argv)
  key = key + 3
  local id = reply[2]
  if reply[1] == 1
    or tonumber(string.sub(id, 1, string.find(id, '-', 1, true) - 1)) > announce_after then
    redis.call('XADD', KEYS[tonumber(ARGV[i + 8]) + 1], 'MAXLEN', '~', ARGV[5], '*',
      'sku', ARGV[i], 'seg', ARGV[i + 6])
  end
  replies[#replies + 1] = reply[1]
  replies[#replies + 1] = id
end
return replies
"""
)

#: Reads every input of many SKUs in one call (one SKU per call on a cluster). KEYS: per
#: SKU its input keys, ``per`` of them: item, offers (a hash), override, sales (a hash),
#: elasticity, then one schedule per segment. ARGV: ``per``, then the sales fields wanted
#: (none: the whole hash). Returns per SKU {item, offers (flat), override, sales (flat),
#: elasticity, schedules...}. The sales are the wanted fields that exist, or the whole
#: hash when none of them records a unit sold or it holds no more fields than that: a SKU
#: that sells every day has about a hundred fields, and turning them into Lua values and
#: back took Redis longer than the rest of the SKU's read.
_READ_INPUTS = """
local per = tonumber(ARGV[1])
local wanted = {}
for i = 2, #ARGV do wanted[#wanted + 1] = ARGV[i] end
local function sales(key)
  if #wanted == 0 then return redis.call('HGETALL', key) end
  local size = redis.call('HLEN', key)
  if size == 0 then return {} end
  if size <= #wanted then return redis.call('HGETALL', key) end  -- no bigger than asked
  local values = redis.call('HMGET', key, unpack(wanted))
  local found, sold = {}, false
  for i = 1, #wanted do
    if values[i] then
      found[#found + 1] = wanted[i]
      found[#found + 1] = values[i]
      if values[i] ~= '0' then sold = true end
    end
  end
  if sold then return found end
  return redis.call('HGETALL', key)
end
local out = {}
for base = 0, #KEYS - 1, per do
  local row = {
    redis.call('GET', KEYS[base + 1]),
    redis.call('HGETALL', KEYS[base + 2]),
    redis.call('GET', KEYS[base + 3]),
    sales(KEYS[base + 4]),
    redis.call('GET', KEYS[base + 5]),
  }
  for i = base + 6, base + per do
    row[#row + 1] = redis.call('GET', KEYS[i])
  end
  out[#out + 1] = row
end
return out
"""

DECISION_SEPARATOR = "~"

#: Audit payloads are small JSON documents that repeat the same keys and phrases, which
#: plain zlib cannot exploit in a few hundred bytes. A preset dictionary of those strings
#: roughly halves them. The dictionary is part of the stored format: never edit it, add a
#: new one with a new format byte.
_AUDIT_FORMAT_ZDICT_1 = b"\x01"  # a zlib stream (the first format) starts with 0x78
_AUDIT_ZDICT_1 = (
    b'"age_seconds":null}],"warnings":[]}]}"source":"catalogue","source":"crawler",'
    b'"detail":"price ending / price point"},{"stage":"guardrail","name":"max_change",'
    b'"detail":"cost plus "detail":"off list price"detail":"beat by the lowest competitor '
    b'price: reference "detail":"match the median competitor price: reference '
    b'{"stage":"adjustment","name":"min_margin","name":"map","name":"cooldown",'
    b'"held_by":"oscillation","held_by":"escalation","warnings":["fallback:'
    b'"stage":"fallback","name":"list_price","name":"keep_current",'
    b'"name":"competitor:megamart","value":" USD","source":"crawler","age_seconds":'
    b'"inputs":[{"name":"cost","value":"","source":"catalogue","age_seconds":null}],'
    b'"steps":[{"stage":"strategy","name":"competitor","input":null,"output":"'
    b'"steps":[{"stage":"strategy","name":"cost_plus","input":null,"output":"'
    b'"changed":true,"guardrails_fired":[],"changed":false,"guardrails_fired":["'
    b'"rule_id":"default","strategy":"cost_plus","held_by":null,'
    b'"valid_until":null,"valid_from":"2026-11-26T00:00:00+00:00","valid_until":"'
    b'{"seg":"","v":"","c":"USD","c":"EUR","sku":"","d":[{"price":"'
    b'{"stage":"rounding","name":"rounding","input":"","output":"'
)
#: The second format: the first's dictionary, then the phrases explanations gained since
#: (the change an adjustment applied, a rounding step's ending and direction). Deflate
#: reaches back 4 KiB here, so the dictionary's last 4 KiB are what counts; it is 1.5 KiB.
_AUDIT_FORMAT_ZDICT_2 = b"\x02"
_AUDIT_ZDICT_2 = _AUDIT_ZDICT_1 + (
    b'"detail":"price ending .95 (nearest)"},{"stage":"rounding","name":"rounding","input":"'
    b'"detail":"price ending .99 (nearest)"},{"stage":"adjustment","name":"'
    b'","detail":"+5%: ","detail":"-10%: ","detail":"-20%: ","detail":"-5.00 USD: '
)
#: A 4 KiB window and a small state: a record is a few hundred bytes, and copying the
#: default 256 KiB state cost more than compressing one (any raw-deflate reader decodes it).
_AUDIT_COMPRESSOR_2 = zlib.compressobj(6, zlib.DEFLATED, -12, 4, zdict=_AUDIT_ZDICT_2)
#: Decompression dictionaries by format byte: every format ever written stays readable.
_AUDIT_ZDICTS = {_AUDIT_FORMAT_ZDICT_1: _AUDIT_ZDICT_1, _AUDIT_FORMAT_ZDICT_2: _AUDIT_ZDICT_2}
#: SKUs per script call on one Redis, for the full reprice's reads (:meth:`Store.read_inputs`)
#: and publishes (:meth:`Store.publish_prepared`): a script keeps Redis from every other
#: client while it runs. At 250 a call held Redis 3.7-5.4 ms on average, at 50 0.7-0.9 ms,
#: and another client's PING p99 fell from 8-12 ms to 5-7 ms, for the same reprice rate
#: within noise; 25 was slower (``bench/RESULTS.md``).
SCRIPT_BATCH = 50
#: Commands per round trip where each command is small: the pipelines of per-SKU script
#: calls on a Redis Cluster, and :meth:`Store.set_boundaries`. Bounds one round trip's memory.
PUBLISH_PIPELINE = 250
#: SKU index members per ``SSCAN`` call in :meth:`Store.iter_skus`.
SKU_SCAN_COUNT = 1_000
#: Entries of a SKU's audit list kept besides the retention, a block of superseded
#: records counting as one (see ``audit_blocks``): hourly repricing of two segments for
#: 35 days stays well inside it even before the records are packed.
HISTORY_MAXLEN = 2_000
#: Offer-history entries read per round trip, and looked at per page at most, by
#: :meth:`Store.offer_history`.
OFFER_HISTORY_PAGE = 500
OFFER_HISTORY_SCAN = 20_000
#: SKUs one round trip of the compaction sweep looks at.
COMPACTION_BATCH = 1_000


@dataclass(slots=True)
class Compaction:
    """Blocks written by a compaction sweep."""

    audit_blocks: int = 0
    history_blocks: int = 0


#: Published current-price changes kept per SKU and segment (loop protection and the
#: daily change limit look back 24 hours).
MOVES_MAXLEN = 32
#: Length bound of ``keys.CHANGES_STREAM`` (approximate trimming).
CHANGES_MAXLEN = 100_000
#: Length bound of ``keys.DIRTY_STREAM`` (approximate trimming).
DIRTY_MAXLEN = 2_000_000

#: Adds sales events and an inventory level to one SKU's hour and day buckets, counting
#: each event id once, and prunes buckets past their retention (once per bucket period).
#: KEYS: day buckets, hour buckets, the event ids of earlier versions (a sorted set, read
#: until it expires), then the id hashes of the weeks the events fall in.
#: ARGV: day TTL (s), hour TTL (s), oldest day kept, oldest hour kept, oldest event epoch
#: kept, this day, this hour, inventory ('' if none), the revenue's currency, how many id
#: hashes, the epoch each expires at, then per event: id digest ('' if none), id, epoch,
#: day, hour, units, revenue, the KEYS index of its week's id hash.
#: Returns the 1-based positions of the events not counted (duplicates, or too old).
#:
#: ``u:`` and ``r:`` are net of returns. A day with returns also counts them, positive,
#: in ``n:DAY`` (units) and ``x:DAY`` (revenue refunded): the elasticity fit needs the
#: day's sales alone, since a refund at an earlier day's price moves the day's average
#: price paid away from the price the day's buyers saw.
#:
#: Revenue is in the item's currency when it is recorded, which can change. Each bucket
#: hash's field ``cur`` says from which bucket on which currency applies (``=USD``, then
#: ``=USD,20261203=EUR`` after a change; see ``buckets.decode_buckets``). ``m:BUCKET`` is
#: ``*`` for a bucket with revenue in two currencies (the change fell within it, or a late
#: sale landed in a bucket of the earlier currency), or the currency of a bucket of the
#: earlier currency whose only sales came late, in the new one.
_RECORD_BUCKETS = """
local function currencies(key)
  local entries = {}
  local raw = redis.call('HGET', key, 'cur')
  if raw then
    for from, currency in string.gmatch(raw, '([^,=]*)=([^,]*)') do
      entries[#entries + 1] = {from, currency}
    end
  end
  return entries
end
local function note_currency(key, entries, bucket, currency)
  if #entries == 0 then
    entries[1] = {'', currency}
    redis.call('HSET', key, 'cur', '=' .. currency)
    return
  end
  local in_force = entries[1][2]
  for _, entry in ipairs(entries) do
    if entry[1] <= bucket then in_force = entry[2] end
  end
  local latest = entries[#entries][1]
  local marked = bucket < latest and redis.call('HGET', key, 'm:' .. bucket)
  if (marked or in_force) == currency or marked == '*' then return end
  if redis.call('HEXISTS', key, 'r:' .. bucket) == 1 then
    redis.call('HSET', key, 'm:' .. bucket, '*')
  elseif bucket < latest then
    redis.call('HSET', key, 'm:' .. bucket, currency)
  end
  if bucket < latest then return end
  if bucket == latest then
    entries[#entries][2] = currency
  else
    entries[#entries + 1] = {bucket, currency}
  end
  local parts = {}
  for _, entry in ipairs(entries) do parts[#parts + 1] = entry[1] .. '=' .. entry[2] end
  redis.call('HSET', key, 'cur', table.concat(parts, ','))
end
local function prune(key, oldest, marker)
  if redis.call('HGET', key, 'pruned') == marker then return end
  for _, field in ipairs(redis.call('HKEYS', key)) do
    local colon = string.find(field, ':', 1, true)
    if colon and field ~= 'pruned' and string.sub(field, colon + 1) < oldest then
      redis.call('HDEL', key, field)
    end
  end
  redis.call('HSET', key, 'pruned', marker)
end
prune(KEYS[1], ARGV[3], ARGV[6])
prune(KEYS[2], ARGV[4], ARGV[7])
if ARGV[8] ~= '' then
  redis.call('HSET', KEYS[1], 'i:' .. ARGV[6], ARGV[8])
  redis.call('HSET', KEYS[2], 'i:' .. ARGV[7], ARGV[8])
end
local legacy = redis.call('EXISTS', KEYS[3]) == 1
local currency = ARGV[9]
local day_currencies, hour_currencies = currencies(KEYS[1]), currencies(KEYS[2])
local id_keys = tonumber(ARGV[10])
local skipped = {}
local position = 0
for i = 11 + id_keys, #ARGV, 8 do
  position = position + 1
  local day, hour = ARGV[i + 3], ARGV[i + 4]
  local counted = day >= ARGV[3]
  if counted and ARGV[i] ~= '' then
    counted = not (legacy and redis.call('ZSCORE', KEYS[3], ARGV[i + 1]))
      and redis.call('HSETNX', KEYS[tonumber(ARGV[i + 7])], ARGV[i], '') == 1
  end
  if counted then
    note_currency(KEYS[1], day_currencies, day, currency)
    local first = redis.call('HGET', KEYS[1], 'first')
    if not first or day < first then redis.call('HSET', KEYS[1], 'first', day) end
    redis.call('HINCRBY', KEYS[1], 'u:' .. day, ARGV[i + 5])
    redis.call('HINCRBY', KEYS[1], 'r:' .. day, ARGV[i + 6])
    if string.sub(ARGV[i + 5], 1, 1) == '-' then
      redis.call('HINCRBY', KEYS[1], 'n:' .. day, string.sub(ARGV[i + 5], 2))
      redis.call('HINCRBY', KEYS[1], 'x:' .. day, string.sub(ARGV[i + 6], 2))
    end
    if hour >= ARGV[4] then
      note_currency(KEYS[2], hour_currencies, hour, currency)
      redis.call('HINCRBY', KEYS[2], 'u:' .. hour, ARGV[i + 5])
      redis.call('HINCRBY', KEYS[2], 'r:' .. hour, ARGV[i + 6])
    end
  else
    skipped[#skipped + 1] = position
  end
end
for k = 1, id_keys do
  if redis.call('EXISTS', KEYS[3 + k]) == 1 then
    redis.call('EXPIREAT', KEYS[3 + k], ARGV[10 + k])
  end
end
if legacy then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[5])
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return skipped
"""
#: Sales event ids are kept in one hash per SKU and week, a field per id: 8 bytes of its
#: BLAKE2b digest (an id can be long, and a week's ids stay a compact listpack up to about
#: 70 sales a day). The weeks are 7-day periods from the Unix epoch.
SALES_WEEK = timedelta(days=7)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def sales_week(moment: datetime) -> datetime:
    """The first instant of the 7-day period of ``moment`` whose id hash holds its ids."""
    return _EPOCH + (moment - _EPOCH) // SALES_WEEK * SALES_WEEK


def sales_id_digest(event_id: str) -> bytes:
    return hashlib.blake2b(event_id.encode(), digest_size=8).digest()


#: Hour buckets are kept this long (day buckets: the retention).
HOURLY_RETENTION = timedelta(days=7)
#: Elasticity estimates written per MULTI/EXEC transaction.
ELASTICITY_WRITE_CHUNK = 1_000


@dataclass(frozen=True, slots=True)
class Sale:
    """A sales event: ``quantity`` units (negative: returned) at ``unit_price``. An event
    with an ``event_id`` is counted once however often it is recorded."""

    at: datetime
    quantity: int
    unit_price: Decimal
    event_id: str | None = None


#: Sales events (or ``(instant, quantity, unit price)`` tuples, which have no id), with
#: the item's currency, per SKU.
#: A SKU's sales: its currency and the events (``Sale`` or ``(at, quantity, unit price)``).
SalesOfSku = tuple[str, Sequence[Sale | tuple[datetime, int, Decimal]]]
SalesBySku = Mapping[str, SalesOfSku]


class StoredElasticity(BaseModel):
    """An item's elasticity estimate as the last fit left it."""

    model_config = ConfigDict(frozen=True)

    elasticity: float
    standard_error: float
    observations: int
    fitted_at: AwareDatetime
    category_elasticity: float | None = None
    raw_elasticity: float | None = None

    def estimate(self) -> ElasticityEstimate | None:
        """The engine's input, or None when the values are outside what it accepts."""
        try:
            return ElasticityEstimate(
                elasticity=self.elasticity,
                standard_error=self.standard_error,
                observations=self.observations,
                fitted_at=self.fitted_at,
            )
        except ValueError:
            return None


class Override(BaseModel):
    """A manual price set by an admin, until an instant."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    price: Price
    until: AwareDatetime
    reason: str = Field(min_length=1, max_length=500)
    force: bool = Field(default=False, description="Bypass the hard floor and ceiling too.")
    set_by: str = "admin"


@dataclass(frozen=True, slots=True)
class Window:
    """One window of a published schedule."""

    valid_from: int  # epoch seconds
    valid_until: int | None
    price: Decimal | None
    index: int  # position in the audit record's decisions


@dataclass(frozen=True, slots=True)
class Schedule:
    """The published prices of one SKU and segment."""

    sku: str
    segment: str
    stream_id: str
    fingerprint: str
    ruleset_version: str
    currency: str
    computed_at: int  # epoch ms
    windows: tuple[Window, ...]

    def window_at(self, epoch: int) -> Window | None:
        """The window in force at ``epoch``: the last one starting at or before it."""
        found = None
        for window in self.windows:
            if window.valid_from <= epoch:
                found = window
            else:
                break
        if found is not None and found.valid_until is not None and epoch >= found.valid_until:
            return None
        return found

    def decision_id(self, window: Window) -> str:
        return make_decision_id(self.sku, self.stream_id, window.index)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One entry of the audit trail: a published schedule with full explanations."""

    sku: str
    stream_id: str
    segment: str
    ruleset_version: str
    computed_at: int  # epoch ms
    decisions: list[dict[str, Any]]
    #: Of the inputs and result (see :func:`fingerprint`): two records in a row of one
    #: segment never share it, since publishing the same again writes nothing.
    fingerprint: str = ""

    def decision_id(self, index: int) -> str:
        return make_decision_id(self.sku, self.stream_id, index)


@dataclass(frozen=True, slots=True)
class PublishResult:
    written: bool
    stream_id: str


@dataclass(frozen=True, slots=True)
class PublishRequest:
    """One schedule for :meth:`Store.publish_many`."""

    sku: str
    segment: str
    decisions: Sequence[Decision]
    fingerprint_value: str
    read_at: int = 0  # from Store.read_clock before the inputs were read; 0: unknown


# Not frozen, though never changed: a full reprice builds one or more per SKU, and a
# frozen dataclass costs about five times as much to build.
@dataclass(slots=True)
class PreparedPublish:
    """One schedule for :meth:`Store.publish_prepared`, already encoded as it is stored:
    plain strings, bytes and ints, so that a caller pricing many SKUs at once can build
    it without :class:`Decision` objects (:meth:`Store.prepare_publish` builds it from a
    :class:`PublishRequest`).

    - ``sku``; ``segment``: ``""`` for the default segment, as in :class:`PublishRequest`.
    - ``fingerprint``: see :func:`fingerprint`; the same value as the schedule in place
      means nothing is written (no separators: it is stored space-delimited).
    - ``schedule_json``: exactly what :func:`encode_schedule` returns, compact JSON
      ``{"v":<ruleset version>,"c":<currency>,"w":[[<valid_from epoch s>,<valid_until
      epoch s or null>,<price as a decimal string or null>],...]}``, windows in order.
      Stored verbatim and read back by :func:`decode_schedule`; no newline in it.
    - ``audit``: exactly what :func:`encode_audit` returns for the same decisions,
      segment and version (format byte, then raw deflate with the preset dictionary); it
      leaves out what ``schedule_json`` gives, so the two must describe the same windows.
    - ``current_price``: the first window's price as ``str(Decimal)`` (what the moves
      record and compare), ``""`` when it has none.
    - ``price_epoch``: the first window's ``valid_from``, whole epoch seconds.
    - ``read_at``: from :meth:`Store.read_clock` before the inputs were read; 0: unknown.
    """

    sku: str
    segment: str
    fingerprint: str
    schedule_json: str
    audit: bytes
    current_price: str
    price_epoch: int
    read_at: int = 0


def make_decision_id(sku: str, stream_id: str, index: int) -> str:
    return f"{sku}{DECISION_SEPARATOR}{stream_id}{DECISION_SEPARATOR}{index}"


def parse_decision_id(decision_id: str) -> tuple[str, str, int] | None:
    parts = decision_id.split(DECISION_SEPARATOR)
    if len(parts) != 3 or not parts[2].isdigit():
        return None
    return parts[0], parts[1], int(parts[2])


def fingerprint(
    ruleset_version: str, segment: str, inputs_digest: str, decisions: Sequence[Decision]
) -> str:
    """Identifies a schedule by what it was computed from and what it says, not by when:
    recomputing the same inputs gives the same fingerprint, so writes are idempotent."""
    windows = [
        (
            int(d.valid_from.timestamp()),
            _epoch(d.valid_until),
            None if d.price is None else str(d.price),
            d.rule_id,
        )
        for d in decisions
    ]
    return fingerprint_windows(ruleset_version, segment, inputs_digest, windows)


def fingerprint_windows(
    ruleset_version: str,
    segment: str,
    inputs_digest: str,
    windows: Sequence[tuple[int, int | None, str | None, str]],
) -> str:
    """:func:`fingerprint` from each window's (valid_from, valid_until, price text, rule
    id), for callers that price without :class:`Decision` objects."""
    # 8 bytes: a collision could only skip one real change for one key, at odds of 2**-64.
    digest = hashlib.blake2b(digest_size=8)
    digest.update(ruleset_version.encode())
    digest.update(b"\0" + segment.encode() + b"\0" + inputs_digest.encode())
    for valid_from, _, _, _ in windows[1:]:
        digest.update(f"|{valid_from}".encode())
    for _, valid_until, price, rule_id in windows:
        until = "" if valid_until is None else valid_until
        digest.update(f"|{price}|{until}|{rule_id}".encode())
    return digest.hexdigest()


def _epoch(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp())


def encode_schedule(decisions: Sequence[Decision], currency: str, version: str) -> str:
    return schedule_json(version, currency, schedule_windows(decisions))


def schedule_windows(decisions: Sequence[Decision]) -> list[list[Any]]:
    """Each decision's window as the schedule JSON stores it: ``[valid_from, valid_until,
    price]``, epoch seconds and a decimal string (None when open or unpriced)."""
    return [
        [_epoch(d.valid_from), _epoch(d.valid_until), None if d.price is None else str(d.price)]
        for d in decisions
    ]


def schedule_json(version: str, currency: str, windows: Sequence[Sequence[Any]]) -> str:
    """The schedule JSON stored for ``windows`` (see :func:`schedule_windows`)."""
    return orjson.dumps({"v": version, "c": currency, "w": windows}).decode()


# Not frozen, though never changed: a full reprice builds one or more per SKU, and a
# frozen dataclass costs about five times as much to build.
@dataclass(slots=True)
class StoredSchedule:
    """The parts of a schedule key's value (see ``_PUBLISH``), undecoded."""

    record_id: str
    fingerprint: str
    read_at: int  # when its inputs were read, Redis clock in us
    moves: bytes
    schedule_json: bytes
    audit: bytes

    @classmethod
    def parse(cls, raw: bytes) -> StoredSchedule:
        head, _, audit = raw.partition(b"\n")
        record_id, fingerprint_value, read_at, moves, body = head.split(b" ", 4)
        return cls(record_id.decode(), fingerprint_value.decode(), int(read_at), moves, body, audit)


def decode_schedule(sku: str, segment: str, raw: bytes) -> Schedule:
    stored = StoredSchedule.parse(raw)
    payload = json.loads(stored.schedule_json)
    windows = tuple(
        Window(
            valid_from=entry[0],
            valid_until=entry[1],
            price=None if entry[2] is None else Decimal(entry[2]),
            index=index,
        )
        for index, entry in enumerate(payload["w"])
    )
    return Schedule(
        sku=sku,
        segment=segment,
        stream_id=stored.record_id,
        fingerprint=stored.fingerprint,
        ruleset_version=payload["v"],
        currency=payload["c"],
        computed_at=_record_order(stored.record_id)[0],
        windows=windows,
    )


#: How an audit payload kept as plain JSON starts (a deflated one never does).
_PLAIN_JSON_STARTS = (b"{", b"[")

#: Packs ``ARGV[3]`` audit-list entries, from the one equal to ``ARGV[1]`` to the one equal
#: to ``ARGV[2]``, into the block ``ARGV[4]`` in their place, unless the list changed
#: around them (another sweep packed them, the retention trimmed them): 1 if packed.
#: KEYS: the audit list.
_COMPACT_AUDIT = """
local at = redis.call('LPOS', KEYS[1], ARGV[1])
if not at or at == 0 then return 0 end
local last = at + tonumber(ARGV[3]) - 1
if redis.call('LINDEX', KEYS[1], last) ~= ARGV[2] then return 0 end
local after = redis.call('LRANGE', KEYS[1], last + 1, -1)
redis.call('LTRIM', KEYS[1], 0, at - 1)
redis.call('RPUSH', KEYS[1], ARGV[4])
for i = 1, #after, 500 do
  redis.call('RPUSH', KEYS[1], unpack(after, i, math.min(i + 499, #after)))
end
return 1
"""


#: Moves the oldest offer-history entries, ``ARGV[1]`` to ``ARGV[2]`` (``ARGV[3]`` of them,
#: the stream's first ones), into the block ``ARGV[4]`` at the head of the blocks list,
#: unless the stream changed at its old end (another sweep moved them); drops blocks whose
#: newest entry is older than ``ARGV[6]`` (ms) and keeps the list for the retention
#: (``ARGV[5]``, ms). ``ARGV[7]``: the id just after ``ARGV[2]``. 1 if moved.
#: KEYS: the history stream, the blocks list.
_ARCHIVE_HISTORY = """
local entries = redis.call('XRANGE', KEYS[1], '-', ARGV[2])
if #entries ~= tonumber(ARGV[3]) or entries[1][1] ~= ARGV[1] then return 0 end
redis.call('XTRIM', KEYS[1], 'MINID', ARGV[7])
redis.call('LPUSH', KEYS[2], ARGV[4])
while true do
  local oldest = redis.call('LINDEX', KEYS[2], -1)
  if not oldest then break end
  local newest_ms = tonumber(string.sub(oldest, 1, string.find(oldest, ' ', 1, true) - 1))
  if newest_ms >= tonumber(ARGV[6]) then break end
  redis.call('RPOP', KEYS[2])
end
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return 1
"""


#: Decision fields left out of an audit payload when they hold these values (most do).
_AUDIT_DEFAULTS: dict[str, Any] = {
    "held_by": None,
    "guardrails_fired": [],
    "warnings": [],
}


def _utc_iso(epoch: int | None) -> str | None:
    return None if epoch is None else utc_iso(epoch)


@lru_cache(maxsize=4096)
def utc_iso(epoch: int) -> str:
    """An instant as decisions write it; cached: a reprice writes the same few instants."""
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat()


def _window_fields(window: Sequence[Any]) -> dict[str, Any]:
    """A decision's price and bounds as its schedule window gives them."""
    return {
        "price": window[2],
        "valid_from": _utc_iso(window[0]),
        "valid_until": _utc_iso(window[1]),
    }


def encode_audit(decisions: Sequence[Decision], segment: str) -> bytes:
    """The compressed explanation of every window. Fields the schedule JSON stored beside
    it already gives (version, currency, and each window's price and bounds when they
    read back the same), and fields at their usual value, are left out."""
    windows = schedule_windows(decisions)
    return encode_audit_entries([decision_to_dict(d) for d in decisions], windows, segment)


def encode_audit_entries(
    decisions: Sequence[Mapping[str, Any]], windows: Sequence[Sequence[Any]], segment: str
) -> bytes:
    """:func:`encode_audit` from each decision as :func:`decision_to_dict` gives it and its
    window as the schedule JSON says it (``[valid_from, valid_until, price]``), for callers
    that price without :class:`Decision` objects; the same bytes for the same decisions."""
    compact = []
    for decision, window in zip(decisions, windows, strict=True):
        entry = dict(decision)  # the caller's dict stays whole
        for repeated in ("sku", "segment", "ruleset_version", "currency"):
            entry.pop(repeated)
        for name, value in (*_AUDIT_DEFAULTS.items(), *_window_fields(window).items()):
            if entry[name] == value:
                del entry[name]
        compact.append(entry)
    payload = {"seg": segment, "d": compact}
    compressor = _AUDIT_COMPRESSOR_2.copy()  # cheaper than loading the dictionary again
    # orjson writes what json.dumps(separators=(",", ":")) writes, but non-ASCII characters
    # as UTF-8, not \u escapes, and about 15 times faster: it is most of a full reprice's
    # encoding time otherwise. Records of either kind decode the same.
    body = orjson.dumps(payload)
    return _AUDIT_FORMAT_ZDICT_2 + compressor.compress(body) + compressor.flush()


def audit_json(raw: bytes) -> bytes:
    """The JSON of an audit payload in any stored format (plain JSON: from a block of
    superseded records, see ``audit_blocks``)."""
    if raw[:1] in _PLAIN_JSON_STARTS:
        return raw
    dictionary = _AUDIT_ZDICTS.get(raw[:1])
    if dictionary is not None:
        decompressor = zlib.decompressobj(-15, zdict=dictionary)
        return decompressor.decompress(raw[1:]) + decompressor.flush()
    return zlib.decompress(raw)  # the first format: a zlib stream, no dictionary


_MAX_ID_PART = 2**64 - 1


def _entry_before(entry_id: str) -> str | None:
    """The stream entry id just before ``entry_id`` (``MS-SEQ``), None before the first
    possible one; ``ValueError`` for an id that is not one."""
    ms, seq = _record_order(entry_id)
    if not (0 <= ms <= _MAX_ID_PART and 0 <= seq <= _MAX_ID_PART):
        raise ValueError(f"not a stream entry id: {entry_id!r}")
    if seq > 0:
        return f"{ms}-{seq - 1}"
    return None if ms == 0 else f"{ms - 1}-{_MAX_ID_PART}"


def _entry_after(entry_id: str) -> str:
    """The stream entry id just after ``entry_id``."""
    ms, seq = _record_order(entry_id)
    return f"{ms}-{seq + 1}" if seq < _MAX_ID_PART else f"{ms + 1}-0"


def _plain_entry(entry: bytes) -> bytes:
    """An audit-list entry with its payload as plain JSON, as a block keeps it."""
    head, _, payload = entry.partition(b"\n")
    return head + b"\n" + audit_json(payload)


def decode_audit(
    sku: str, stream_id: str, raw: bytes, *, schedule_json: bytes, fingerprint: str = ""
) -> AuditRecord:
    """An audit record from its payload and the schedule JSON stored beside it."""
    payload = json.loads(audit_json(raw))
    schedule = json.loads(schedule_json)
    decisions = []
    for index, (entry, window) in enumerate(zip(payload["d"], schedule["w"], strict=True)):
        decisions.append(
            {
                "decision_id": make_decision_id(sku, stream_id, index),
                "sku": sku,
                "segment": payload["seg"],
                "currency": schedule["c"],
                "ruleset_version": schedule["v"],
                **_window_fields(window),
                **_AUDIT_DEFAULTS,
                **entry,
            }
        )
    return AuditRecord(
        sku=sku,
        stream_id=stream_id,
        segment=payload["seg"],
        ruleset_version=schedule["v"],
        computed_at=int(stream_id.split("-")[0]),
        decisions=decisions,
        fingerprint=fingerprint,
    )


def pack_command(parts: Sequence[bytes]) -> bytes:
    """``parts`` as one command in the Redis protocol (RESP2 array of bulk strings)."""
    packed = [b"*%d\r\n" % len(parts)]
    for part in parts:
        packed += (b"$%d\r\n" % len(part), part, b"\r\n")
    return b"".join(packed)


def _publish_result(reply: Any) -> PublishResult:
    return PublishResult(written=bool(int(reply[0])), stream_id=reply[1].decode())


def _change_fields(sku: str, segment: str) -> dict[str, str]:
    return {"sku": sku, "seg": segment or keys.DEFAULT_SEGMENT_KEY}


def demand_from_sales(
    raw: Mapping[bytes, bytes], now: datetime, inventory: int | None
) -> DemandStats | None:
    """Demand signals from the ``keys.sales`` hash as read (whole, or as
    :meth:`Store.read_inputs` reads it with :func:`demand_fields`); None if no sale is
    recorded."""
    today = now.astimezone(UTC).date()
    units = units_by_day(raw, today, BASELINE_DAYS)
    if units is None:
        return None
    return demand_stats(units, inventory, now, selling_days(raw, today))


def demand_fields(now: datetime) -> tuple[bytes, ...]:
    """The sales-hash fields :func:`demand_from_sales` reads at ``now``: the units of
    each day of the signals' baseline. It needs the rest of the hash only when none of
    those days sold anything (to tell "sold before" from "never sold")."""
    return (*unit_fields(now.astimezone(UTC).date(), BASELINE_DAYS), FIRST_SALE_FIELD)


def changes_from_moves(moves: bytes) -> list[PriceChange]:
    """A schedule value's moves (``epoch:price`` newest first, comma separated; ``-``
    for none) as price changes, oldest first."""
    if moves == b"-":
        return []
    changes = []
    for entry in reversed(moves.split(b",")):
        epoch, price = entry.decode().split(":", 1)
        changes.append(
            PriceChange(at=datetime.fromtimestamp(int(epoch), tz=UTC), price=Decimal(price))
        )
    return changes


@dataclass(frozen=True, slots=True)
class _StoredRecord:
    """An audit record as stored, with the schedule JSON kept beside it."""

    record_id: str
    payload: bytes
    schedule_json: bytes
    fingerprint: str

    def decode(self, sku: str) -> AuditRecord:
        return decode_audit(
            sku,
            self.record_id,
            self.payload,
            schedule_json=self.schedule_json,
            fingerprint=self.fingerprint,
        )


def _record_order(record_id: str) -> tuple[int, int]:
    milliseconds, sequence = record_id.split("-", 1)
    return int(milliseconds), int(sequence)


_MS = timedelta(milliseconds=1)
_log = logging.getLogger(__name__)
_T = TypeVar("_T")


#: What a Redis Cluster answers, once redis-py's own retries are spent, while a shard is
#: down, failing over, or not serving a slot.
_CLUSTER_UNAVAILABLE = (ClusterDownError, MasterDownError, TryAgainError, SlotNotCoveredError)


#: What connecting raises when no node is reachable: RedisClusterException before
#: redis-py 8, its subclass RedisClusterUnreachableError since. Other subclasses are misuse.
_NO_NODE_REACHABLE: tuple[type[Exception], ...] = (
    RedisClusterException,
    getattr(redis.exceptions, "RedisClusterUnreachableError", RedisClusterException),
)


class InvalidStoredItemError(ValueError):
    """A stored item that does not validate: written around the API (by a script, or by
    an older version, with a field this one does not know). Replacing it
    (``PUT /v1/items/{sku}``) mends it."""

    def __init__(self, sku: str, error: ValidationError) -> None:
        self.sku = sku
        problems = [
            f"{'.'.join(str(part) for part in found['loc']) or 'the item'}: {found['msg']}"
            for found in error.errors(include_url=False)
        ]
        self.reason = "; ".join(problems[:3]) + (" ..." if len(problems) > 3 else "")
        super().__init__(f"the stored item {sku} does not validate ({self.reason})")


def stored_item(sku: str, raw: bytes | str) -> ItemFacts:
    """The item stored as ``raw``; :class:`InvalidStoredItemError` when it does not
    validate."""
    try:
        return ItemFacts.model_validate_json(raw)
    except ValidationError as error:
        raise InvalidStoredItemError(sku, error) from None


def _item_or_error(sku: str, raw: bytes | None) -> ItemFacts | InvalidStoredItemError | None:
    if raw is None:
        return None
    try:
        return stored_item(sku, raw)
    except InvalidStoredItemError as error:
        return error


class ClusterUnavailableError(RedisConnectionError):
    """The cluster cannot serve a key now (CLUSTERDOWN, a master down, a slot without a
    node): a ``ConnectionError``, as one Redis that cannot be reached raises, so callers
    answer 503, serve stale lookups or retry the same way whatever the topology."""


class ClusterClient(RedisCluster):
    """redis-py's cluster client, except that a cluster that cannot answer, wholly (no node
    reachable) or for a key (see ``ClusterUnavailableError``), raises a
    ``ConnectionError``, as one Redis does: callers then treat it as Redis being
    unavailable (a 503, stale lookups) and not as a bug."""

    async def initialize(self, *args: Any, **kwargs: Any) -> ClusterClient:
        try:
            await super().initialize(*args, **kwargs)
        except RedisClusterException as exc:
            if type(exc) not in _NO_NODE_REACHABLE:
                raise  # a cross-slot transaction or another misuse
            raise RedisConnectionError(str(exc)) from exc
        return self

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except _CLUSTER_UNAVAILABLE as exc:
            raise ClusterUnavailableError(str(exc)) from exc

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> Any:
        if shard_hint:
            raise RedisClusterException("shard_hint is deprecated in cluster mode")
        return _ClusterPipeline(self, transaction)  # type: ignore[abstract]  # as upstream


class _ClusterPipeline(ClusterPipeline):
    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> Any:
        try:
            return await super().execute(raise_on_error, allow_redirections)
        except _CLUSTER_UNAVAILABLE as exc:
            raise ClusterUnavailableError(str(exc)) from exc


async def _queue_entries(
    pipe: Pipeline, entries: Sequence[_T], write: Callable[[Pipeline, _T], Awaitable[None]]
) -> list[tuple[int, int]]:
    """Queue each entry's commands in ``pipe``; where each entry's replies will be."""
    spans = []
    for entry in entries:
        start = len(pipe)
        await write(pipe, entry)
        spans.append((start, len(pipe)))
    return spans


def _item_json(item: ItemFacts) -> str:
    return item.model_dump_json(exclude_defaults=True)


#: A schedule published this recently is announced again when a retry finds it in place:
#: the announcement after the first attempt may be what failed.
REANNOUNCE_WINDOW_MS = 120_000


def _needs_announcing(result: PublishResult) -> bool:
    """Announce new schedules, and recent ones a retry found unchanged: the changes stream
    is written after the publish script (it lives on another shard in a cluster), so a
    failure between the two would otherwise leave API caches unaware for good."""
    if result.written:
        return True
    published_ms = int(result.stream_id.split("-", 1)[0])
    # Stream ids carry Redis's clock in ms, close to ours; the window is far wider.
    return time.time() * 1000 - published_ms < REANNOUNCE_WINDOW_MS


class Store:
    """Every read and write the service makes to Redis."""

    def __init__(
        self,
        client: aioredis.Redis | RedisCluster,
        *,
        retention: timedelta,
        queue_partitions: int = 1,
    ) -> None:
        # Typed as a single Redis: the cluster client takes the same commands, and the
        # differences (transactions per hash slot, scripts in pipelines) are handled here.
        self.redis: aioredis.Redis = cast(aioredis.Redis, client)
        self.cluster = isinstance(client, RedisCluster)
        self.retention = retention
        self._publish = client.register_script(_PUBLISH)
        self._publish_many = client.register_script(_PUBLISH_MANY)
        self._retire = client.register_script(_RETIRE)
        self._announce = client.register_script(_ANNOUNCE)
        self._record_buckets = client.register_script(_RECORD_BUCKETS)
        self._read_inputs = client.register_script(_READ_INPUTS)
        self._compact_audit = client.register_script(_COMPACT_AUDIT)
        self._archive_history = client.register_script(_ARCHIVE_HISTORY)
        self._scripts_loaded = False
        #: The work queue's streams, one per partition (see ``keys.dirty_streams``).
        self.dirty_streams = keys.dirty_streams(queue_partitions)
        #: The changes streams, partitioned the same way (``keys.changes_streams``).
        self.changes_streams = keys.changes_streams(queue_partitions)

    def dirty_stream(self, sku: str) -> str:
        """The work-queue stream that takes ``sku``'s entries."""
        return self.dirty_streams[keys.sku_partition(sku, len(self.dirty_streams))]

    def changes_stream(self, sku: str) -> str:
        """The changes stream that announces ``sku``'s schedules."""
        return self.changes_streams[keys.sku_partition(sku, len(self.changes_streams))]

    def _queue_dirty(self, pipe: Pipeline, skus: Iterable[str], reason: str) -> None:
        """Add the work-queue entries that get ``skus`` repriced to ``pipe``."""
        now = str(int(time.time() * 1000))
        for sku in skus:
            pipe.xadd(
                self.dirty_stream(sku),
                {"sku": sku, "reason": reason, "at": now},
                maxlen=DIRTY_MAXLEN,
                approximate=True,
            )

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        retention: timedelta,
        pool_size: int = 64,
        connect_timeout: float = 1.0,
        socket_timeout: float = 1.0,
        cluster: bool = False,
        queue_partitions: int = 1,
    ) -> Store:
        if cluster:
            return cls(
                ClusterClient.from_url(
                    url,
                    max_connections=pool_size,
                    socket_connect_timeout=connect_timeout,
                    socket_timeout=socket_timeout,
                ),
                retention=retention,
                queue_partitions=queue_partitions,
            )
        client = aioredis.Redis.from_url(
            url,
            max_connections=pool_size,
            socket_connect_timeout=connect_timeout,
            socket_timeout=socket_timeout,
            health_check_interval=15,
        )
        return cls(client, retention=retention, queue_partitions=queue_partitions)

    @classmethod
    def from_settings(cls, url: str, settings: Settings) -> Store:
        """A store on ``url`` with the configured retention, pool and timeouts; on the
        Redis Cluster when ``url`` is the configured cluster's."""
        return cls.from_url(
            url,
            retention=timedelta(days=settings.retention_days),
            pool_size=settings.redis_pool_size,
            connect_timeout=settings.redis_connect_timeout,
            socket_timeout=settings.redis_socket_timeout,
            cluster=url == settings.redis_cluster_url,
            queue_partitions=settings.queue_partitions,
        )

    # -- writes that span hash slots ------------------------------------------------------------

    async def _commit(
        self,
        entries: Sequence[_T],
        write: Callable[[Pipeline, _T], Awaitable[None]],
        tail: Callable[[Pipeline], None],
    ) -> tuple[list[list[Any]], list[Any]]:
        """``write`` each entry's commands (one SKU's keys, so one hash slot), then the
        tail's (the global keys: the SKU index, the work queue); the replies of each
        entry's commands and of the tail's.

        On one Redis all of it is one MULTI/EXEC: all or nothing. On a Redis Cluster a
        transaction cannot span slots, and one per SKU made bulk writes ten times slower,
        so the entries go out in one pipeline (a round trip per shard), then the tail:
        each command is atomic, but a failure part-way leaves some written and others
        not. The caller's error makes its client retry, and every write made this way
        converges when retried (only an offer's history can then hold a repeated entry).
        """
        if not self.cluster:
            async with self.redis.pipeline(transaction=True) as pipe:
                spans = await _queue_entries(pipe, entries, write)
                tail_start = len(pipe)
                tail(pipe)
                replies = await pipe.execute()
            return [replies[a:b] for a, b in spans], replies[tail_start:]

        async def send() -> list[list[Any]]:
            async with self.redis.pipeline(transaction=False) as pipe:
                spans = await _queue_entries(pipe, entries, write)
                replies = await pipe.execute() if len(pipe) else []
            return [replies[a:b] for a, b in spans]

        entry_replies = await self._scripted(send)
        async with self.redis.pipeline(transaction=False) as pipe:
            tail(pipe)
            tail_replies = await pipe.execute() if len(pipe) else []
        return entry_replies, tail_replies

    async def _scripted(self, call: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``call``, whose commands may run this store's scripts.

        redis-py sends no script to a cluster pipeline by itself: on a cluster they are
        loaded on every shard first, and when a restarted shard has lost them, loaded
        again and ``call`` run again (every call made this way is idempotent).
        """
        if not self.cluster:
            return await call()
        if not self._scripts_loaded:
            await self._load_scripts()
        try:
            return await call()
        except NoScriptError:
            await self._load_scripts()
            return await call()

    async def run_script(
        self, script: AsyncScript, script_keys: Sequence[bytes], args: Sequence[bytes]
    ) -> Any:
        """``EVALSHA`` of ``script`` on one Redis, every key and argument already bytes.

        The command is packed here: redis-py type-checks and converts each argument in
        Python (about 1.5 µs each on these machines), and the full reprice sends about 18
        per SKU. Retries, health checks and a script lost in a Redis restart are handled
        as redis-py handles them for a script call.
        """
        command = pack_command(
            [b"EVALSHA", script.sha.encode(), b"%d" % len(script_keys), *script_keys, *args]
        )
        pool = self.redis.connection_pool
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]

        async def call() -> Any:
            await connection.send_packed_command(command)
            return await connection.read_response()

        async def drop(_: BaseException) -> None:
            await connection.disconnect()  # a reply may be half read

        try:
            try:
                return await connection.retry.call_with_retry(call, drop)
            except NoScriptError:
                await self.redis.script_load(script.script)
                return await connection.retry.call_with_retry(call, drop)
        except redis.exceptions.ResponseError:
            raise  # an error reply, read whole: the connection is fit for the next call
        except BaseException:
            await connection.disconnect()  # cancelled or failed mid-reply: start afresh
            raise
        finally:
            await pool.release(connection)

    async def read_inputs(
        self, keys_per_sku: Sequence[Sequence[str]], sales_fields: Sequence[bytes] = ()
    ) -> list[list[Any]]:
        """The values of each SKU's input keys, in order (see ``_READ_INPUTS``: the same
        number of keys per SKU, hashes second and fourth, as flat field/value lists; of
        the sales hash, with ``sales_fields``, those fields, or all when none of them
        records a unit sold or the hash is no bigger).

        On one Redis, one script call per :data:`SCRIPT_BATCH` SKUs; on a cluster, where
        each SKU is its own hash slot, one call per SKU, :data:`PUBLISH_PIPELINE` calls per
        round trip: one command to route per SKU rather than one per key, which is what
        redis-py's cluster client spends its time on.
        """
        rows: list[list[Any]] = []
        if not keys_per_sku:
            return rows
        per = len(keys_per_sku[0])
        arguments = [b"%d" % per, *sales_fields]

        async def send(batch: Sequence[Sequence[str]]) -> list[Any]:
            async with self.redis.pipeline(transaction=False) as pipe:
                for sku_keys in batch:
                    await self._queue_script(pipe, self._read_inputs, sku_keys, arguments)
                replies: list[Any] = await pipe.execute()
            return replies

        for batch in self._batches(keys_per_sku):
            if self.cluster:
                rows += [reply[0] for reply in await self._scripted(partial(send, batch))]
            else:
                flat = [key.encode() for sku_keys in batch for key in sku_keys]
                rows += await self.run_script(self._read_inputs, flat, arguments)
        return rows

    def _batches(self, items: Sequence[_T]) -> Iterator[Sequence[_T]]:
        """``items`` in the slices one round trip takes: :data:`SCRIPT_BATCH` SKUs per
        script call on one Redis, :data:`PUBLISH_PIPELINE` per-SKU calls per pipeline on
        a cluster."""
        size = PUBLISH_PIPELINE if self.cluster else SCRIPT_BATCH
        for start in range(0, len(items), size):
            yield items[start : start + size]

    async def _load_scripts(self) -> None:
        for script in (
            self._publish,
            self._retire,
            self._announce,
            self._record_buckets,
            self._read_inputs,
        ):
            await self.redis.script_load(script.script)
        self._scripts_loaded = True

    async def _queue_script(
        self, pipe: Pipeline, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]
    ) -> None:
        """Queue one call of ``script`` in ``pipe`` (on a cluster: EVALSHA, the call made
        through :meth:`_scripted`)."""
        if not self.cluster:
            await script(keys=keys, args=args, client=pipe)
            return
        pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)

    async def close(self) -> None:
        await self.redis.aclose()

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    async def record_partitions(self) -> None:
        """Record this process's queue partition count (repricers, which read the work
        queue and write the changes streams); warn when it differs from the last one."""
        count = len(self.dirty_streams)
        previous: Any = await self.redis.set(keys.QUEUE_PARTITIONS, count, get=True)
        if previous is not None and int(previous) != count:
            _log.warning(
                "the work queue and the changes streams had %s partitions and now have %d: "
                "entries waiting in partitions no longer read are left there; every process "
                "needs the same PRICING_QUEUE_PARTITIONS",
                int(previous),
                count,
            )

    async def check_partitions(self) -> bool:
        """Whether this process's queue partition count is the repricers' (or none is
        recorded yet); logs an error when it is not."""
        recorded: Any = await self.redis.get(keys.QUEUE_PARTITIONS)
        count = len(self.dirty_streams)
        if recorded is None or int(recorded) == count:
            return True
        _log.error(
            "the repricers use %s queue partitions and this process %d: it misses the "
            "changes of the partitions it does not read; set the same "
            "PRICING_QUEUE_PARTITIONS on every process",
            int(recorded),
            count,
        )
        return False

    async def read_clock(self) -> int:
        """Redis's clock in microseconds: every repricer reads the same clock."""
        seconds, microseconds = await self.redis.time()
        return int(seconds) * 1_000_000 + int(microseconds)

    # -- catalogue ----------------------------------------------------------------------------

    async def put_items(self, items: Sequence[ItemFacts], *, reason: str = "item") -> list[bool]:
        """Insert or replace items (recording the inventory levels they carry) and queue
        them (see :meth:`_commit`); True for each that was new."""
        if not items:
            return []

        async def write(pipe: Pipeline, item: ItemFacts) -> None:
            pipe.set(keys.item(item.sku), _item_json(item))
            if item.inventory is not None:
                # The level also goes into the day's and hour's buckets, as an inventory
                # update does: days of supply and sell-through read it there.
                await self._queue_buckets(
                    pipe, item.sku, item.currency, [], inventory=item.inventory
                )

        def tail(pipe: Pipeline) -> None:
            for item in items:
                pipe.sadd(keys.SKU_INDEX, item.sku)
            self._queue_dirty(pipe, [item.sku for item in items], reason)

        _, replies = await self._commit(items, write, tail)
        return [bool(added) for added in replies[: len(items)]]

    async def set_inventory(self, sku: str, inventory: int) -> ItemFacts | None:
        """Set an item's inventory and queue it, or None if there is no such item.

        A read-modify-write under WATCH: when the item is written between the read and the
        write (a PUT of the whole item), the transaction is refused and run again on the new
        item, so neither write is lost."""
        item_key = keys.item(sku)

        async def update(pipe: Pipeline) -> ItemFacts | None:
            raw = await pipe.get(item_key)
            if raw is None:
                return None
            updated = stored_item(sku, raw).model_copy(update={"inventory": inventory})
            pipe.multi()  # type: ignore[no-untyped-call]  # untyped in redis-py
            pipe.set(item_key, _item_json(updated))
            await self._queue_buckets(pipe, sku, "", [], inventory=inventory)
            if not self.cluster:  # the queue lives on another shard in a cluster
                self._queue_dirty(pipe, [sku], "inventory")
            return updated

        result: ItemFacts | None = await self._scripted(
            lambda: self.redis.transaction(update, item_key, value_from_callable=True)
        )
        if result is not None and self.cluster:
            await self.mark_dirty([sku], "inventory")
        return result

    async def get_item(self, sku: str) -> ItemFacts | None:
        """The item, None if there is none; :class:`InvalidStoredItemError` if it does not
        validate."""
        raw = await self.redis.get(keys.item(sku))
        return None if raw is None else stored_item(sku, raw)

    async def get_items(
        self, skus: Sequence[str]
    ) -> list[ItemFacts | InvalidStoredItemError | None]:
        """Each SKU's item, None if there is none, and for one that does not validate its
        error: one bad item does not fail a batch."""
        if not skus:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for sku in skus:
                pipe.get(keys.item(sku))
            raws = await pipe.execute()
        return [_item_or_error(sku, raw) for sku, raw in zip(skus, raws, strict=True)]

    async def delete_item(self, sku: str) -> bool:
        """Remove the item, its live prices and inputs, and tell the API caches, in one
        transaction; False if there was no such item. Its audit trail stays until
        retention: each live price's record moves to the history list. Under WATCH of
        the segments set, so a price published meanwhile for a new segment is not missed."""

        async def remove(pipe: Pipeline) -> bool:
            segments: Any = await pipe.smembers(keys.segments(sku))
            schedules = [
                keys.schedule(sku, ""),
                *(keys.schedule(sku, s.decode()) for s in segments),
            ]
            pipe.multi()  # type: ignore[no-untyped-call]  # untyped in redis-py
            pipe.delete(keys.item(sku))
            pipe.delete(keys.offers(sku), keys.override(sku))
            await self._queue_script(
                pipe,
                self._retire,
                [keys.audit(sku), keys.segments(sku), *schedules],
                [
                    int(time.time() * 1000),
                    int(self.retention.total_seconds() * 1000),
                    HISTORY_MAXLEN,
                ],
            )
            if not self.cluster:  # the index and the stream live on other shards there
                self._forget(pipe, sku)
            return True

        results: list[Any] = await self._scripted(
            lambda: self.redis.transaction(remove, keys.segments(sku))
        )
        if self.cluster and results[0]:
            async with self.redis.pipeline(transaction=False) as pipe:
                self._forget(pipe, sku)
                await pipe.execute()
        return bool(results[0])

    def _forget(self, pipe: Pipeline, sku: str) -> None:
        """Take a deleted SKU out of the index and tell the API caches."""
        pipe.srem(keys.SKU_INDEX, sku)
        fields: dict[Any, Any] = {"sku": sku}
        pipe.xadd(self.changes_stream(sku), fields, maxlen=CHANGES_MAXLEN, approximate=True)

    async def count_items(self) -> int:
        return int(await self.redis.scard(keys.SKU_INDEX))

    async def iter_skus(self, batch: int = 10_000) -> AsyncIterator[list[str]]:
        """Every SKU in the catalogue, ``batch`` at a time, each batch sorted. The index
        is scanned :data:`SKU_SCAN_COUNT` at a time: one ``SSCAN`` of 10,000 members kept
        Redis from its other clients for about 8 ms."""
        cursor = 0
        pending: list[str] = []
        while True:
            chunk: Any
            cursor, chunk = await self.redis.sscan(keys.SKU_INDEX, cursor, count=SKU_SCAN_COUNT)
            pending.extend(s.decode() for s in chunk)
            while len(pending) >= batch:
                yield sorted(pending[:batch])
                del pending[:batch]
            if cursor == 0:
                if pending:
                    yield sorted(pending)
                return

    # -- competitor offers --------------------------------------------------------------------

    async def put_offers(
        self, sku: str, offers: Iterable[OfferStatus], *, reason: str | None = None
    ) -> None:
        """:meth:`record_offers` for one SKU."""
        await self.record_offers({sku: list(offers)}, reason=reason)

    async def record_offers(
        self, offers: Mapping[str, Sequence[OfferStatus]], *, reason: str | None = None
    ) -> None:
        """Store the latest offer of each competitor and its history, in one transaction.
        With a ``reason``, the SKUs with an accepted offer among theirs are queued in it."""
        if not offers:
            return
        retention_ms = int(self.retention.total_seconds() * 1000)
        minid = f"{int(time.time() * 1000) - retention_ms}-0"

        async def write(pipe: Pipeline, entry: tuple[str, Sequence[OfferStatus]]) -> None:
            sku, statuses = entry
            for offer in statuses:
                pipe.hset(keys.offers(sku), offer.observation.competitor, offer.model_dump_json())
                fields = cast("dict[FieldT, EncodableT]", history_entry(offer))
                pipe.xadd(keys.offer_history(sku), fields, minid=minid, approximate=True)
            pipe.pexpire(keys.offer_history(sku), retention_ms)

        def tail(pipe: Pipeline) -> None:
            if reason is not None:
                changed = [
                    sku for sku, statuses in offers.items() if any(o.accepted for o in statuses)
                ]
                self._queue_dirty(pipe, changed, reason)

        await self._commit(list(offers.items()), write, tail)

    async def market_reads(
        self, skus: Sequence[str], history: int
    ) -> dict[str, tuple[dict[bytes, bytes], list[tuple[bytes, dict[bytes, bytes]]]]]:
        """Each SKU's offers hash and its ``history`` latest offer-history entries (newest
        first), as read, in one round trip: what ``observations.build_market`` takes."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for sku in skus:
                pipe.hgetall(keys.offers(sku))
                pipe.xrevrange(keys.offer_history(sku), count=history)
            replies: list[Any] = await pipe.execute()
        return {sku: (replies[2 * i], replies[2 * i + 1]) for i, sku in enumerate(skus)}

    async def offer_history(
        self,
        sku: str,
        *,
        competitor: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[tuple[str, OfferStatus]], str | None]:
        """Observations received for ``sku`` (of ``competitor`` only, if given), newest
        first, each with its history entry id, received between ``since`` and ``until``,
        and the cursor of the next page (the entry id to continue after), if there may be
        more. The stream is read first, then the blocks of older entries. A page looks at
        no more than :data:`OFFER_HISTORY_SCAN` entries: a page cut short by that has
        fewer observations and a cursor."""
        newest = None if until is None else f"{int(until.timestamp() * 1000)}-{_MAX_ID_PART}"
        if cursor is not None:
            newest = _entry_before(cursor)
            if newest is None:
                return [], None
        if newest is not None and newest.startswith("-"):
            return [], None  # until before 1970: nothing was received then
        oldest = None if since is None else f"{max(0, int(since.timestamp() * 1000))}-0"
        found: list[tuple[str, OfferStatus]] = []
        scanned = 0
        async for entry_id, fields in self._history_newest_first(sku, newest, oldest):
            scanned += 1
            if competitor is None or history_competitor(fields) in (None, competitor):
                offer = history_offer(fields)
                if competitor is None or offer.observation.competitor == competitor:
                    found.append((entry_id, offer))
            if len(found) > limit:
                return found[:limit], found[limit - 1][0]
            if scanned >= OFFER_HISTORY_SCAN:
                return found, entry_id
        return found, None

    async def _history_newest_first(
        self, sku: str, newest: str | None, oldest: str | None
    ) -> AsyncIterator[HistoryEntry]:
        """The history entries from ``newest`` down to ``oldest`` (ids, inclusive; None:
        no bound): the stream's, then the blocks'."""
        key = keys.offer_history(sku)
        high = newest or "+"
        while True:
            entries: Any = await self.redis.xrevrange(
                key, max=high, min=oldest or "-", count=OFFER_HISTORY_PAGE
            )
            for entry_id, fields in entries:
                yield entry_id.decode(), fields
            if len(entries) < OFFER_HISTORY_PAGE:
                break
            high = f"({entries[-1][0].decode()}"
        upper = None if newest is None else _record_order(newest)
        lower = None if oldest is None else _record_order(oldest)
        blocks: Any = await self.redis.lrange(keys.offer_history_blocks(sku), 0, -1)
        for block in blocks:
            if lower is not None and block_newest_ms(block) < lower[0]:
                return
            for entry_id, fields in unpack_history(block):
                order = _record_order(entry_id)
                if lower is not None and order < lower:
                    return
                if upper is None or order <= upper:
                    yield entry_id, fields

    async def archive_offer_history(self, skus: Sequence[str]) -> int:
        """Move the offer-history entries of ``skus`` older than the newest
        ``HISTORY_STREAM_KEPT`` into a block (see ``offers``), where there are
        at least ``HISTORY_BLOCK_MIN`` of them; the number of blocks written."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for sku in skus:
                pipe.xlen(keys.offer_history(sku))
            lengths: list[int] = await pipe.execute()
        due = {
            sku: min(length - HISTORY_STREAM_KEPT, HISTORY_BLOCK_MAX)
            for sku, length in zip(skus, lengths, strict=True)
            if length >= HISTORY_STREAM_KEPT + HISTORY_BLOCK_MIN
        }
        packed = grouped = 0
        group: dict[str, int] = {}
        for sku, count in due.items():
            group[sku] = count
            grouped += count
            # A group's entries are read in one reply: a bounded one (the first sweep
            # after an upgrade finds up to HISTORY_BLOCK_MAX entries to move per SKU).
            if grouped >= HISTORY_BLOCK_MAX * 5:
                packed += await self._archive_group(group)
                group, grouped = {}, 0
        return packed + (await self._archive_group(group) if group else 0)

    async def _archive_group(self, due: Mapping[str, int]) -> int:
        """Move the ``due[sku]`` oldest offer-history entries of each SKU into a block."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for sku, count in due.items():
                pipe.xrange(keys.offer_history(sku), count=count)
            runs: list[Any] = await pipe.execute()
        retention_ms = int(self.retention.total_seconds() * 1000)
        oldest_kept = int(time.time() * 1000) - retention_ms
        packed = 0
        for sku, run in zip(due, runs, strict=True):
            entries = [(entry_id.decode(), fields) for entry_id, fields in reversed(run)]
            first, last = entries[-1][0], entries[0][0]
            after_last = _entry_after(last)
            arguments: list[EncodableT] = [first, last, len(entries), pack_history(entries)]
            arguments += [retention_ms, oldest_kept, after_last]
            script_keys = [keys.offer_history(sku), keys.offer_history_blocks(sku)]
            packed += int(await self._archive_history(keys=script_keys, args=arguments))
        return packed

    async def get_offers(self, sku: str) -> list[OfferStatus]:
        raw = await self.redis.hgetall(keys.offers(sku))
        offers = [OfferStatus.model_validate_json(value) for value in raw.values()]
        return sorted(offers, key=lambda o: o.observation.competitor)

    # -- sales and demand -----------------------------------------------------------------------

    async def add_sales(
        self,
        sku: str,
        currency: str,
        sales: Sequence[Sale | tuple[datetime, int, Decimal]],
        *,
        reason: str | None = None,
    ) -> list[int]:
        """:meth:`record_sales` for one SKU: the positions of the events not counted."""
        return (await self.record_sales({sku: (currency, sales)}, reason=reason))[sku]

    async def record_sales(
        self, sales: SalesBySku, *, reason: str | None = None
    ) -> dict[str, list[int]]:
        """Add sales events to the SKUs' hour and day buckets, all or nothing, and return
        per SKU the positions of the events not counted: ids counted before (in this batch
        or an earlier one), or days past the retention. A late event lands in its own
        hour and day. With a ``reason``, the SKUs are queued in the same transaction."""
        if not sales:
            return {}

        async def write(pipe: Pipeline, entry: tuple[str, SalesOfSku]) -> None:
            sku, (currency, events) = entry
            await self._queue_buckets(pipe, sku, currency, events)

        def tail(pipe: Pipeline) -> None:
            if reason is not None:
                self._queue_dirty(pipe, sales, reason)

        replies, _ = await self._commit(list(sales.items()), write, tail)
        return {
            sku: [int(position) - 1 for position in reply[0]]
            for sku, reply in zip(sales, replies, strict=True)
        }

    async def _queue_buckets(
        self,
        pipe: Pipeline,
        sku: str,
        currency: str,
        events: Sequence[Sale | tuple[datetime, int, Decimal]],
        *,
        inventory: int | None = None,
    ) -> None:
        """Add the bucket script's call for one SKU's events (and inventory) to ``pipe``."""
        now = datetime.now(UTC)
        oldest = now - self.retention
        arguments: list[bytes | str | int] = [
            int(self.retention.total_seconds()),
            int(HOURLY_RETENTION.total_seconds()),
            day_bucket(oldest),
            hour_bucket(now - HOURLY_RETENTION),
            int(oldest.timestamp()),
            day_bucket(now),
            hour_bucket(now),
            "" if inventory is None else inventory,
        ]
        sales = [event if isinstance(event, Sale) else Sale(*event) for event in events]
        week_of = [sales_week(sale.at) if sale.event_id else None for sale in sales]
        weeks = list(dict.fromkeys(week for week in week_of if week is not None))
        arguments += [currency, len(weeks)]
        arguments += [int((week + SALES_WEEK + self.retention).timestamp()) for week in weeks]
        # The KEYS index (1-based) of each week's id hash: after the three bucket keys.
        id_key = {week: 4 + position for position, week in enumerate(weeks)}
        for sale, sale_week in zip(sales, week_of, strict=True):
            event_id = sale.event_id
            arguments += [
                sales_id_digest(event_id) if event_id else "",
                event_id or "",
                int(sale.at.timestamp()),
                day_bucket(sale.at),
                hour_bucket(sale.at),
                sale.quantity,
                sale.quantity * to_minor(sale.unit_price, currency),
                0 if sale_week is None else id_key[sale_week],
            ]
        script_keys = [
            keys.sales(sku),
            keys.sales_hourly(sku),
            keys.sales_events(sku),
            *(keys.sales_ids(sku, day_bucket(week)) for week in weeks),
        ]
        await self._queue_script(pipe, self._record_buckets, script_keys, arguments)

    async def sales_buckets(self, skus: Sequence[str]) -> list[dict[bytes, bytes]]:
        """The day-bucket hashes of ``skus`` as read, in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for sku in skus:
                pipe.hgetall(keys.sales(sku))
            raws: list[dict[bytes, bytes]] = await pipe.execute()
        return raws

    async def hourly_buckets(self, sku: str) -> dict[bytes, bytes]:
        raw: Any = await self.redis.hgetall(keys.sales_hourly(sku))
        return cast(dict[bytes, bytes], raw)

    # -- elasticity estimates ---------------------------------------------------------------------

    async def get_elasticity(self, sku: str) -> StoredElasticity | None:
        raw = await self.redis.get(keys.elasticity(sku))
        return None if raw is None else StoredElasticity.model_validate_json(raw)

    async def get_elasticities(self, skus: Sequence[str]) -> list[StoredElasticity | None]:
        if not skus:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for sku in skus:
                pipe.get(keys.elasticity(sku))
            raws = await pipe.execute()
        return [None if raw is None else StoredElasticity.model_validate_json(raw) for raw in raws]

    async def put_elasticities(
        self, estimates: Mapping[str, StoredElasticity | None], *, changed: Sequence[str]
    ) -> None:
        """Store estimates (None: remove the SKU's estimate) and queue the ``changed``
        SKUs for repricing, in transactions of :data:`ELASTICITY_WRITE_CHUNK` SKUs. An
        estimate lives for the retention unless a later fit replaces it."""
        items = list(estimates.items())
        changed_set = set(changed)
        ttl = int(self.retention.total_seconds())

        async def write(pipe: Pipeline, entry: tuple[str, StoredElasticity | None]) -> None:
            sku, estimate = entry
            if estimate is None:
                pipe.delete(keys.elasticity(sku))
            else:
                pipe.set(keys.elasticity(sku), estimate.model_dump_json(), ex=ttl)

        for start in range(0, len(items), ELASTICITY_WRITE_CHUNK):
            chunk = items[start : start + ELASTICITY_WRITE_CHUNK]

            queued = [sku for sku, _ in chunk if sku in changed_set]

            def tail(pipe: Pipeline, queued: list[str] = queued) -> None:
                self._queue_dirty(pipe, queued, "elasticity")

            await self._commit(chunk, write, tail)

    async def set_elasticity_fit_status(self, status: Mapping[str, str]) -> None:
        await self.redis.hset(keys.ELASTICITY_FIT, mapping=dict(status))  # type: ignore[arg-type]

    async def elasticity_fit_status(self) -> dict[str, str]:
        raw = await self.redis.hgetall(keys.ELASTICITY_FIT)
        return {k.decode(): v.decode() for k, v in cast(dict[bytes, bytes], raw).items()}

    async def claim_elasticity_fit(self, interval: timedelta) -> bool:
        """True for the one caller per ``interval`` that should run the scheduled fit."""
        return await self._claim_interval(keys.ELASTICITY_FIT_DUE, interval)

    async def _claim_interval(self, key: str, interval: timedelta) -> bool:
        """True for the one caller per ``interval`` that sets ``key`` (NX, with that TTL)."""
        claimed = await self.redis.set(key, str(int(time.time())), nx=True, px=int(interval / _MS))
        return bool(claimed)

    # -- overrides and the kill switch ------------------------------------------------------------

    async def set_override(self, sku: str, override: Override) -> None:
        """Store a manual price and queue the SKU to apply it, in one transaction."""

        async def write(pipe: Pipeline, _: None) -> None:
            pipe.set(keys.override(sku), override.model_dump_json())

        await self._commit([None], write, lambda pipe: self._queue_dirty(pipe, [sku], "override"))

    async def clear_override(self, sku: str) -> bool:
        """Remove a manual price and queue the SKU, in one transaction; False (and nothing
        queued) if there was none."""
        override_key = keys.override(sku)

        async def remove(pipe: Pipeline) -> bool:
            # GET, not EXISTS: redis-py's cluster pipeline drops EXISTS after a WATCH.
            if await pipe.get(override_key) is None:
                return False
            pipe.multi()  # type: ignore[no-untyped-call]  # untyped in redis-py
            pipe.delete(override_key)
            if not self.cluster:  # the queue lives on another shard in a cluster
                self._queue_dirty(pipe, [sku], "override")
            return True

        removed: bool = await self.redis.transaction(remove, override_key, value_from_callable=True)
        if removed and self.cluster:
            await self.mark_dirty([sku], "override")
        return removed

    async def get_override(self, sku: str) -> Override | None:
        raw = await self.redis.get(keys.override(sku))
        return None if raw is None else Override.model_validate_json(raw)

    async def set_frozen(self, frozen: bool, *, reason: str = "") -> None:
        if frozen:
            await self.redis.set(keys.FROZEN, json.dumps({"at": time.time(), "reason": reason}))
        else:
            await self.redis.delete(keys.FROZEN)

    async def is_frozen(self) -> bool:
        return bool(await self.redis.exists(keys.FROZEN))

    # -- work queue -------------------------------------------------------------------------------

    async def mark_dirty(self, skus: Sequence[str], reason: str) -> None:
        """Queue SKUs for repricing (the repricers' consumer group reads the stream)."""
        if not skus:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            self._queue_dirty(pipe, skus, reason)
            await pipe.execute()

    async def dirty_backlog(self) -> int:
        """Entries not yet delivered to, or not yet acknowledged by, the repricers."""
        return await group_backlog(self.redis, self.dirty_streams, keys.DIRTY_GROUP)

    # -- schedules and the audit trail ---------------------------------------------------------

    async def publish(
        self,
        sku: str,
        segment: str,
        decisions: Sequence[Decision],
        *,
        fingerprint_value: str,
        now: datetime,
        read_at: int = 0,
    ) -> PublishResult:
        """Atomically store a schedule and its audit record; skipped if unchanged, or if
        the schedule in place was computed from a later read (see ``_PUBLISH``)."""
        request = PublishRequest(sku, segment, decisions, fingerprint_value, read_at)
        script_keys, arguments = self._publish_call(self.prepare_publish(request), now)
        result = await self._publish(keys=script_keys, args=arguments)
        published = _publish_result(result)
        if _needs_announcing(published):
            await self.redis.xadd(
                self.changes_stream(sku),
                cast(dict[Any, Any], _change_fields(sku, segment)),
                maxlen=CHANGES_MAXLEN,
                approximate=True,
            )
        return published

    async def publish_many(
        self, requests: Sequence[PublishRequest], *, now: datetime
    ) -> list[PublishResult]:
        """:meth:`publish` for many schedules in few round trips, in order (see
        :meth:`publish_prepared`)."""
        prepare = self.prepare_publish
        return await self.publish_prepared([prepare(request) for request in requests], now=now)

    @staticmethod
    def prepare_publish(request: PublishRequest) -> PreparedPublish:
        """``request`` encoded as it is stored, for :meth:`publish_prepared`."""
        decisions = request.decisions
        decision = decisions[0]
        windows = schedule_windows(decisions)
        entries = [decision_to_dict(d) for d in decisions]
        return PreparedPublish(
            sku=request.sku,
            segment=request.segment,
            fingerprint=request.fingerprint_value,
            schedule_json=schedule_json(decision.ruleset_version, decision.currency, windows),
            audit=encode_audit_entries(entries, windows, request.segment),
            current_price="" if decision.price is None else str(decision.price),
            price_epoch=int(decision.valid_from.timestamp()),
            read_at=request.read_at,
        )

    async def publish_prepared(
        self, prepared: Sequence[PreparedPublish], *, now: datetime
    ) -> list[PublishResult]:
        """:meth:`publish` for many encoded schedules in few round trips, in order.

        Every schedule is written, skipped and announced exactly as :meth:`publish` would.
        On one Redis each :data:`SCRIPT_BATCH` schedules are one ``_PUBLISH_MANY`` call,
        announcements included: the cost of a script call per schedule capped a full
        reprice. On a Redis Cluster every SKU is its own hash slot, so each schedule keeps
        its own ``_PUBLISH`` call on its own SKU's keys, :data:`PUBLISH_PIPELINE` calls
        per round trip, and the announcements follow per changes stream. Either way a failure
        part-way leaves the schedules before it published, as the same sequence of
        :meth:`publish` calls would; publishing again is idempotent.
        """
        results: list[PublishResult] = []
        for chunk in self._batches(prepared):
            if self.cluster:
                results += await self._publish_each(chunk, now)
            else:
                results += await self._publish_chunk(chunk, now)
        return results

    async def _publish_chunk(
        self, chunk: Sequence[PreparedPublish], now: datetime
    ) -> list[PublishResult]:
        """One ``_PUBLISH_MANY`` call for ``chunk`` (one Redis only)."""
        streams = self.changes_streams
        partitions = len(streams)
        script_keys = [stream.encode() for stream in streams]
        arguments = [
            b"%d" % number
            for number in (
                int(now.timestamp() * 1000),
                int(self.retention.total_seconds() * 1000),
                HISTORY_MAXLEN,
                MOVES_MAXLEN,
                CHANGES_MAXLEN,
                # _needs_announcing's clock: its rule runs in the script, before the reply
                int(time.time() * 1000),
                REANNOUNCE_WINDOW_MS,
                partitions,
            )
        ]
        schedule_key, history_key, segments_key = keys.schedule, keys.audit, keys.segments
        sku_partition = keys.sku_partition
        for entry in chunk:
            sku, segment = entry.sku, entry.segment
            script_keys += (
                schedule_key(sku, segment).encode(),
                history_key(sku).encode(),
                segments_key(sku).encode(),
            )
            arguments += (
                sku.encode(),
                entry.fingerprint.encode(),
                entry.schedule_json.encode(),
                entry.audit,
                entry.current_price.encode(),
                b"%d" % entry.price_epoch,
                (segment or keys.DEFAULT_SEGMENT_KEY).encode(),
                b"%d" % entry.read_at,
                b"%d" % (0 if partitions == 1 else sku_partition(sku, partitions)),
            )
        reply: list[Any] = await self.run_script(self._publish_many, script_keys, arguments)
        return [
            PublishResult(written=written == 1, stream_id=record_id.decode())
            for written, record_id in zip(reply[::2], reply[1::2], strict=True)
        ]

    async def _publish_each(
        self, chunk: Sequence[PreparedPublish], now: datetime
    ) -> list[PublishResult]:
        """``chunk`` in one pipeline of ``_PUBLISH`` calls, then ``_ANNOUNCE`` per changes
        stream: every call on one hash slot, as a Redis Cluster requires."""

        async def send() -> list[Any]:
            async with self.redis.pipeline(transaction=False) as pipe:
                for entry in chunk:
                    script_keys, arguments = self._publish_call(entry, now)
                    await self._queue_script(pipe, self._publish, script_keys, arguments)
                replies: list[Any] = await pipe.execute()
            return replies

        published = [_publish_result(reply) for reply in await self._scripted(send)]
        announced: dict[str, list[str | int]] = {}
        for entry, result in zip(chunk, published, strict=True):
            if _needs_announcing(result):
                pending = announced.setdefault(self.changes_stream(entry.sku), [])
                pending += _change_fields(entry.sku, entry.segment).values()
        for stream, fields in announced.items():  # one key per call: one shard
            await self._announce(keys=[stream], args=[CHANGES_MAXLEN, *fields])
        return published

    async def set_boundaries(self, boundaries: dict[str, int | None]) -> None:
        """Point ``keys.BOUNDARIES`` members at their next boundary (None: remove them),
        in two variadic commands per :data:`PUBLISH_PIPELINE` members."""
        members = list(boundaries.items())
        for start in range(0, len(members), PUBLISH_PIPELINE):
            chunk = members[start : start + PUBLISH_PIPELINE]
            due = {member: when for member, when in chunk if when is not None}
            gone = [member for member, when in chunk if when is None]
            async with self.redis.pipeline(transaction=False) as pipe:
                if due:
                    pipe.zadd(keys.BOUNDARIES, due)
                if gone:
                    pipe.zrem(keys.BOUNDARIES, *gone)
                await pipe.execute()

    def _publish_call(
        self, prepared: PreparedPublish, now: datetime
    ) -> tuple[list[str], list[str | int | bytes]]:
        """The publish script's keys and arguments for one schedule."""
        sku, segment = prepared.sku, prepared.segment
        script_keys = [keys.schedule(sku, segment), keys.audit(sku), keys.segments(sku)]
        arguments: list[str | int | bytes] = [
            prepared.fingerprint,
            prepared.schedule_json,
            prepared.audit,
            int(now.timestamp() * 1000),
            int(self.retention.total_seconds() * 1000),
            prepared.current_price,
            prepared.price_epoch,
            segment or keys.DEFAULT_SEGMENT_KEY,
            HISTORY_MAXLEN,
            MOVES_MAXLEN,
            prepared.read_at,
        ]
        return script_keys, arguments

    async def get_schedule(self, sku: str, segment: str) -> Schedule | None:
        raw: Any = await self.redis.get(keys.schedule(sku, segment))
        return None if raw is None else decode_schedule(sku, segment, raw)

    async def get_schedules(self, pairs: Sequence[tuple[str, str]]) -> list[Schedule | None]:
        if not pairs:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for sku, segment in pairs:
                pipe.get(keys.schedule(sku, segment))
            raws = await pipe.execute()
        return [
            None if raw is None else decode_schedule(sku, segment, raw)
            for (sku, segment), raw in zip(pairs, raws, strict=True)
        ]

    async def recent_changes(self, sku: str, segment: str) -> list[PriceChange]:
        """Published current-price changes, oldest first."""
        raw: Any = await self.redis.get(keys.schedule(sku, segment))
        return [] if raw is None else changes_from_moves(StoredSchedule.parse(raw).moves)

    async def _audit_records(self, sku: str) -> list[_StoredRecord]:
        """Every audit record of a SKU, unsorted: the current one of each segment (in its
        schedule value) and the superseded ones (the history list)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(keys.schedule(sku, ""))
            pipe.smembers(keys.segments(sku))
            pipe.lrange(keys.audit(sku), 0, -1)
            default, segments, superseded = await pipe.execute()
        currents = [default]
        if segments:
            currents += await self.redis.mget([keys.schedule(sku, s.decode()) for s in segments])
        records = []
        for raw in currents:
            if raw is not None:
                stored = StoredSchedule.parse(raw)
                records.append(
                    _StoredRecord(
                        stored.record_id, stored.audit, stored.schedule_json, stored.fingerprint
                    )
                )
        for entry in superseded:
            for single in unpack_block(entry) if is_block(entry) else (entry,):
                head, _, payload = single.partition(b"\n")
                record_id, _replaced_at, fingerprint_value, schedule_json = head.split(b" ", 3)
                records.append(
                    _StoredRecord(
                        record_id.decode(), payload, schedule_json, fingerprint_value.decode()
                    )
                )
        return records

    async def compact_audit(self, skus: Sequence[str]) -> int:
        """Pack superseded audit records into blocks (see ``audit_blocks``) in the audit
        lists of ``skus`` whose newest ``2 * BLOCK_RECORDS`` entries are single records;
        the number of blocks written."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for sku in skus:
                pipe.lindex(keys.audit(sku), 2 * BLOCK_RECORDS - 1)
            probes: list[bytes | None] = await pipe.execute()
        due = [sku for sku, seen in zip(skus, probes, strict=True) if seen and not is_block(seen)]
        if not due:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for sku in due:
                pipe.lrange(keys.audit(sku), BLOCK_RECORDS, 2 * BLOCK_RECORDS - 1)
            runs: list[list[bytes]] = await pipe.execute()
        packed = 0
        for sku, run in zip(due, runs, strict=True):
            if len(run) < BLOCK_RECORDS or any(is_block(entry) for entry in run):
                continue  # the list changed since the probe; the next sweep sees it
            block = pack_block([_plain_entry(entry) for entry in run])
            arguments: list[EncodableT] = [run[0], run[-1], len(run), block]
            packed += int(await self._compact_audit(keys=[keys.audit(sku)], args=arguments))
        return packed

    async def compact_all(self) -> Compaction:
        """:meth:`compact_audit` and :meth:`archive_offer_history` over the whole
        catalogue: the blocks written."""
        done = Compaction()
        async for chunk in self.iter_skus(batch=COMPACTION_BATCH):
            done.audit_blocks += await self.compact_audit(chunk)
            done.history_blocks += await self.archive_offer_history(chunk)
        return done

    async def claim_compaction(self, interval: timedelta) -> bool:
        """True for the one caller per ``interval`` that should run the compaction sweep."""
        return await self._claim_interval(keys.COMPACTION_DUE, interval)

    async def history(
        self,
        sku: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[AuditRecord], str | None]:
        """Audit records newest first; ``cursor`` continues after the last one returned."""
        newest = (2**63, 0) if until is None else (int(until.timestamp() * 1000), 2**31)
        if cursor is not None:
            newest = min(newest, _record_order(cursor))
            newest = (newest[0], newest[1] - 1)  # exclusive: after the last one returned
        oldest = (0, 0) if since is None else (int(since.timestamp() * 1000), 0)
        found = sorted(
            (
                (_record_order(stored.record_id), stored)
                for stored in await self._audit_records(sku)
            ),
            key=lambda pair: pair[0],
            reverse=True,
        )
        chosen = [stored for order, stored in found if oldest <= order <= newest]
        records = [stored.decode(sku) for stored in chosen[:limit]]
        next_cursor = records[-1].stream_id if len(chosen) > limit and records else None
        return records, next_cursor

    async def get_audit(self, sku: str, stream_id: str) -> AuditRecord | None:
        for stored in await self._audit_records(sku):
            if stored.record_id == stream_id:
                return stored.decode(sku)
        return None

    async def set_ruleset_status(self, status: dict[str, str]) -> None:
        await self.redis.hset(keys.RULESET_STATUS, mapping=status)  # type: ignore[arg-type]

    async def ruleset_status(self) -> dict[str, str]:
        raw = await self.redis.hgetall(keys.RULESET_STATUS)
        return {k.decode(): v.decode() for k, v in cast(dict[bytes, bytes], raw).items()}
