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
(Non-idempotent writes such as sales counters are only at risk of being applied twice if
the connection breaks after Redis ran the transaction.)
"""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio.client import Pipeline

from pricing_service.engine.decision import Decision, decision_to_dict
from pricing_service.engine.inputs import (
    AwareDatetime,
    CompetitorObservation,
    DemandStats,
    ItemFacts,
    Price,
    PriceChange,
)
from pricing_service.money import to_minor
from pricing_service.store import keys

#: Publishes one schedule and its audit record atomically.
#: KEYS: schedule, audit stream, recent moves. ARGV: fingerprint, schedule JSON, audit
#: payload, MINID for trimming (ms), retention (ms), current price ('' if none), epoch.
_PUBLISH = """
local current = redis.call('GET', KEYS[1])
if current then
  local first = string.find(current, ' ', 1, true)
  local second = string.find(current, ' ', first + 1, true)
  if string.sub(current, first + 1, second - 1) == ARGV[1] then
    return {0, string.sub(current, 1, first - 1)}
  end
end
local id = redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[4], '*', 'd', ARGV[3])
redis.call('SET', KEYS[1], id .. ' ' .. ARGV[1] .. ' ' .. ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
if ARGV[6] ~= '' then
  local head = redis.call('LINDEX', KEYS[3], 0)
  local same = false
  if head then
    local colon = string.find(head, ':', 1, true)
    same = string.sub(head, colon + 1) == ARGV[6]
  end
  if not same then
    redis.call('LPUSH', KEYS[3], ARGV[7] .. ':' .. ARGV[6])
    redis.call('LTRIM', KEYS[3], 0, 31)
    redis.call('PEXPIRE', KEYS[3], ARGV[5])
  end
end
return {1, id}
"""

#: Names many published schedules on the changes stream in one call. It touches one key,
#: so it stays valid in Redis Cluster. KEYS: the changes stream. ARGV: MAXLEN, then
#: SKU and segment pairs.
_ANNOUNCE = """
for i = 2, #ARGV, 2 do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'sku', ARGV[i], 'seg', ARGV[i + 1])
end
return (#ARGV - 1) / 2
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
#: Audit records per pipeline in :meth:`Store.publish_many`: bounds the memory of one
#: round trip while keeping it long enough to hide the latency.
PUBLISH_PIPELINE = 1_000
#: Length bound of ``keys.CHANGES_STREAM`` (approximate trimming).
CHANGES_MAXLEN = 100_000
#: Length bound of ``keys.DIRTY_STREAM`` (approximate trimming).
DIRTY_MAXLEN = 2_000_000

#: (instant, quantity, unit price) of each sale, with the item's currency, per SKU.
SalesBySku = Mapping[str, tuple[str, Sequence[tuple[datetime, int, Decimal]]]]


class OfferStatus(BaseModel):
    """A competitor observation as stored: accepted, or quarantined with a reason."""

    model_config = ConfigDict(frozen=True)

    observation: CompetitorObservation
    status: str = "accepted"
    reason: str | None = None
    received_at: AwareDatetime

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"


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


def make_decision_id(sku: str, stream_id: str, index: int) -> str:
    return f"{sku}{DECISION_SEPARATOR}{stream_id}{DECISION_SEPARATOR}{index}"


def parse_decision_id(decision_id: str) -> tuple[str, str, int] | None:
    parts = decision_id.split(DECISION_SEPARATOR)
    if len(parts) != 3 or not parts[2].isdigit():
        return None
    return parts[0], parts[1], int(parts[2])


def fingerprint(
    ruleset_version: str, segment: str, inputs_json: str, decisions: Sequence[Decision]
) -> str:
    """Identifies a schedule by what it was computed from and what it says, not by when:
    recomputing the same inputs gives the same fingerprint, so writes are idempotent."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(ruleset_version.encode())
    digest.update(b"\0" + segment.encode() + b"\0" + inputs_json.encode())
    for decision in decisions[1:]:
        digest.update(f"|{decision.valid_from.timestamp():.0f}".encode())
    for decision in decisions:
        until = "" if decision.valid_until is None else f"{decision.valid_until.timestamp():.0f}"
        digest.update(f"|{decision.price}|{until}|{decision.rule_id}".encode())
    return digest.hexdigest()


def _epoch(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp())


def encode_schedule(decisions: Sequence[Decision], currency: str, version: str) -> str:
    windows = [
        [
            _epoch(d.valid_from),
            _epoch(d.valid_until),
            None if d.price is None else str(d.price),
        ]
        for d in decisions
    ]
    payload = {"v": version, "c": currency, "t": int(time.time() * 1000), "w": windows}
    return json.dumps(payload, separators=(",", ":"))


def decode_schedule(sku: str, segment: str, raw: bytes | str) -> Schedule:
    text = raw.decode() if isinstance(raw, bytes) else raw
    stream_id, fingerprint_value, body = text.split(" ", 2)
    payload = json.loads(body)
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
        stream_id=stream_id,
        fingerprint=fingerprint_value,
        ruleset_version=payload["v"],
        currency=payload["c"],
        computed_at=payload["t"],
        windows=windows,
    )


def encode_audit(decisions: Sequence[Decision], segment: str, version: str) -> bytes:
    compact = []
    for decision in decisions:
        entry = decision_to_dict(decision)
        for repeated in ("sku", "segment", "ruleset_version", "currency"):
            entry.pop(repeated)
        compact.append(entry)
    payload = {
        "seg": segment,
        "v": version,
        "c": decisions[0].currency,
        "sku": decisions[0].sku,
        "d": compact,
    }
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15, zdict=_AUDIT_ZDICT_1)
    body = json.dumps(payload, separators=(",", ":")).encode()
    return _AUDIT_FORMAT_ZDICT_1 + compressor.compress(body) + compressor.flush()


def audit_json(raw: bytes) -> bytes:
    """The JSON of an audit payload in any stored format."""
    if raw[:1] == _AUDIT_FORMAT_ZDICT_1:
        decompressor = zlib.decompressobj(-15, zdict=_AUDIT_ZDICT_1)
        return decompressor.decompress(raw[1:]) + decompressor.flush()
    return zlib.decompress(raw)  # the first format: a zlib stream, no dictionary


def decode_audit(sku: str, stream_id: str, raw: bytes) -> AuditRecord:
    payload = json.loads(audit_json(raw))
    decisions = []
    for index, entry in enumerate(payload["d"]):
        decisions.append(
            {
                "decision_id": make_decision_id(sku, stream_id, index),
                "sku": sku,
                "segment": payload["seg"],
                "currency": payload["c"],
                "ruleset_version": payload["v"],
                **entry,
            }
        )
    return AuditRecord(
        sku=sku,
        stream_id=stream_id,
        segment=payload["seg"],
        ruleset_version=payload["v"],
        computed_at=int(stream_id.split("-")[0]),
        decisions=decisions,
    )


def _publish_result(reply: Any) -> PublishResult:
    return PublishResult(written=bool(int(reply[0])), stream_id=reply[1].decode())


def _change_fields(sku: str, segment: str) -> dict[str, str]:
    return {"sku": sku, "seg": segment or keys.DEFAULT_SEGMENT_KEY}


def demand_from_sales(
    raw: dict[bytes, bytes], now: datetime, inventory: int | None
) -> DemandStats | None:
    """Demand signals from the ``keys.sales`` hash as read (empty: no sales recorded)."""
    if not raw:
        return None
    units: dict[str, int] = {}
    for field, value in raw.items():
        name = field.decode()
        if name.startswith("u:"):
            units[name[2:]] = int(value)
    today = now.astimezone(UTC).date()

    def total(days: int) -> int:
        return sum(
            units.get((today - timedelta(days=d)).strftime("%Y%m%d"), 0) for d in range(days)
        )

    velocity_7d, velocity_28d = total(7) / 7, total(28) / 28
    supply = None
    if inventory is not None and velocity_7d > 0:
        supply = inventory / velocity_7d
    return DemandStats(
        velocity_7d=velocity_7d, velocity_28d=velocity_28d, days_of_supply=supply, as_of=now
    )


def changes_from_moves(raw: Sequence[bytes]) -> list[PriceChange]:
    """The ``keys.changes`` list as read (newest first) as price changes, oldest first."""
    changes = []
    for entry in reversed(raw):
        epoch, price = entry.decode().split(":", 1)
        changes.append(
            PriceChange(at=datetime.fromtimestamp(int(epoch), tz=UTC), price=Decimal(price))
        )
    return changes


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%d")


def _queue_dirty(pipe: Pipeline, skus: Iterable[str], reason: str) -> None:
    """Add the work-queue entries that get ``skus`` repriced to ``pipe``."""
    now = str(int(time.time() * 1000))
    for sku in skus:
        pipe.xadd(
            keys.DIRTY_STREAM,
            {"sku": sku, "reason": reason, "at": now},
            maxlen=DIRTY_MAXLEN,
            approximate=True,
        )


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

    def __init__(self, client: aioredis.Redis, *, retention: timedelta) -> None:
        self.redis = client
        self.retention = retention
        self._publish = client.register_script(_PUBLISH)
        self._announce = client.register_script(_ANNOUNCE)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        retention: timedelta,
        pool_size: int = 64,
        connect_timeout: float = 1.0,
        socket_timeout: float = 1.0,
    ) -> Store:
        client = aioredis.Redis.from_url(
            url,
            max_connections=pool_size,
            socket_connect_timeout=connect_timeout,
            socket_timeout=socket_timeout,
            health_check_interval=15,
        )
        return cls(client, retention=retention)

    async def close(self) -> None:
        await self.redis.aclose()

    async def ping(self) -> bool:
        return bool(await self.redis.ping())

    # -- catalogue ----------------------------------------------------------------------------

    async def put_items(self, items: Sequence[ItemFacts], *, reason: str = "item") -> list[bool]:
        """Insert or replace items and queue them, in one transaction; True for each that
        was new."""
        if not items:
            return []
        async with self.redis.pipeline(transaction=True) as pipe:
            for item in items:
                pipe.set(keys.item(item.sku), _item_json(item))
                pipe.sadd(keys.SKU_INDEX, item.sku)
            _queue_dirty(pipe, [item.sku for item in items], reason)
            results = await pipe.execute()
        return [bool(added) for added in results[1 : 2 * len(items) : 2]]

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
            updated = ItemFacts.model_validate_json(raw).model_copy(update={"inventory": inventory})
            pipe.multi()  # type: ignore[no-untyped-call]  # untyped in redis-py
            pipe.set(item_key, _item_json(updated))
            _queue_dirty(pipe, [sku], "inventory")
            return updated

        result: ItemFacts | None = await self.redis.transaction(
            update, item_key, value_from_callable=True
        )
        return result

    async def get_item(self, sku: str) -> ItemFacts | None:
        raw = await self.redis.get(keys.item(sku))
        return None if raw is None else ItemFacts.model_validate_json(raw)

    async def get_items(self, skus: Sequence[str]) -> list[ItemFacts | None]:
        if not skus:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for sku in skus:
                pipe.get(keys.item(sku))
            raws = await pipe.execute()
        return [None if raw is None else ItemFacts.model_validate_json(raw) for raw in raws]

    async def delete_item(self, sku: str) -> bool:
        """Remove the item, its live prices and inputs, and tell the API caches, in one
        transaction; False if there was no such item. Its audit trail stays until
        retention."""
        segment_keys = [key async for key in self.redis.scan_iter(match=keys.schedule(sku, "*"))]
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.item(sku))
            pipe.srem(keys.SKU_INDEX, sku)
            pipe.delete(keys.offers(sku), keys.override(sku), *segment_keys)
            pipe.xadd(keys.CHANGES_STREAM, {"sku": sku}, maxlen=CHANGES_MAXLEN, approximate=True)
            results = await pipe.execute()
        return bool(results[0])

    async def count_items(self) -> int:
        return int(await self.redis.scard(keys.SKU_INDEX))

    async def iter_skus(self, batch: int = 10_000) -> AsyncIterator[list[str]]:
        cursor = 0
        while True:
            chunk: Any
            cursor, chunk = await self.redis.sscan(keys.SKU_INDEX, cursor, count=batch)
            if chunk:
                yield sorted(s.decode() for s in chunk)
            if cursor == 0:
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
        async with self.redis.pipeline(transaction=True) as pipe:
            for sku, statuses in offers.items():
                for offer in statuses:
                    body = offer.model_dump_json()
                    pipe.hset(keys.offers(sku), offer.observation.competitor, body)
                    pipe.xadd(keys.offer_history(sku), {"o": body}, minid=minid, approximate=True)
                pipe.pexpire(keys.offer_history(sku), retention_ms)
            if reason is not None:
                changed = [
                    sku for sku, statuses in offers.items() if any(o.accepted for o in statuses)
                ]
                _queue_dirty(pipe, changed, reason)
            await pipe.execute()

    async def get_offers(self, sku: str) -> list[OfferStatus]:
        raw = await self.redis.hgetall(keys.offers(sku))
        offers = [OfferStatus.model_validate_json(value) for value in raw.values()]
        return sorted(offers, key=lambda o: o.observation.competitor)

    # -- sales and demand -----------------------------------------------------------------------

    async def add_sales(
        self,
        sku: str,
        currency: str,
        sales: Sequence[tuple[datetime, int, Decimal]],
        *,
        reason: str | None = None,
    ) -> None:
        """:meth:`record_sales` for one SKU."""
        await self.record_sales({sku: (currency, sales)}, reason=reason)

    async def record_sales(self, sales: SalesBySku, *, reason: str | None = None) -> None:
        """Add (instant, quantity, unit price) sales to the SKUs' daily buckets, all or
        nothing: the counters are increments, so a partly applied batch could not be
        retried. With a ``reason``, the SKUs are queued in the same transaction."""
        if not sales:
            return
        ttl = int(self.retention.total_seconds())
        async with self.redis.pipeline(transaction=True) as pipe:
            for sku, (currency, events) in sales.items():
                for moment, quantity, unit_price in events:
                    day = _day(moment)
                    pipe.hincrby(keys.sales(sku), f"u:{day}", quantity)
                    pipe.hincrby(
                        keys.sales(sku), f"r:{day}", quantity * to_minor(unit_price, currency)
                    )
                pipe.expire(keys.sales(sku), ttl)
            if reason is not None:
                _queue_dirty(pipe, sales, reason)
            await pipe.execute()

    async def demand(self, sku: str, now: datetime, inventory: int | None) -> DemandStats | None:
        raw: Any = await self.redis.hgetall(keys.sales(sku))
        return demand_from_sales(raw, now, inventory)

    # -- overrides and the kill switch ------------------------------------------------------------

    async def set_override(self, sku: str, override: Override) -> None:
        """Store a manual price and queue the SKU to apply it, in one transaction."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.override(sku), override.model_dump_json())
            _queue_dirty(pipe, [sku], "override")
            await pipe.execute()

    async def clear_override(self, sku: str) -> bool:
        """Remove a manual price and queue the SKU, in one transaction; False (and nothing
        queued) if there was none."""
        override_key = keys.override(sku)

        async def remove(pipe: Pipeline) -> bool:
            if not await pipe.exists(override_key):
                return False
            pipe.multi()  # type: ignore[no-untyped-call]  # untyped in redis-py
            pipe.delete(override_key)
            _queue_dirty(pipe, [sku], "override")
            return True

        removed: bool = await self.redis.transaction(remove, override_key, value_from_callable=True)
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
            _queue_dirty(pipe, skus, reason)
            await pipe.execute()

    async def dirty_backlog(self) -> int:
        """Entries not yet delivered to, or not yet acknowledged by, the repricers."""
        try:
            groups = await self.redis.xinfo_groups(keys.DIRTY_STREAM)
        except aioredis.ResponseError:
            return 0
        backlog = 0
        for group in groups:
            if group.get("name") in (keys.DIRTY_GROUP, keys.DIRTY_GROUP.encode()):
                lag = group.get("lag")
                backlog = int(group.get("pending", 0)) + int(lag or 0)
        return backlog

    # -- schedules and the audit trail ---------------------------------------------------------

    async def publish(
        self,
        sku: str,
        segment: str,
        decisions: Sequence[Decision],
        *,
        fingerprint_value: str,
        now: datetime,
    ) -> PublishResult:
        """Atomically store a schedule and its audit record (skipped if unchanged)."""
        request = PublishRequest(sku, segment, decisions, fingerprint_value)
        script_keys, arguments = self._publish_call(request, now)
        result = await self._publish(keys=script_keys, args=arguments)
        published = _publish_result(result)
        if _needs_announcing(published):
            await self.redis.xadd(
                keys.CHANGES_STREAM,
                cast(dict[Any, Any], _change_fields(sku, segment)),
                maxlen=CHANGES_MAXLEN,
                approximate=True,
            )
        return published

    async def publish_many(
        self, requests: Sequence[PublishRequest], *, now: datetime
    ) -> list[PublishResult]:
        """:meth:`publish` for many schedules in few round trips, in order.

        Each schedule still goes through its own script call on its own SKU's keys, so
        every one is atomic and the calls stay valid in Redis Cluster (a script over
        several SKUs would need them all in one slot); only the round trips are shared.
        A failure part-way leaves the schedules before it published, as the same
        sequence of :meth:`publish` calls would; publishing again is idempotent.
        """
        results: list[PublishResult] = []
        for start in range(0, len(requests), PUBLISH_PIPELINE):
            chunk = requests[start : start + PUBLISH_PIPELINE]
            async with self.redis.pipeline(transaction=False) as pipe:
                for request in chunk:
                    script_keys, arguments = self._publish_call(request, now)
                    await self._publish(keys=script_keys, args=arguments, client=pipe)
                replies = await pipe.execute()
            published = [_publish_result(reply) for reply in replies]
            announced: list[str | int] = [CHANGES_MAXLEN]
            for request, result in zip(chunk, published, strict=True):
                if _needs_announcing(result):
                    announced += _change_fields(request.sku, request.segment).values()
            if len(announced) > 1:
                await self._announce(keys=[keys.CHANGES_STREAM], args=announced)
            results.extend(published)
        return results

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
        self, request: PublishRequest, now: datetime
    ) -> tuple[list[str], list[str | int | bytes]]:
        """The publish script's keys and arguments for one schedule."""
        decisions = request.decisions
        decision = decisions[0]
        version = decision.ruleset_version
        retention_ms = int(self.retention.total_seconds() * 1000)
        minid = f"{int(now.timestamp() * 1000) - retention_ms}-0"
        current_price = "" if decision.price is None else str(decision.price)
        sku, segment = request.sku, request.segment
        script_keys = [keys.schedule(sku, segment), keys.audit(sku), keys.changes(sku, segment)]
        arguments: list[str | int | bytes] = [
            request.fingerprint_value,
            encode_schedule(decisions, decision.currency, version),
            encode_audit(decisions, segment, version),
            minid,
            retention_ms,
            current_price,
            int(decision.valid_from.timestamp()),
        ]
        return script_keys, arguments

    async def get_schedule(self, sku: str, segment: str) -> Schedule | None:
        raw = await self.redis.get(keys.schedule(sku, segment))
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
        raw: Any = await self.redis.lrange(keys.changes(sku, segment), 0, -1)
        return changes_from_moves(raw)

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
        if cursor is not None:
            maximum = f"({cursor}"  # exclusive: continue after the last record returned
        else:
            maximum = "+" if until is None else f"{int(until.timestamp() * 1000)}"
        minimum = "-" if since is None else f"{int(since.timestamp() * 1000)}"
        entries: Any = await self.redis.xrevrange(
            keys.audit(sku), max=maximum, min=minimum, count=limit + 1
        )
        records = [
            decode_audit(sku, entry_id.decode(), fields[b"d"])
            for entry_id, fields in entries[:limit]
        ]
        next_cursor = records[-1].stream_id if len(entries) > limit and records else None
        return records, next_cursor

    async def get_audit(self, sku: str, stream_id: str) -> AuditRecord | None:
        entries: Any = await self.redis.xrange(
            keys.audit(sku), min=stream_id, max=stream_id, count=1
        )
        if not entries:
            return None
        entry_id, fields = entries[0]
        return decode_audit(sku, entry_id.decode(), fields[b"d"])

    async def set_ruleset_status(self, status: dict[str, str]) -> None:
        await self.redis.hset(keys.RULESET_STATUS, mapping=status)  # type: ignore[arg-type]

    async def ruleset_status(self) -> dict[str, str]:
        raw = await self.redis.hgetall(keys.RULESET_STATUS)
        return {k.decode(): v.decode() for k, v in cast(dict[bytes, bytes], raw).items()}
