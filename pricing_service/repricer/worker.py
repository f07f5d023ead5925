"""``pricing repricer``: the long-running worker.

Three loops share one process:

- the queue: read dirty SKUs from the stream's consumer group (first taking over entries
  a dead repricer left pending), price them, publish, and only then acknowledge: work is
  done at least once, and publishing is idempotent, so a retry writes nothing new;
- the boundaries: each second, move the schedules whose next window change is near from
  the boundary index to the queue;
- the rules: poll the rules folder; a valid change swaps the ruleset (one reference, so a
  batch never mixes two) and queues every SKU; an invalid one is logged, recorded in the
  ruleset status and counted, and the last good ruleset keeps serving.

While prices are frozen, queued entries stay pending (not acknowledged); they are taken
up again once idle longer than ``claim_idle_seconds``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis.asyncio as aioredis

from pricing_service import metrics
from pricing_service.elasticity.refit import refit
from pricing_service.engine.compiled import CompiledRuleset
from pricing_service.engine.segments import priced_segments
from pricing_service.logs import OutageLog, redacted_url
from pricing_service.repricer.full import current_instant, price_chunk
from pricing_service.repricer.pricer import Pricer
from pricing_service.rules.diagnostics import Diagnostic, RulesetError
from pricing_service.rules.loader import RULE_FILE_SUFFIXES, check_ruleset
from pricing_service.settings import Settings
from pricing_service.shutdown import release, run_until_stopped, stop_on_signals
from pricing_service.store import keys
from pricing_service.store.store import Store
from pricing_service.store.streams import PartitionedGroup

logger = logging.getLogger(__name__)

#: Pops the due members of the boundary index atomically, so two repricers never both
#: queue the same boundary. KEYS: index. ARGV: now (epoch seconds), limit.
_POP_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
end
return due
"""
BOUNDARY_POP_LIMIT = 1000
#: Pause after a failed Redis operation before the loop tries again.
RETRY_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class LoadedRuleset:
    compiled: CompiledRuleset
    files: tuple[str, ...]
    loaded_at: datetime


def rule_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(
            p for p in path.iterdir() if p.is_file() and p.name.endswith(RULE_FILE_SUFFIXES)
        )
    return [path] if path.is_file() else []


def rules_digest(path: Path) -> str:
    """A hash of the rule files' names and contents: it changes when they do."""
    digest = hashlib.sha256()
    for file in rule_files(path):
        try:
            content = file.read_bytes()
        except OSError:  # removed while we looked: the next poll sees the new state
            continue
        digest.update(b"%d:%s%d:" % (len(file.name), file.name.encode(), len(content)))
        digest.update(content)
    return digest.hexdigest()


def read_ruleset(path: Path) -> tuple[LoadedRuleset | None, list[Diagnostic]]:
    """The ruleset at ``path`` compiled and ready, or the diagnostics that prevent it."""
    ruleset, diagnostics = check_ruleset(path)
    if ruleset is None:
        return None, diagnostics
    compiled = CompiledRuleset(ruleset)
    try:
        priced_segments(compiled)  # the repricer needs them all; refuse what it cannot price
    except ValueError as exc:
        return None, [*diagnostics, Diagnostic(str(path), 1, 1, "error", str(exc))]
    files = tuple(file.name for file in rule_files(path))
    return LoadedRuleset(compiled, files, datetime.now(UTC).replace(microsecond=0)), diagnostics


async def _sleep_unless_stopped(stop: asyncio.Event, seconds: float) -> None:
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


class Repricer:
    """One repricer process; several may share the queue."""

    def __init__(
        self,
        store: Store,
        *,
        rules_dir: Path,
        consumer: str,
        batch_size: int = 500,
        claim_idle_seconds: float = 30.0,
        boundary_lead_seconds: int = 60,
        rules_poll_seconds: float = 2.0,
        block_seconds: float = 0.5,
        tick_seconds: float = 1.0,
        elasticity_fit_seconds: float = 0.0,
        compaction_seconds: float = 0.0,
    ) -> None:
        self.store = store
        self.rules_dir = rules_dir
        self.consumer = consumer
        self.batch_size = batch_size
        self.claim_idle_ms = int(claim_idle_seconds * 1000)
        self.rules_poll_seconds = rules_poll_seconds
        # Below the client's socket timeout, or a quiet queue would look like a dead Redis.
        self.block_ms = int(block_seconds * 1000)
        self.tick_seconds = tick_seconds
        self.elasticity_fit_seconds = elasticity_fit_seconds
        self.compaction_seconds = compaction_seconds
        self.pricer = Pricer(store, boundary_lead_seconds=boundary_lead_seconds)
        self.ruleset: LoadedRuleset | None = None
        self._rules_digest: str | None = None
        self.queue = PartitionedGroup(
            store.redis, store.dirty_streams, keys.DIRTY_GROUP, consumer, cluster=store.cluster
        )
        self._pop_due = store.redis.register_script(_POP_DUE)

    @classmethod
    def from_settings(cls, store: Store, settings: Settings, rules_dir: Path) -> Repricer:
        return cls(
            store,
            rules_dir=rules_dir,
            consumer=settings.repricer_name or f"{socket.gethostname()}-{os.getpid()}",
            batch_size=settings.repricer_batch,
            claim_idle_seconds=settings.claim_idle_seconds,
            boundary_lead_seconds=settings.boundary_lead_seconds,
            rules_poll_seconds=settings.rules_poll_seconds,
            block_seconds=min(0.5, settings.redis_socket_timeout / 2),
            elasticity_fit_seconds=settings.elasticity_fit_interval_seconds,
            compaction_seconds=settings.compaction_interval_seconds,
        )

    @property
    def compiled(self) -> CompiledRuleset:
        if self.ruleset is None:
            raise RuntimeError("no ruleset loaded: call load_rules() first")
        return self.ruleset.compiled

    # -- rules ------------------------------------------------------------------------------

    async def load_rules(self) -> None:
        """The first load: raises :class:`RulesetError` when the rules are invalid."""
        rejected = await self.check_rules()
        if rejected:
            raise RulesetError(rejected)

    async def start(self, stop: asyncio.Event) -> bool:
        """Load the rules and create the queue's consumer group, waiting for Redis while it
        is unreachable (a repricer restarted during an outage must not crash-loop); False
        when stopped first. Raises :class:`RulesetError` when the rules are invalid."""
        outage = OutageLog(logger, "repricer start")
        while not stop.is_set():
            try:
                await self.load_rules()
                await self.ensure_group()
            except (aioredis.RedisError, OSError) as exc:
                metrics.REDIS_ERRORS.labels(operation="repricer_start").inc()
                outage.failed(exc)
                await _sleep_unless_stopped(stop, RETRY_SECONDS)
            else:
                outage.succeeded()
                return True
        return False

    async def check_rules(self) -> list[Diagnostic]:
        """Reload the rules if their files changed; the diagnostics if the change was
        rejected, else nothing."""
        digest = await asyncio.to_thread(rules_digest, self.rules_dir)
        if digest == self._rules_digest:
            return []
        loaded, diagnostics = await asyncio.to_thread(read_ruleset, self.rules_dir)
        if loaded is None:
            await self._reject(diagnostics)
        else:
            for warning in diagnostics:
                logger.warning("%s", warning)
            await self._swap(loaded)
        # Only now: an edit whose swap met a Redis outage is tried again on the next poll,
        # not forgotten until the files change again.
        self._rules_digest = digest
        return [] if loaded is not None else diagnostics

    async def _reject(self, diagnostics: list[Diagnostic]) -> None:
        for diagnostic in diagnostics:
            logger.error("%s", diagnostic)
        kept = "none" if self.ruleset is None else self.ruleset.compiled.version
        logger.error("rules in %s rejected; still serving ruleset %s", self.rules_dir, kept)
        metrics.record_rule_reload(ok=False)
        status = {} if self.ruleset is None else self._status(self.ruleset)
        status["last_error"] = "\n".join(str(d) for d in diagnostics)
        await self.store.set_ruleset_status(status)

    async def _swap(self, loaded: LoadedRuleset) -> None:
        version = loaded.compiled.version
        previous = (await self.store.ruleset_status()).get("version")
        self.ruleset = loaded
        metrics.record_rule_reload(ok=True)
        metrics.ruleset_info().info({"version": version, "files": ",".join(loaded.files)})
        logger.info("ruleset %s loaded from %s", version, self.rules_dir)
        # Another repricer that loaded this version first has already queued everything.
        # The version is recorded only once all is queued: a repricer killed part-way
        # leaves it unrecorded, and its restart (or another repricer) queues all again.
        if previous != version:
            queued = await self.queue_everything()
            logger.info("ruleset %s: %d SKUs queued for repricing", version, queued)
        await self.store.set_ruleset_status({**self._status(loaded), "last_error": ""})

    @staticmethod
    def _status(loaded: LoadedRuleset) -> dict[str, str]:
        return {
            "version": loaded.compiled.version,
            "files": json.dumps(list(loaded.files)),
            "loaded_at": loaded.loaded_at.isoformat(),
        }

    async def queue_everything(self) -> int:
        queued = 0
        async for chunk in self.store.iter_skus():
            await self.store.mark_dirty(chunk, "rules")
            queued += len(chunk)
        return queued

    # -- the queue --------------------------------------------------------------------------

    async def ensure_group(self) -> None:
        await self.queue.ensure()
        await self.store.record_partitions()

    async def consume_once(self) -> int:
        """Handle one batch: entries taken over from idle consumers first, else new ones.
        Returns how many entries were acknowledged."""
        batches = await self.queue.claim_idle(
            self.batch_size, self.claim_idle_ms
        ) or await self.queue.read_new(self.batch_size, self.block_ms)
        entries = [entry for _, batch in batches for entry in batch]
        if not entries or await self.store.is_frozen():
            return 0
        skus = sorted({fields[b"sku"].decode() for _, fields in entries if b"sku" in fields})
        try:
            await price_chunk(self.pricer, self.compiled, skus, current_instant())
            for stream, batch in batches:
                ids = [entry_id for entry_id, _ in batch]
                await self.store.redis.xack(stream, keys.DIRTY_GROUP, *ids)
        except asyncio.CancelledError:  # the shutdown grace ran out: another repricer's now
            redis = self.store.redis
            for stream, batch in batches:
                ids = [entry_id for entry_id, _ in batch]
                await release(redis, stream, keys.DIRTY_GROUP, self.consumer, ids)
            raise
        done = time.time()
        for _, fields in entries:
            if b"at" in fields:
                metrics.REPRICER_LAG_SECONDS.observe(max(0.0, done - int(fields[b"at"]) / 1000))
        return len(entries)

    # -- boundaries -------------------------------------------------------------------------

    async def queue_due_boundaries(self, now: datetime | None = None) -> int:
        """Queue the SKUs whose next window change is due; returns how many."""
        epoch = int((now or datetime.now(UTC)).timestamp())
        due: list[bytes] = await self._pop_due(
            keys=[keys.BOUNDARIES], args=[epoch, BOUNDARY_POP_LIMIT]
        )
        skus = sorted({member.decode().split("|", 1)[0] for member in due})
        try:
            await self.store.mark_dirty(skus, "boundary")
        except aioredis.RedisError:
            # Put them back so the next tick tries again.
            await self.store.redis.zadd(keys.BOUNDARIES, dict.fromkeys(due, epoch))
            raise
        return len(skus)

    # -- running ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run every loop until ``stop`` is set; the batch in hand is finished first."""
        await self.ensure_group()
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(self._loop(stop, "consume", self._consume_step))
            tasks.create_task(self._loop(stop, "boundaries", self._boundary_step))
            tasks.create_task(self._loop(stop, "rules", self._rules_step))
            if self.elasticity_fit_seconds > 0:
                tasks.create_task(self._loop(stop, "elasticity", self._elasticity_step))
            if self.compaction_seconds > 0:
                tasks.create_task(self._loop(stop, "compaction", self._compaction_step))

    async def _consume_step(self, stop: asyncio.Event) -> None:
        await self.consume_once()

    async def _boundary_step(self, stop: asyncio.Event) -> None:
        await self.queue_due_boundaries()
        metrics.dirty_queue_length().set(await self.store.dirty_backlog())
        await _sleep_unless_stopped(stop, self.tick_seconds)

    async def _rules_step(self, stop: asyncio.Event) -> None:
        await self.check_rules()
        await _sleep_unless_stopped(stop, self.rules_poll_seconds)

    async def _elasticity_step(self, stop: asyncio.Event) -> None:
        """Refit elasticities once per interval across the fleet: the repricer that
        claims the interval fits, the others find it claimed."""
        if await self.store.claim_elasticity_fit(timedelta(seconds=self.elasticity_fit_seconds)):
            summary = await refit(self.store)
            logger.info(
                "elasticity fit: %d of %d SKUs estimated, %d changed, %.1f s",
                summary.estimated,
                summary.items,
                summary.changed,
                summary.seconds,
            )
        await _sleep_unless_stopped(stop, min(60.0, self.elasticity_fit_seconds))

    async def _compaction_step(self, stop: asyncio.Event) -> None:
        """Pack superseded audit records and old offer-history entries into blocks once
        per interval across the fleet."""
        if await self.store.claim_compaction(timedelta(seconds=self.compaction_seconds)):
            started = time.perf_counter()
            done = await self.store.compact_all()
            logger.info(
                "compaction: %d audit blocks and %d offer-history blocks written, %.1f s",
                done.audit_blocks,
                done.history_blocks,
                time.perf_counter() - started,
            )
        await _sleep_unless_stopped(stop, min(60.0, self.compaction_seconds))

    async def _loop(
        self, stop: asyncio.Event, name: str, step: Callable[[asyncio.Event], Awaitable[None]]
    ) -> None:
        outage = OutageLog(logger, f"repricer {name}")
        while not stop.is_set():
            try:
                await step(stop)
            except (aioredis.RedisError, OSError) as exc:
                # Redis down or failing over: keep the process, retry shortly.
                metrics.REDIS_ERRORS.labels(operation=f"repricer_{name}").inc()
                outage.failed(exc)
                await _sleep_unless_stopped(stop, RETRY_SECONDS)
            else:
                outage.succeeded()


async def run_repricer(settings: Settings, redis_url: str, rules_dir: Path) -> None:
    """The ``pricing repricer`` process: until SIGTERM or SIGINT, then the batch in hand
    is finished (or, after ``shutdown_grace_seconds``, released). Raises
    :class:`RulesetError` when the rules are invalid at start."""
    store = Store.from_settings(redis_url, settings)
    try:
        worker = Repricer.from_settings(store, settings, rules_dir)
        metrics.serve_metrics(settings.repricer_metrics_port)
        stop = stop_on_signals()
        if await worker.start(stop):
            logger.info("repricer %s running on %s", worker.consumer, redacted_url(redis_url))
            await run_until_stopped(worker.run(stop), stop, settings.shutdown_grace_seconds)
        logger.info("repricer %s stopped", worker.consumer)
    finally:
        await store.close()
