"""A process's own copy of the ruleset, kept up to date with the rule files: the API maps
lookup segments with it and the crawler workers read their competitors from it. An invalid
edit keeps the last good ruleset."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pricing_service.engine.compiled import CompiledRuleset
from pricing_service.engine.inputs import DEFAULT_SEGMENT, Segment
from pricing_service.engine.segments import canonical_segment, undeclared_parts
from pricing_service.metrics import record_rule_reload
from pricing_service.rules.diagnostics import Diagnostic
from pricing_service.rules.loader import RULE_FILE_SUFFIXES, check_ruleset

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoadedRules:
    compiled: CompiledRuleset
    files: tuple[str, ...]
    loaded_at: datetime


def _fingerprint(path: Path) -> tuple[tuple[str, int, int], ...]:
    """Names, sizes and mtimes of the rule files: cheap to poll, changes with any edit."""
    if path.is_file():
        candidates = [path]
    elif path.is_dir():
        candidates = sorted(p for p in path.iterdir() if p.name.endswith(RULE_FILE_SUFFIXES))
    else:
        return ()
    found = []
    for candidate in candidates:
        try:
            stat = candidate.stat()
        except FileNotFoundError:
            continue
        found.append((candidate.name, stat.st_size, stat.st_mtime_ns))
    return tuple(found)


class RulesState:
    """The last good ruleset from ``rules_dir`` and the last load error, if any."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.current: LoadedRules | None = None
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None
        self._seen: tuple[tuple[str, int, int], ...] | None = None

    def reload(self) -> bool:
        """Load the rules if their files changed; True when a new ruleset is in force."""
        seen = _fingerprint(self.path)
        if seen == self._seen:
            return False
        self._seen = seen
        ruleset, diagnostics = check_ruleset(self.path)
        if ruleset is None:
            self.last_error = _summary(diagnostics)
            self.last_error_at = datetime.now(UTC)
            record_rule_reload(ok=False)
            _log.error(
                "rules in %s rejected, keeping the last good ones:\n%s", self.path, self.last_error
            )
            return False
        if self.current is not None and self.current.compiled.version == ruleset.version:
            # A revert to the ruleset in force: nothing to swap, but the error is over.
            if self.last_error is not None:
                self._loaded_fine()
                _log.info("rules in %s valid again: %s stays in force", self.path, ruleset.version)
            return False
        self.current = LoadedRules(
            compiled=CompiledRuleset(ruleset),
            files=tuple(name for name, _, _ in seen),
            loaded_at=datetime.now(UTC),
        )
        self._loaded_fine()
        _log.info("rules %s loaded from %s", ruleset.version, self.path)
        return True

    def _loaded_fine(self) -> None:
        self.last_error = None
        self.last_error_at = None
        record_rule_reload(ok=True)

    async def watch(
        self, interval: float, on_change: Callable[[LoadedRules], None] | None = None
    ) -> None:
        """Poll the rule files until cancelled, calling ``on_change`` with each new ruleset
        put in force; parsing runs off the event loop."""
        while True:
            await asyncio.sleep(interval)
            try:
                changed = await asyncio.to_thread(self.reload)
                if changed and on_change is not None and self.current is not None:
                    on_change(self.current)
            except Exception:  # a watcher that dies silently would freeze the rules
                _log.exception("rules reload failed")

    def undeclared(self, segment: Segment) -> list[str]:
        """What of ``segment`` the ruleset's ``segments:`` does not declare, typos first:
        a lookup ignores it."""
        if self.current is None or not segment.values:
            return []
        errors, notes = undeclared_parts(self.current.compiled.ruleset.segments, segment)
        return errors + notes

    def canonical(self, segment: Segment) -> Segment:
        """The stored segment whose price ``segment`` gets (the default without rules)."""
        if self.current is None:
            return DEFAULT_SEGMENT
        return canonical_segment(self.current.compiled, segment)


def _summary(diagnostics: list[Diagnostic]) -> str:
    errors = [str(d) for d in diagnostics if d.severity == "error"]
    return "\n".join(errors) if errors else "the ruleset could not be loaded"
