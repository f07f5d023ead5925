"""Schemathesis hooks for the contract test (loaded through ``SCHEMATHESIS_HOOKS``).

Randomly generated SKUs and ids find nothing, so only 404s would be checked: generated
path parameters are often swapped for values the test seeded, so that successful
responses are held to their schemas too.
"""

from __future__ import annotations

import json
import os
from typing import Any

import schemathesis
from hypothesis import strategies as st

SEEDED_VALUES_VARIABLE = "CONTRACT_SEEDED_VALUES"
#: Path parameter name to seeded values, by operation label ("GET /v1/items/{sku}"),
#: with the values for every other operation under "*".
Seeded = dict[str, dict[str, list[str]]]


def _seeded(label: str) -> dict[str, list[str]]:
    seeded: Seeded = json.loads(os.environ.get(SEEDED_VALUES_VARIABLE, "{}"))
    return seeded.get(label, seeded.get("*", {}))


@schemathesis.hook
def flatmap_path_parameters(
    context: schemathesis.HookContext, path_parameters: dict[str, Any] | None
) -> st.SearchStrategy[dict[str, Any] | None]:
    if not path_parameters or context.operation is None:
        return st.just(path_parameters)
    known = {
        name: st.sampled_from(values)
        for name, values in _seeded(context.operation.label).items()
        if name in path_parameters and values
    }
    if not known:
        return st.just(path_parameters)
    generated = path_parameters
    # Seeded first: Hypothesis tries the first branch most, and shrinks towards it.
    return st.one_of(
        st.fixed_dictionaries(known).map(lambda chosen: {**generated, **chosen}),
        st.just(generated),
    )
