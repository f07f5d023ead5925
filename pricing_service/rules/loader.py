"""Read rule files into a :class:`Ruleset`, or say exactly what is wrong with them.

Checking happens in three passes, each reporting every problem it finds with the file,
line and column of the offending YAML node:

1. each file on its own: YAML syntax, duplicate keys, then the :class:`RuleFile` shape;
2. the merge: a map key (event, competitor, segment) or a single setting (timezone,
   default, …) given by two files, a missing timezone or default;
3. the merged ruleset: references to undeclared competitors, events and segments,
   duplicate ids and priorities, guardrails no price can satisfy, events the calendar
   cannot place, and (as warnings) rules that an earlier rule hides completely, rule
   guardrails that do nothing, days with hours past midnight, an amount change that
   reads like a forgotten "%", and hours that lie in the time the clocks skip.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import logging
import re
import shutil
import subprocess
import types
import typing
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from pricing_service.rules.diagnostics import Diagnostic, RulesetError, Severity, has_errors
from pricing_service.rules.model import (
    Competitor,
    DefaultRule,
    Event,
    Guardrails,
    LoopProtection,
    PriceBand,
    Rule,
    RuleFile,
    Ruleset,
    Strategy,
    Window,
    format_duration,
)
from pricing_service.rules.yaml_source import (
    Position,
    SourceMap,
    ValuePath,
    YamlSyntaxError,
    parse_yaml,
)

__all__ = ["Diagnostic", "RulesetError", "check_ruleset", "check_texts", "load_ruleset"]

RULE_FILE_SUFFIXES = (".yaml", ".yml")

_log = logging.getLogger(__name__)
_T = TypeVar("_T")


def load_ruleset(path: Path) -> Ruleset:
    """The ruleset in ``path`` (a folder of rule files, or one file). Raises
    :class:`RulesetError` with every diagnostic when there is any error; warnings are
    logged."""
    ruleset, diagnostics = check_ruleset(path)
    if ruleset is None:
        raise RulesetError(diagnostics)
    for warning in diagnostics:
        _log.warning("%s", warning)
    return ruleset


def check_ruleset(path: Path) -> tuple[Ruleset | None, list[Diagnostic]]:
    """Every error and warning in the rule files at ``path``; the ruleset if it has no
    errors. The version is a content hash, plus ``+g<commit>`` inside a git work tree
    (``.dirty`` after it when the rule files have changes not committed)."""
    texts, diagnostics = _read_rule_files(path)
    if has_errors(diagnostics):
        return None, diagnostics
    ruleset, found = _check(texts, version_suffix=lambda: _git_suffix(path))
    return ruleset, sorted(diagnostics + found)


def check_texts(files: Mapping[str, str]) -> tuple[Ruleset | None, list[Diagnostic]]:
    """Like :func:`check_ruleset`, for rule files given as ``{file name: text}``."""
    texts = [
        _RuleText(name, name, text.encode())
        for name, text in sorted(files.items())
        if name.endswith(RULE_FILE_SUFFIXES)
    ]
    if not texts:
        return None, [_error_at_start("<input>", "no rule files (*.yaml) were given")]
    return _check(texts, version_suffix=lambda: "")


# -- reading --------------------------------------------------------------------------


@dataclass(frozen=True)
class _RuleText:
    display_name: str  # as the user gave it, for diagnostics
    relative_name: str  # inside the ruleset, for the version hash
    content: bytes


def _read_rule_files(path: Path) -> tuple[list[_RuleText], list[Diagnostic]]:
    """The rule files at ``path``, and warnings for what looks like one but is skipped."""
    skipped: list[Diagnostic] = []
    if path.is_dir():
        paths = sorted(
            (p for p in path.iterdir() if p.is_file() and p.name.endswith(RULE_FILE_SUFFIXES)),
            key=lambda p: p.name,
        )
        if not paths:
            return [], [_error_at_start(str(path), "no rule files (*.yaml) in this folder")]
        skipped = [
            Diagnostic(str(entry), 1, 1, "warning", why)
            for entry in sorted(path.iterdir())
            if (why := _why_skipped(entry)) is not None
        ]
    elif path.is_file():
        paths = [path]
    else:
        return [], [_error_at_start(str(path), "no such file or folder")]
    return [_RuleText(str(p), p.name, p.read_bytes()) for p in paths], skipped


def _why_skipped(entry: Path) -> str | None:
    """Why a folder entry that looks like rules is not read, if it looks like rules."""
    name = entry.name.lower()
    if entry.is_dir():
        if any(child.name.lower().endswith(RULE_FILE_SUFFIXES) for child in entry.iterdir()):
            return "skipped: rule files in a subfolder are not read; move them up a level"
        return None
    if entry.name.endswith(RULE_FILE_SUFFIXES) or name.startswith("."):
        return None
    if name.endswith(RULE_FILE_SUFFIXES):
        return "skipped: only names ending in lower-case .yaml or .yml are read"
    if ".yaml." in name or ".yml." in name:
        return "skipped: not a rule file name (*.yaml, *.yml)"
    return None


def _content_hash(texts: Iterable[_RuleText]) -> str:
    digest = hashlib.sha256()
    for text in sorted(texts, key=lambda t: t.relative_name):
        # Lengths make the encoding unambiguous: no two file sets hash the same stream.
        name = text.relative_name.encode()
        digest.update(b"%d:%s%d:" % (len(name), name, len(text.content)))
        digest.update(text.content)
    return digest.hexdigest()[:16]


def _git_suffix(path: Path) -> str:
    """``+g<commit>``, and ``.dirty`` when the rule files differ from that commit's (an
    audit record must not send a reader to a commit whose rules did not price it)."""
    folder, files = (path, ".") if path.is_dir() else (path.parent, path.name)
    commit = _git(folder, "rev-parse", "--short", "HEAD")
    if not commit:
        return ""
    changes = _git(folder, "status", "--porcelain", "--untracked-files=all", "--", files)
    return f"+g{commit}" + ("" if changes == "" else ".dirty")


def _git(folder: Path, *args: str) -> str | None:
    """A git command's output in ``folder``, stripped; None when git cannot say."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        result = subprocess.run(
            [git, *args], cwd=folder, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


# -- pass 1: each file ----------------------------------------------------------------


@dataclass(frozen=True)
class _ParsedFile:
    name: str
    model: RuleFile
    source: SourceMap


def _check(
    texts: list[_RuleText], version_suffix: typing.Callable[[], str]
) -> tuple[Ruleset | None, list[Diagnostic]]:
    diagnostics: list[Diagnostic] = []
    parsed: list[_ParsedFile] = []
    for text in texts:
        parsed_file = _parse_file(text, diagnostics)
        if parsed_file is not None:
            parsed.append(parsed_file)
    # Cross-file checks on a partial ruleset would report consequences (an "unknown"
    # competitor declared in the broken file), not causes.
    if has_errors(diagnostics):
        return None, sorted(diagnostics)
    merged = _merge(parsed, diagnostics)
    for check in _SEMANTIC_CHECKS:
        diagnostics.extend(check(merged))
    diagnostics.sort()
    if has_errors(diagnostics) or merged.timezone is None or merged.default is None:
        return None, diagnostics
    version = _content_hash(texts) + version_suffix()
    return merged.build(version), diagnostics


def _parse_file(text: _RuleText, diagnostics: list[Diagnostic]) -> _ParsedFile | None:
    name = text.display_name
    try:
        parsed = parse_yaml(text.content.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        diagnostics.append(_error_at_start(name, f"not UTF-8 text ({error.reason})"))
        return None
    except YamlSyntaxError as error:
        diagnostics.append(_diagnostic(name, error.position, "error", error.message))
        return None
    for problem in parsed.problems:
        diagnostics.append(_diagnostic(name, problem.position, "error", problem.message))
    if parsed.value is None and not parsed.problems:
        # A truncated file (an editor crash, a bad merge) would otherwise go live on the
        # next reload, every rule it held gone.
        message = (
            "the file is empty (or holds only comments): it is refused rather than put live "
            "without its rules; delete it, or write {} to keep it empty on purpose"
        )
        diagnostics.append(_error_at_start(name, message))
        return None
    # A value the YAML reader already refused (a date that does not exist) fails the model
    # too: one message for it is enough.
    reported = {problem.position for problem in parsed.problems}
    try:
        model = RuleFile.model_validate({} if parsed.value is None else parsed.value)
    except ValidationError as error:
        for details in error.errors(include_url=False):
            position, message = _explain(details, parsed.source)
            if position not in reported:
                diagnostics.append(_diagnostic(name, position, "error", message))
        return None
    return _ParsedFile(name, model, parsed.source)


def _diagnostic(file: str, position: Position, severity: Severity, message: str) -> Diagnostic:
    return Diagnostic(file, position.line, position.column, severity, message)


def _error_at_start(file: str, message: str) -> Diagnostic:
    return Diagnostic(file, 1, 1, "error", message)


# Pydantic's messages speak of Python types; these speak of what the author wrote.
_EXPECTED = {
    "decimal_parsing": "expected a number",
    "decimal_type": "expected a number",
    "finite_number": "expected a finite number",
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected text",
    "list_type": "expected a list",
    "dict_type": "expected a mapping of names to values",
    "model_type": "expected a mapping of fields (name: value lines)",
    "model_attributes_type": "expected a mapping of fields (name: value lines)",
    "date_type": "expected a date such as 2026-11-27",
    "date_parsing": "expected a date such as 2026-11-27",
    "date_from_datetime_parsing": "expected a date such as 2026-11-27",
    "date_from_datetime_inexact": "expected a date such as 2026-11-27",
    "time_type": "expected a clock time such as 08:30",
    "time_parsing": "expected a clock time such as 08:30",
}
_CONSTRAINTS = {
    "greater_than": "must be greater than {gt}",
    "greater_than_equal": "must be at least {ge}",
    "less_than": "must be less than {lt}",
    "less_than_equal": "must be at most {le}",
    "too_short": "needs at least {min_length} item(s)",
    "too_long": "takes at most {max_length} item(s)",
    "string_too_short": "must not be empty",
    "string_too_long": "must be at most {max_length} characters",
}
_PATTERNS = {
    r"^[a-z0-9][a-z0-9_\-]*$": (
        "expected an id of lowercase letters, digits, '_' and '-' (such as black-friday)"
    ),
    r"^[A-Z]{2}$": "expected a two-letter country code such as US",
    r"^(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$": 'expected a month and day such as "12-24"',
    r"^\.\d{1,3}$|^\d*9$": 'expected a price ending such as ".99", ".95" or "9"',
}


def _explain(details: ErrorDetails, source: SourceMap) -> tuple[Position, str]:
    """Where a validation error belongs in the file, and what it means in plain words."""
    loc = tuple(details["loc"])
    kind = details["type"]
    context = details.get("ctx", {})
    if kind == "extra_forbidden":
        return source.key_or_value(loc), _unknown_field(loc)
    if kind == "missing":
        return source.nearest(loc[:-1])[1], f"missing required field '{loc[-1]}'"
    if loc and loc[-1] == "[key]":
        return source.key_or_value(loc[:-1]), _message(kind, context, details)
    if kind in ("model_type", "model_attributes_type") and loc and loc[-1] == "dates":
        # Events take a list of ranges, so a window's single range is easily written as one.
        message = (
            "expected one date range such as {from: 2026-11-27, to: 2026-11-30} (a window "
            "takes one range; an event's dates take a list)"
        )
        return source.nearest(loc)[1], message
    return source.nearest(loc)[1], _message(kind, context, details)


def _message(kind: str, context: dict[str, Any], details: ErrorDetails) -> str:
    if kind in ("value_error", "assertion_error"):
        return str(context["error"])
    if kind == "literal_error":
        expected = str(context["expected"])
        return "expected true (or leave the field out)" if expected == "True" else expected
    if kind == "string_pattern_mismatch":
        expected = _PATTERNS.get(context["pattern"], f"expected text matching {context['pattern']}")
        return f"{expected}, got {_describe(details['input'])}"
    if kind == "enum":
        found = details["input"]
        message = f"expected one of {context['expected']}, got {_describe(found)}"
        choices = re.findall(r"'([^']*)'", str(context["expected"]))
        close = difflib.get_close_matches(str(found), choices, n=1)
        return f"{message} (did you mean '{close[0]}'?)" if close else message
    if kind in _CONSTRAINTS:
        return _CONSTRAINTS[kind].format(**context)
    if kind in _EXPECTED:
        found = details["input"]
        message = f"{_EXPECTED[kind]}, got {_describe(found)}"
        if kind == "string_type" and isinstance(found, int | Decimal | date | bool):
            message += "; put it in quotes"
        return message
    text = details["msg"]
    return text[:1].lower() + text[1:]


def _describe(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _unknown_field(loc: tuple[str | int, ...]) -> str:
    name = str(loc[-1])
    allowed = _field_names_at(loc[:-1])
    message = f"unknown field '{name}'"
    suggestion = difflib.get_close_matches(name, allowed, n=1)
    if suggestion:
        return f"{message} (did you mean '{suggestion[0]}'?)"
    if allowed:
        return f"{message} (allowed here: {', '.join(allowed)})"
    return message


def _field_names_at(loc: tuple[str | int, ...]) -> list[str]:
    """The field names (as written in files) of the model found at ``loc`` in a rule file."""
    current: Any = RuleFile
    for step in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = {info.alias or name: info for name, info in current.model_fields.items()}
            if step not in fields:
                return []
            current = fields[str(step)].annotation
        elif typing.get_origin(current) is list:
            current = typing.get_args(current)[0]
        elif typing.get_origin(current) is dict:
            current = typing.get_args(current)[1]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [info.alias or name for name, info in current.model_fields.items()]
    return []


def _unwrap(annotation: Any) -> Any:
    """``Annotated[X, ...]`` and ``X | None`` to ``X``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


# -- pass 2: merge --------------------------------------------------------------------


@dataclass(frozen=True)
class _Located(Generic[_T]):
    """A merged value and where it was written."""

    value: _T
    file: _ParsedFile
    path: ValuePath

    def position(self, *subpath: str | int) -> Position:
        return self.file.source.nearest((*self.path, *subpath))[1]

    def key_position(self, *subpath: str | int) -> Position:
        return self.file.source.key_or_value((*self.path, *subpath))

    def where(self) -> str:
        position = self.key_position()
        return f"{self.file.name}:{position.line}:{position.column}"

    def error(self, subpath: ValuePath, message: str, *, at_key: bool = False) -> Diagnostic:
        return self.report(subpath, message, "error", at_key=at_key)

    def report(
        self, subpath: ValuePath, message: str, severity: Severity, *, at_key: bool = False
    ) -> Diagnostic:
        position = self.key_position(*subpath) if at_key else self.position(*subpath)
        return _diagnostic(self.file.name, position, severity, message)


@dataclass
class _Merged:
    first_file: str
    rules: list[_Located[Rule]] = field(default_factory=list)
    segments: dict[str, _Located[list[str]]] = field(default_factory=dict)
    events: dict[str, _Located[Event]] = field(default_factory=dict)
    competitors: dict[str, _Located[Competitor]] = field(default_factory=dict)
    timezone: _Located[str] | None = None
    guardrails: _Located[Guardrails] | None = None
    loop_protection: _Located[LoopProtection] | None = None
    horizon: _Located[timedelta] | None = None
    default: _Located[DefaultRule] | None = None

    def priced(self) -> Iterator[_Located[Rule] | _Located[DefaultRule]]:
        """Everything that sets a price: the rules, then the default rule."""
        yield from self.rules
        if self.default is not None:
            yield self.default

    def build(self, version: str) -> Ruleset:
        # _merge reports a missing timezone or default as an error, so neither is None here.
        assert self.timezone is not None
        assert self.default is not None
        optional = {
            name: located.value
            for name, located in (
                ("guardrails", self.guardrails),
                ("loop_protection", self.loop_protection),
                ("horizon", self.horizon),
            )
            if located is not None
        }
        return Ruleset.model_validate(
            {
                "version": version,
                "timezone": self.timezone.value,
                "default": self.default.value,
                "rules": [rule.value for rule in self.rules],
                "segments": {key: located.value for key, located in self.segments.items()},
                "events": {key: located.value for key, located in self.events.items()},
                "competitors": {key: located.value for key, located in self.competitors.items()},
                **optional,
            }
        )


def _merge(files: list[_ParsedFile], diagnostics: list[Diagnostic]) -> _Merged:
    merged = _Merged(first_file=files[0].name)
    for file in files:
        model = file.model
        merged.rules.extend(
            _Located(rule, file, ("rules", index)) for index, rule in enumerate(model.rules or [])
        )
        _merge_map(merged.segments, model.segments, "segments", file, diagnostics)
        _merge_map(merged.events, model.events, "events", file, diagnostics)
        _merge_map(merged.competitors, model.competitors, "competitors", file, diagnostics)
        merged.timezone = _merge_single(
            merged.timezone, model.timezone, "timezone", file, diagnostics
        )
        merged.guardrails = _merge_single(
            merged.guardrails, model.guardrails, "guardrails", file, diagnostics
        )
        merged.loop_protection = _merge_single(
            merged.loop_protection, model.loop_protection, "loop_protection", file, diagnostics
        )
        merged.horizon = _merge_single(merged.horizon, model.horizon, "horizon", file, diagnostics)
        merged.default = _merge_single(merged.default, model.default, "default", file, diagnostics)
    if merged.timezone is None:
        diagnostics.append(
            _error_at_start(
                merged.first_file,
                "no rule file sets `timezone` (required), e.g. `timezone: Europe/Berlin`",
            )
        )
    if merged.default is None:
        diagnostics.append(
            _error_at_start(
                merged.first_file,
                "no rule file sets `default` (required): the pricing used when no rule matches",
            )
        )
    return merged


def _merge_map(
    into: dict[str, _Located[_T]],
    section: Mapping[str, _T] | None,
    name: str,
    file: _ParsedFile,
    diagnostics: list[Diagnostic],
) -> None:
    for key, value in (section or {}).items():
        located = _Located(value, file, (name, key))
        if key in into:
            message = f"'{key}' is already declared under `{name}` at {into[key].where()}"
            diagnostics.append(located.error((), message, at_key=True))
        else:
            into[key] = located


def _merge_single(
    current: _Located[_T] | None,
    value: _T | None,
    name: str,
    file: _ParsedFile,
    diagnostics: list[Diagnostic],
) -> _Located[_T] | None:
    if value is None:
        return current
    located = _Located(value, file, (name,))
    if current is None:
        return located
    message = f"`{name}` is already set at {current.where()}; set it in one file only"
    diagnostics.append(located.error((), message, at_key=True))
    return current


# -- pass 3: the merged ruleset -------------------------------------------------------


def _unknown(kind: str, name: str, known: Iterable[str], section: str) -> str:
    suggestion = difflib.get_close_matches(name, list(known), n=1)
    if suggestion:
        return f"unknown {kind} '{name}' (did you mean '{suggestion[0]}'?)"
    return f"unknown {kind} '{name}' (declare it under `{section}:`)"


def _strategies(priced: Rule | DefaultRule) -> Iterator[tuple[ValuePath, Strategy]]:
    yield ("strategy",), priced.strategy
    for index, fallback in enumerate(priced.fallback):
        yield ("fallback", index), fallback


def _check_competitor_references(merged: _Merged) -> Iterator[Diagnostic]:
    known = merged.competitors
    for located in merged.priced():
        for path, strategy in _strategies(located.value):
            follow = strategy.competitor
            if follow is None:
                continue
            if follow.competitor is not None and follow.competitor not in known:
                message = _unknown("competitor", follow.competitor, known, "competitors")
                yield located.error((*path, "competitor", "competitor"), message)
            elif follow.competitor is not None and known[follow.competitor].value.ours:
                yield located.report(
                    (*path, "competitor", "competitor"), _ours(follow.competitor), "warning"
                )
            for index, competitor in enumerate(follow.competitors or []):
                if competitor not in known:
                    message = _unknown("competitor", competitor, known, "competitors")
                    yield located.error((*path, "competitor", "competitors", index), message)
                elif known[competitor].value.ours:
                    where = (*path, "competitor", "competitors", index)
                    yield located.report(where, _ours(competitor), "warning")


def _ours(competitor: str) -> str:
    return (
        f"'{competitor}' is one of our own stores (ours: true in competitors): its offers are "
        "never counted, so this strategy never follows it"
    )


def _check_event_references(merged: _Merged) -> Iterator[Diagnostic]:
    known = merged.events
    for located in merged.priced():
        windows: list[tuple[ValuePath, list[str]]] = []
        if isinstance(located.value, Rule) and located.value.when is not None:
            windows.append((("when",), located.value.when.events or []))
        for index, adjustment in enumerate(located.value.adjustments):
            if adjustment.when is not None:
                windows.append((("adjustments", index, "when"), adjustment.when.events or []))
        for path, events in windows:
            for index, event in enumerate(events):
                if event not in known:
                    message = _unknown("event", event, known, "events")
                    yield located.error((*path, "events", index), message)


def _check_segment_references(merged: _Merged) -> Iterator[Diagnostic]:
    for located in merged.rules:
        for segment, value in (located.value.match.segment or {}).items():
            path = ("match", "segment", segment)
            if segment not in merged.segments:
                message = _unknown("segment", segment, merged.segments, "segments")
                yield located.error(path, message, at_key=True)
                continue
            allowed = merged.segments[segment].value
            if value not in allowed:
                message = (
                    f"'{value}' is not a value of segment '{segment}' "
                    f"(expected one of: {', '.join(allowed)})"
                )
                yield located.error(path, message)


def _check_duplicates(merged: _Merged) -> Iterator[Diagnostic]:
    by_id: dict[str, _Located[Rule]] = {}
    by_priority: dict[int, _Located[Rule]] = {}
    for located in merged.rules:
        rule = located.value
        if rule.id in by_id:
            where = by_id[rule.id].position("id")
            message = f"duplicate rule id '{rule.id}' (first used at {_at(by_id[rule.id], where)})"
            yield located.error(("id",), message)
        else:
            by_id[rule.id] = located
        if rule.priority in by_priority:
            first = by_priority[rule.priority]
            message = (
                f"priority {rule.priority} is also used by rule '{first.value.id}' "
                f"({_at(first, first.position('priority'))}); give each rule its own "
                "priority so the order they are tried in is clear"
            )
            yield located.error(("priority",), message)
        else:
            by_priority[rule.priority] = located
    for priced in merged.priced():
        seen: set[str] = set()
        for index, adjustment in enumerate(priced.value.adjustments):
            if adjustment.id in seen:
                message = f"duplicate adjustment id '{adjustment.id}' in this rule"
                yield priced.error(("adjustments", index, "id"), message)
            seen.add(adjustment.id)


def _at(located: _Located[Any], position: Position) -> str:
    return f"{located.file.name}:{position.line}:{position.column}"


def _check_guardrails_against_ruleset(merged: _Merged) -> Iterator[Diagnostic]:
    """A rule's guardrails can only tighten the ruleset's, so they must overlap them
    (a single block with min above max is already rejected by the model)."""
    if merged.guardrails is None:
        return
    outer = merged.guardrails
    for located in merged.priced():
        inner = located.value.guardrails
        if inner is None:
            continue
        if (
            inner.min_price is not None
            and outer.value.max_price is not None
            and inner.min_price > outer.value.max_price
        ):
            where = _at(outer, outer.position("max_price"))
            message = (
                f"impossible guardrails: min_price {inner.min_price} is above the ruleset's "
                f"max_price {outer.value.max_price} ({where})"
            )
            yield located.error(("guardrails", "min_price"), message)
        if (
            inner.max_price is not None
            and outer.value.min_price is not None
            and inner.max_price < outer.value.min_price
        ):
            where = _at(outer, outer.position("min_price"))
            message = (
                f"impossible guardrails: max_price {inner.max_price} is below the ruleset's "
                f"min_price {outer.value.min_price} ({where})"
            )
            yield located.error(("guardrails", "max_price"), message)
        yield from _looser_guardrails(located, inner, outer)


#: Rule guardrails that a looser value leaves without effect, and which way is looser:
#: -1 where a lower value is looser (a floor, a margin, a pause), +1 where higher is.
_LOOSER_WHEN = {
    "min_price": -1,
    "max_price": +1,
    "min_margin": -1,
    "max_change": +1,
    "max_change_per_day": +1,
    "cooldown": -1,
}


def _looser_guardrails(
    located: _Located[Any], inner: Guardrails, outer: _Located[Guardrails]
) -> Iterator[Diagnostic]:
    """A rule's guardrail no stricter than the ruleset's: it does nothing, which its
    author is unlikely to have meant."""
    if inner.enforce_map is False and outer.value.enforce_map is not False:
        message = (
            "has no effect: enforce_map false cannot turn off the ruleset's MAP guardrail "
            "(on unless the ruleset's guardrails say enforce_map: false), which applies to "
            "every rule"
        )
        yield located.report(("guardrails", "enforce_map"), message, "warning")
    for name, looser in _LOOSER_WHEN.items():
        mine, theirs = getattr(inner, name), getattr(outer.value, name)
        if mine is None or theirs is None:
            continue
        if (mine <= theirs) if looser < 0 else (mine >= theirs):
            where = _at(outer, outer.position(name))
            message = (
                f"has no effect: {name} {_shown(name, mine)} is no stricter than the "
                f"ruleset's {_shown(name, theirs)} ({where}), which applies to every rule"
            )
            yield located.report(("guardrails", name), message, "warning")


def _shown(name: str, value: Any) -> str:
    """A guardrail's value as the rule files write it: "8%", "6h", 19.99."""
    if isinstance(value, timedelta):
        return format_duration(value)
    if name in ("min_margin", "max_change", "max_change_per_day"):
        return f'"{(value * 100).normalize():f}%"'
    return str(value)


def _check_event_calendar(merged: _Merged) -> Iterator[Diagnostic]:
    if merged.timezone is None or not merged.events:
        return
    events = {key: located.value for key, located in merged.events.items()}
    for event_id, problem in _unresolvable_events(events, merged.timezone.value).items():
        located = merged.events[event_id]
        event = located.value
        anchor: ValuePath = (
            ("holiday",)
            if event.holiday is not None
            else ("month_day",)
            if event.month_day is not None
            else ()
        )
        yield located.error(anchor, f"event '{event_id}': {problem}", at_key=not anchor)


def _calendar() -> types.ModuleType | None:
    # The calendar module is developed alongside this one; without it the other checks
    # still run and the engine reports unplaceable events when it computes the calendar.
    module_name = "pricing_service.rules.calendar"
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        return None


def _unresolvable_events(events: dict[str, Event], timezone: str) -> dict[str, str]:
    calendar = _calendar()
    if calendar is None:
        return {}
    problems: dict[str, str] = calendar.unresolvable_events(events, timezone)
    return problems


def _check_shadowed_rules(merged: _Merged) -> Iterator[Diagnostic]:
    # sorted() is stable, so equal priorities keep file order, as Ruleset.ordered_rules.
    ordered = sorted(merged.rules, key=lambda located: -located.value.priority)
    index = _ScopeIndex()
    for later in ordered:
        for earlier in index.could_cover(later.value):
            if _covers(earlier.value, later.value):
                position = earlier.position("id")
                message = (
                    f"rule '{later.value.id}' can never match: rule '{earlier.value.id}' "
                    f"({earlier.file.name}:{position.line}) is tried first and matches "
                    "everything this rule matches"
                )
                yield later.report(("id",), message, "warning")
                break
        index.add(later)


_SCOPE_FIELDS = ("skus", "categories", "brands", "tags")


class _ScopeIndex:
    """The rules seen so far, filed by one scope they are narrowed to, so that a rule is
    compared only with the rules that could cover it: comparing every pair took minutes
    for a file of 20,000 single-SKU rules, and the loader runs on every hot reload.

    A rule narrowed to some SKUs (or categories, brands, tags) covers only rules narrowed
    to a subset of them, so it is filed under each of its values of its first narrowed
    field; a later rule looks up one of its own values there. Rules narrowed by no scope
    field can cover anything and are always candidates."""

    def __init__(self) -> None:
        self._count = 0
        self._unscoped: list[tuple[int, _Located[Rule]]] = []
        self._by_value: dict[tuple[str, str], list[tuple[int, _Located[Rule]]]] = {}

    def add(self, located: _Located[Rule]) -> None:
        entry = (self._count, located)
        self._count += 1
        match = located.value.match
        for scope_field in _SCOPE_FIELDS:
            values: list[str] | None = getattr(match, scope_field)
            if values is not None:
                for value in set(values):
                    self._by_value.setdefault((scope_field, value), []).append(entry)
                return
        self._unscoped.append(entry)

    def could_cover(self, rule: Rule) -> list[_Located[Rule]]:
        """A superset of the rules added so far that cover ``rule``, in the order they
        were added, so the first that covers it is the one a pairwise scan finds."""
        candidates = list(self._unscoped)
        for scope_field in _SCOPE_FIELDS:
            values: list[str] | None = getattr(rule.match, scope_field)
            if values is None:
                continue
            if not values:  # the model refuses empty lists; stay correct without it
                candidates = [
                    entry for bucket in self._by_value.values() for entry in bucket
                ] + self._unscoped
                break
            # A rule filed under this field covers ``rule`` only if it lists every one of
            # ``rule``'s values, so one value's bucket (the smallest) holds them all.
            buckets = [self._by_value.get((scope_field, value), []) for value in values]
            smallest = min(buckets, key=len)
            candidates += smallest
        # A rule filed under several values may come twice after the fallback above.
        unique = dict(candidates)
        return [unique[number] for number in sorted(unique)]


def _covers(earlier: Rule, later: Rule) -> bool:
    """Whether every item, segment and moment ``later`` matches is matched by ``earlier``."""
    if earlier.when is not None and earlier.when != later.when:
        return False
    wide, narrow = earlier.match, later.match
    for scope_field in ("skus", "categories", "brands", "tags"):
        wide_values, narrow_values = getattr(wide, scope_field), getattr(narrow, scope_field)
        if wide_values is not None and (
            narrow_values is None or not set(wide_values) >= set(narrow_values)
        ):
            return False
    wide_segment, narrow_segment = wide.segment or {}, narrow.segment or {}
    if not wide_segment.items() <= narrow_segment.items():
        return False
    return _band_contains(wide.price_band, narrow.price_band or PriceBand())


def _band_contains(wide: PriceBand | None, narrow: PriceBand) -> bool:
    if wide is None:
        return True
    low_ok = wide.min is None or (narrow.min is not None and wide.min <= narrow.min)
    high_ok = wide.max is None or (narrow.max is not None and wide.max >= narrow.max)
    return low_ok and high_ok


#: Zones with neither a region nor a fixed offset on purpose: "EST" is UTC-5 all year.
_REGIONLESS_ZONES_OK = frozenset({"UTC", "Etc/UTC", "GMT", "Etc/GMT"})


def _check_timezone_has_a_region(merged: _Merged) -> Iterator[Diagnostic]:
    zone = merged.timezone
    if zone is None or zone.value in _REGIONLESS_ZONES_OK:
        return
    if "/" not in zone.value or zone.value.startswith("Etc/"):
        yield zone.report(
            (),
            f"timezone {zone.value!r} is a fixed or legacy zone, not a place: local windows "
            "follow no daylight-saving rules of a region; name one such as "
            "America/New_York or Europe/Berlin",
            "warning",
        )


def _check_days_with_overnight_hours(merged: _Merged) -> Iterator[Diagnostic]:
    """``days`` tests each instant's own date, which surprises with hours past midnight."""
    for located in merged.priced():
        for path, window in _windows(located.value):
            if window.days is None or window.hours is None:
                continue
            start, end = window.hours.start, window.hours.end
            if end > start or end == time(0):  # "18:00-24:00" ends at midnight, not past it
                continue
            day = window.days[0].value
            message = (
                f"hours {start:%H:%M}-{end:%H:%M} run past midnight, and days test the date of "
                f"each instant: '{day}' covers {day} 00:00-{end:%H:%M} and "
                f"{start:%H:%M}-24:00, not the night into the next day"
            )
            yield located.report((*path, "hours"), message, "warning")


#: An amount change at least this share of every price its rule can set reads like a
#: percentage whose "%" was forgotten: "-20" off a price of at most 40.
AMOUNT_LIKE_A_PERCENTAGE = Decimal("0.5")


def _check_amounts_like_percentages(merged: _Merged) -> Iterator[Diagnostic]:
    """An amount change (``change: -20``) that is a large share of every price its rule
    can set, where the rule files bound that price: its fixed price, a max_price (the
    rule's or the ruleset's), or, for a list_price or discount strategy, its price band's
    max list price. Rules with no such bound (a competitor or cost-plus rule without a
    max_price) are not judged: the preview shows what their changes do."""
    outer = merged.guardrails
    for located in merged.priced():
        rule = located.value
        bound = _highest_price_known(located, outer)
        if bound is None:
            continue
        ceiling, basis = bound
        for index, adjustment in enumerate(rule.adjustments):
            amount = adjustment.change.amount
            if amount is None or amount == 0:
                continue
            # Only a number that would be a valid percentage change can be one.
            if (amount < 0 and -amount >= 100) or amount > 1000:
                continue
            share = abs(amount) / ceiling
            if share < AMOUNT_LIKE_A_PERCENTAGE:
                continue
            written = f"{amount:f}"
            shown = ("+" if amount > 0 else "") + written
            percent = ("+" if amount > 0 else "") + f"{amount.normalize():f}%"
            if share > 1:
                size = "more than"
            else:
                whole = int(share * 100)
                size = f"{whole}% of" if whole == share * 100 else f"over {whole}% of"
            message = (
                f"change {shown} is an amount in the item's currency, {size} {basis}: "
                f'if a percentage was meant, write "{percent}"'
            )
            yield located.report(("adjustments", index, "change"), message, "warning")


def _highest_price_known(
    located: _Located[Rule] | _Located[DefaultRule], outer: _Located[Guardrails] | None
) -> tuple[Decimal, str] | None:
    """The lowest ceiling the rule files put on a rule's price, and what sets it."""
    rule = located.value
    known: list[tuple[Decimal, str]] = []
    if rule.strategy.fixed is not None:
        known.append((rule.strategy.fixed, f"its fixed price {rule.strategy.fixed}"))
    if rule.guardrails is not None and rule.guardrails.max_price is not None:
        highest = rule.guardrails.max_price
        known.append((highest, f"its max_price {highest}, the highest price it can set"))
    if outer is not None and outer.value.max_price is not None:
        where = _at(outer, outer.position("max_price"))
        highest = outer.value.max_price
        basis = f"the ruleset's max_price {highest} ({where}), the highest price any rule can set"
        known.append((highest, basis))
    band = rule.match.price_band if isinstance(rule, Rule) and rule.match is not None else None
    at_most_list = rule.strategy.list_price is not None or rule.strategy.discount is not None
    if band is not None and band.max is not None and at_most_list and not rule.fallback:
        basis = f"its price band's max {band.max}, the highest list price it applies to"
        known.append((band.max, basis))
    known = [(value, basis) for value, basis in known if value > 0]
    return min(known, key=lambda entry: entry[0]) if known else None


def _windows(rule: Rule | DefaultRule) -> Iterator[tuple[ValuePath, Window]]:
    """A rule's window and its adjustments', each with its path in the rule."""
    # The default rule has no window of its own; its adjustments may.
    when = getattr(rule, "when", None)
    if when is not None:
        yield ("when",), when
    for index, adjustment in enumerate(rule.adjustments):
        if adjustment.when is not None:
            yield ("adjustments", index, "when"), adjustment.when


def _check_hours_the_clocks_skip(merged: _Merged) -> Iterator[Diagnostic]:
    """Hours wholly inside the local time the clocks skip when they go forward (02:00-
    03:00 in New York, one Sunday in March): on that day the window does not apply, and
    a window whose dates or events allow only such days never applies."""
    # A calendar without the function (one developed alongside, or a test's stand-in)
    # leaves the check out, as a missing calendar module does.
    hours_skipped = getattr(_calendar(), "hours_skipped", None)
    if merged.timezone is None or hours_skipped is None:
        return
    timezone = merged.timezone.value
    events = {key: located.value for key, located in merged.events.items()}
    today = datetime.now(ZoneInfo(timezone)).date()
    year = today.year
    for located in merged.priced():
        for path, window in _windows(located.value):
            if window.hours is None:
                continue
            skipped, never = hours_skipped(window, timezone, events, year)
            if window.dates is None and not window.events:
                # A daily window's day this year may be past: name the coming ones.
                skipped = [one for one in skipped if one.day >= today]
            if skipped:
                message = _skipped_hours_message(window, skipped, never, timezone, year, events)
                yield located.report((*path, "hours"), message, "warning")


def _skipped_hours_message(
    window: Window,
    skipped: list[Any],
    never: bool,
    timezone: str,
    year: int,
    events: Mapping[str, Event],
) -> str:
    assert window.hours is not None
    start, end = window.hours.start, window.hours.end
    hours = f"{start:%H:%M}-{'24:00' if end == time(0) else f'{end:%H:%M}'}"
    gaps = sorted({str(piece) for piece in skipped})
    lies = (
        f"its hours {hours} lie in the local time the clocks skip in {timezone} when they go "
        f"forward ({', '.join(gaps)})"
    )
    days = ", ".join([f"{piece.day}" for piece in skipped[:3]] + ["..."] * (len(skipped) > 3))
    if never:
        annual = window.dates is None and any(
            events[event_id].dates is None for event_id in window.events or ()
        )
        looked = f", in the years looked at ({year}-{year + 2})" if annual else ""
        conditions = " and ".join(
            name for name in ("dates", "days", "events") if getattr(window, name) is not None
        )
        return (
            f"the window never applies: {lies} on every day its {conditions} allow ({days}){looked}"
        )
    if window.dates is None and not window.events:
        # Every year: the same day each year, as long as tzdata says so.
        return f"the window does not apply on the day the clocks go forward ({days}): {lies}"
    return f"the window does not apply on {days}: {lies}"


_SEMANTIC_CHECKS: tuple[typing.Callable[[_Merged], Iterable[Diagnostic]], ...] = (
    _check_competitor_references,
    _check_event_references,
    _check_segment_references,
    _check_duplicates,
    _check_guardrails_against_ruleset,
    _check_event_calendar,
    _check_shadowed_rules,
    _check_timezone_has_a_region,
    _check_days_with_overnight_hours,
    _check_amounts_like_percentages,
    _check_hours_the_clocks_skip,
)
