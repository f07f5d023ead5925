"""Case-insensitive word lists compiled into patterns that Python's `re` scans fast.

A pattern led by `\\b`, a lookahead or a case-insensitive alternation gives `re` no first
character to look for, so it tries the whole pattern at every position of the text:
about 50 to 100 ns a character, milliseconds on a page's visible text. Led by a plain set
of first letters, `re` skips straight to those letters (three to five times faster here).
"""

from __future__ import annotations


def any_of(*alternatives: str, word_start: bool = True) -> str:
    """A pattern for `(?i:alt|alt|...)`, or `\\b(?i:...)` with ``word_start``.

    Each alternative is a regular expression whose first character is a letter; the
    alternatives keep their order among those sharing a first letter, which is the only
    order an alternation can observe at one position.
    """
    rests: dict[str, list[str]] = {}
    for alternative in alternatives:
        first = alternative[0]
        if not first.isalpha():
            raise ValueError(f"{alternative!r} must start with a letter")
        rests.setdefault(first.lower(), []).append(alternative[1:])
    letters = "".join(sorted({c for first in rests for c in (first, first.upper())}))
    branches = "|".join(f"(?<={first})(?:{'|'.join(r)})" for first, r in rests.items())
    boundary = r"(?<!\w.)" if word_start else ""
    return f"[{letters}]{boundary}(?i:{branches})"
