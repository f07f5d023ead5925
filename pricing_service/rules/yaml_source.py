"""YAML text to plain Python values, remembering where every value came from.

PyYAML's own constructors lose positions and follow YAML 1.1, where ``NO`` (Norway) is
false, ``10:30`` is the integer 630 and ``19.99`` becomes a binary float. Rule files are
written by people, not programs, so we compose the node graph ourselves and build values
from it with YAML 1.2 core-schema typing: only ``true``/``false`` are booleans, numbers
with a fraction or exponent become ``Decimal`` built from the source text, and
``2026-11-27`` becomes a ``date``. Every value's position is kept in a :class:`SourceMap`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

#: Where a value sits in a document: mapping keys and list indices from the root.
ValuePath = tuple[str | int, ...]

_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_DATE = "tag:yaml.org,2002:timestamp"
_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"

_SPECIAL_FLOATS = {
    ".inf": Decimal("Infinity"),
    "+.inf": Decimal("Infinity"),
    "-.inf": Decimal("-Infinity"),
    ".nan": Decimal("NaN"),
}


@dataclass(frozen=True)
class Position:
    """A 1-based line and column in a text."""

    line: int
    column: int

    @classmethod
    def of(cls, mark: yaml.Mark) -> Position:
        return cls(mark.line + 1, mark.column + 1)


class YamlSyntaxError(Exception):
    """The text is not YAML we accept; nothing could be read from it."""

    def __init__(self, position: Position, message: str) -> None:
        super().__init__(message)
        self.position = position
        self.message = message


@dataclass
class SourceMap:
    """Positions of the values of one document, by :data:`ValuePath`."""

    values: dict[ValuePath, Position] = field(default_factory=dict)
    #: The position of the key that introduces a mapping value (same path as the value).
    keys: dict[ValuePath, Position] = field(default_factory=dict)

    def nearest(self, path: ValuePath) -> tuple[ValuePath, Position]:
        """The longest prefix of ``path`` that exists in the document, and its position."""
        for length in range(len(path), -1, -1):
            prefix = path[:length]
            if prefix in self.values:
                return prefix, self.values[prefix]
        return (), Position(1, 1)

    def key_or_value(self, path: ValuePath) -> Position:
        """The key naming ``path`` if there is one (list items have none), else its value."""
        if path in self.keys:
            return self.keys[path]
        return self.nearest(path)[1]


@dataclass(frozen=True)
class ValueProblem:
    """Something wrong with one value that still lets the rest of the file be read."""

    position: Position
    message: str


@dataclass
class ParsedYaml:
    value: Any
    source: SourceMap
    problems: list[ValueProblem]


class _RuleFileLoader(yaml.SafeLoader):
    """Composes nodes only, with YAML 1.2 core-schema implicit typing and no aliases."""

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        # An alias shares one node between several places, so an error in it would have
        # several positions; rule files stay explicit instead.
        if self.check_event(AliasEvent):
            event = self.get_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None,
                None,
                f"aliases such as *{event.anchor} are not supported; write the value out",
                event.start_mark,
            )
        return super().compose_node(parent, index)


# Start from no implicit types at all instead of SafeLoader's YAML 1.1 ones.
_RuleFileLoader.yaml_implicit_resolvers = {}


def _resolve(tag: str, pattern: str, first_chars: str) -> None:
    _RuleFileLoader.add_implicit_resolver(tag, re.compile(pattern, re.X), list(first_chars))


_resolve(_NULL, r"^(?:~|null|Null|NULL)$", "~nN")
_RuleFileLoader.add_implicit_resolver(_NULL, re.compile(r"^$"), [""])
_resolve(_BOOL, r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF")
_resolve(_INT, r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", "-+0123456789")
_resolve(
    _FLOAT,
    r"""^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
         |[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$""",
    "-+.0123456789",
)
_resolve(_DATE, r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", "0123456789")


def parse_yaml(text: str) -> ParsedYaml:
    """Read one YAML document. Raises :class:`YamlSyntaxError` when it is not valid YAML;
    smaller problems (a duplicate key, an unknown tag) are returned with the value."""
    try:
        root = yaml.compose(text, Loader=_RuleFileLoader)
    except yaml.MarkedYAMLError as error:
        raise _syntax_error(error) from None
    builder = _Builder()
    value = None if root is None else builder.build(root, ())
    return ParsedYaml(value, builder.source, builder.problems)


def _syntax_error(error: yaml.MarkedYAMLError) -> YamlSyntaxError:
    mark = error.problem_mark or error.context_mark
    position = Position.of(mark) if mark is not None else Position(1, 1)
    problem = error.problem or "invalid YAML"
    message = f"invalid YAML: {problem}"
    if error.context and error.context_mark is not None:
        where = Position.of(error.context_mark)
        message += f" ({error.context} at line {where.line}, column {where.column})"
    for symptom, hint in _SYNTAX_HINTS.items():
        if symptom in problem:
            message += f"; {hint}"
            break
    return YamlSyntaxError(position, message)


# PyYAML describes what the parser saw; these say what the author most likely did.
_SYNTAX_HINTS = {
    "mapping values are not allowed here": "is a space missing after ':' or a line misaligned?",
    "cannot start any token": "indent with spaces, not tabs",
    "could not find expected ':'": "is a ':' missing after a key?",
    "expected <block end>": "check that this line is indented like its neighbours",
    "found another document": "a rule file holds one document; remove the extra '---'",
}


class _Builder:
    def __init__(self) -> None:
        self.source = SourceMap()
        self.problems: list[ValueProblem] = []

    def build(self, node: Node, path: ValuePath) -> Any:
        self.source.values[path] = Position.of(node.start_mark)
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            self._expect_tag(node, _SEQ)
            return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        assert isinstance(node, ScalarNode)
        return self._scalar(node)

    def _mapping(self, node: MappingNode, path: ValuePath) -> dict[str, Any]:
        self._expect_tag(node, _MAP)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key_position = Position.of(key_node.start_mark)
            if not isinstance(key_node, ScalarNode):
                self._problem(key_position, "a key must be a plain name, not a list or mapping")
                continue
            if key_node.value == "<<" and key_node.style is None:
                # Reported as what it is, not as an unknown field '<<' and the fields it
                # was meant to bring in as missing.
                self._problem(
                    key_position,
                    "merge keys (<<) are not supported in rule files: write the fields out",
                )
                continue
            # Keys are names, so they keep their text: `2026:` or `no:` stay as written.
            key = str(key_node.value)
            key_path = (*path, key)
            if key in result:
                first = self.source.keys[key_path]
                self._problem(
                    key_position, f"duplicate key '{key}' (first given at line {first.line})"
                )
                continue
            self.source.keys[key_path] = key_position
            result[key] = self.build(value_node, key_path)
        return result

    def _scalar(self, node: ScalarNode) -> Any:
        text: str = node.value
        tag = node.tag
        try:
            if tag == _NULL:
                return None
            if tag == _BOOL:
                return text.lower() == "true"
            if tag == _INT:
                return int(text, 0) if text[:2].lower() in ("0x", "0o") else int(text)
            if tag == _FLOAT:
                # From the source text, so 19.99 stays exactly 19.99.
                special = _SPECIAL_FLOATS.get(text.lower())
                return special if special is not None else Decimal(text)
            if tag == _DATE:
                return date.fromisoformat(text)
        except (ValueError, InvalidOperation):
            self._problem(Position.of(node.start_mark), f"{text!r} is not a valid {_name(tag)}")
            return text
        self._expect_tag(node, _STR)
        return text

    def _expect_tag(self, node: Node, expected: str) -> None:
        if node.tag != expected:
            self._problem(Position.of(node.start_mark), f"unsupported YAML tag {node.tag}")

    def _problem(self, position: Position, message: str) -> None:
        self.problems.append(ValueProblem(position, message))


def _name(tag: str) -> str:
    return {_INT: "whole number", _FLOAT: "number", _DATE: "date", _BOOL: "boolean"}.get(tag, tag)
