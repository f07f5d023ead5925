"""A full reprice spread over several processes, each pricing its share of the catalogue.

Pricing is CPU-bound Python: one process uses one core however fast Redis is. Each
process here runs :func:`~pricing_service.repricer.full.reprice_all` on its own
:class:`~pricing_service.repricer.full.Share` (SKUs split by ``keys.sku_partition``), with
its own connections and the ruleset compiled from the same folder. They all price at the
same instant, so their fingerprints agree with any other repricer's. A process that fails
fails the whole run; publishing is idempotent, so a rerun finishes the job.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path

from pricing_service.engine.compiled import CompiledRuleset
from pricing_service.repricer.full import Share, reprice_all
from pricing_service.repricer.pricer import Pricer, RepriceCounts
from pricing_service.rules.loader import RulesetError, load_ruleset
from pricing_service.settings import Settings
from pricing_service.store.store import Store


class RulesChangedError(RuntimeError):
    """The rule files changed while the processes started: their prices would differ.
    What was published before stands; a rerun prices everything with the new rules."""


def _reprice_share(
    url: str, settings: Settings, rules_dir: Path, version: str, now: datetime, share: Share
) -> dict[str, int]:
    try:
        compiled = CompiledRuleset(load_ruleset(rules_dir))
    except RulesetError as exc:  # an edit since the caller read them; str: picklable
        raise RulesChangedError(f"the rule files no longer load: {exc}") from None
    if compiled.version != version:
        raise RulesChangedError(f"rules are now version {compiled.version}, not {version}")

    async def run() -> dict[str, int]:
        store = Store.from_settings(url, settings)
        try:
            pricer = Pricer(store, boundary_lead_seconds=settings.boundary_lead_seconds)
            counts = await reprice_all(pricer, compiled, now, share=share)
            return counts.as_dict()
        finally:
            await store.close()

    return asyncio.run(run())


async def reprice_all_in_processes(
    url: str,
    settings: Settings,
    rules_dir: Path,
    compiled: CompiledRuleset,
    now: datetime,
    processes: int,
) -> RepriceCounts:
    """Reprice the whole catalogue at ``now`` in ``processes`` processes; the counts of
    all of them. ``compiled`` is the ruleset the caller read from ``rules_dir``: every
    process checks it reads the same version."""
    # spawn, not fork: the caller's event loop, connections and threads stay behind.
    context = multiprocessing.get_context("spawn")
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        shares = [
            loop.run_in_executor(
                pool,
                _reprice_share,
                url,
                settings,
                rules_dir,
                compiled.version,
                now,
                Share(index, processes),
            )
            for index in range(processes)
        ]
        results = await asyncio.gather(*shares)
    total = RepriceCounts()
    for result in results:
        total.add(RepriceCounts(**result))
    return total
