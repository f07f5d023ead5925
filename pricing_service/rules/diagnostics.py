"""What checking a ruleset reports: positioned errors and warnings."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One finding, at a 1-based line and column of a rule file.

    ``str()`` gives the ``file:line:column: severity: message`` form that editors and CI
    logs turn into links.
    """

    file: str
    line: int
    column: int
    severity: Severity
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.severity}: {self.message}"

    def as_dict(self) -> dict[str, str | int]:
        return asdict(self)


class RulesetError(Exception):
    """A ruleset that cannot be used; ``diagnostics`` says everything that is wrong."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        errors = [d for d in diagnostics if d.severity == "error"]
        summary = f"{len(errors)} error(s) in the ruleset"
        super().__init__("\n".join([summary, *map(str, diagnostics)]))


def has_errors(diagnostics: list[Diagnostic]) -> bool:
    return any(d.severity == "error" for d in diagnostics)
