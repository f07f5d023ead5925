"""Which segments need a price of their own.

A rule with a segment condition matches a lookup whose segment contains that condition.
So the price for any lookup segment equals the price for the union of the rule
conditions it contains: its *canonical* segment. The repricer prices every canonical
segment the rules can produce; a lookup maps its segment to the canonical one first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from difflib import get_close_matches

from pricing_service.engine.compiled import CompiledRuleset
from pricing_service.engine.inputs import DEFAULT_SEGMENT, Segment

#: A ruleset whose segment conditions combine into more segments than this is refused.
MAX_SEGMENTS = 256


def _conditions(ruleset: CompiledRuleset) -> list[frozenset[tuple[str, str]]]:
    return sorted(
        {rule.segment for rule in ruleset.rules if rule.segment},
        key=lambda condition: sorted(condition),
    )


def undeclared_parts(
    declared: Mapping[str, Sequence[str]], segment: Segment
) -> tuple[list[str], list[str]]:
    """What of ``segment`` the ruleset's ``segments:`` (``declared``) does not name: the
    errors (a value of a declared dimension, or a dimension name close to a declared one:
    typos, which would otherwise get the default price) and the notes (other dimensions,
    which no rule can match, as a storefront may send)."""
    errors, notes = [], []
    for dimension, value in segment.values:
        if dimension in declared:
            known = list(declared[dimension])
            if value not in known:
                errors.append(_unknown(f"{dimension} value {value!r}", value, known))
        elif get_close_matches(dimension, list(declared), n=1):
            errors.append(_unknown(f"dimension {dimension!r}", dimension, list(declared)))
        else:
            notes.append(f"segment dimension {dimension!r} is not in the ruleset: ignored")
    return errors, notes


def _unknown(what: str, name: str, known: list[str]) -> str:
    close = get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    listed = ", ".join(known) if known else "none"
    return f"unknown segment {what}{hint}; the ruleset declares: {listed}"


def canonical_segment(ruleset: CompiledRuleset, segment: Segment) -> Segment:
    """The segment whose price ``segment`` gets: the union of the conditions it contains."""
    wanted = set(segment.values)
    union: set[tuple[str, str]] = set()
    for condition in _conditions(ruleset):
        if condition <= wanted:
            union |= condition
    if not union:
        return DEFAULT_SEGMENT
    return Segment(values=tuple(sorted(union)))


def priced_segments(ruleset: CompiledRuleset) -> list[Segment]:
    """Every canonical segment: the default one and each consistent union of conditions."""
    found: set[frozenset[tuple[str, str]]] = {frozenset()}
    for condition in _conditions(ruleset):
        for existing in list(found):
            union = existing | condition
            dimensions = [key for key, _ in union]
            if len(dimensions) == len(set(dimensions)):  # one value per dimension
                found.add(union)
        if len(found) > MAX_SEGMENTS:
            raise ValueError(f"segment conditions combine into more than {MAX_SEGMENTS} segments")
    return sorted((Segment(values=tuple(sorted(s))) for s in found), key=str)
