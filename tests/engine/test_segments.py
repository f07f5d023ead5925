"""Canonical segments: a lookup's segment maps to the one its price was computed for."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from pricing_service.engine import CompiledRuleset, ItemFacts, Segment, decide
from pricing_service.engine.segments import canonical_segment, priced_segments
from pricing_service.rules.model import Ruleset

AT = datetime(2026, 11, 20, 15, tzinfo=UTC)
CONDITIONS: list[dict[str, str]] = [
    {"channel": "app"},
    {"tier": "member"},
    {"channel": "app", "tier": "member"},
    {"region": "eu"},
    {"channel": "web"},
]


def _engine() -> CompiledRuleset:
    rules: list[dict[str, Any]] = [
        {
            "id": f"r{i}",
            "description": "d",
            "owner": "o",
            "priority": 100 - i,
            "match": {"segment": condition},
            "strategy": {"discount": f"{i + 1}%"},
        }
        for i, condition in enumerate(CONDITIONS)
    ]
    return CompiledRuleset(
        Ruleset.model_validate(
            {
                "version": "v",
                "timezone": "UTC",
                "segments": {"channel": ["app", "web"], "tier": ["member"], "region": ["eu", "us"]},
                "default": {"strategy": {"list_price": True}},
                "rules": rules,
            }
        )
    )


def test_priced_segments_are_the_consistent_unions_of_conditions() -> None:
    names = {str(s) for s in priced_segments(_engine())}
    assert "" in names
    assert "channel:app,tier:member" in names
    assert "channel:app,region:eu,tier:member" in names
    assert not any("channel:app" in n and "channel:web" in n for n in names)


lookups = st.dictionaries(
    st.sampled_from(["channel", "tier", "region"]),
    st.sampled_from(["app", "web", "member", "eu", "us"]),
    max_size=3,
)


@given(values=lookups)
def test_a_lookup_gets_the_price_of_its_canonical_segment(values: dict[str, str]) -> None:
    engine = _engine()
    segment = Segment(values=tuple(sorted(values.items())))
    canonical = canonical_segment(engine, segment)
    assert canonical in priced_segments(engine)
    item = ItemFacts(sku="S", currency="USD", list_price=Decimal("100.00"))
    assert (
        decide(engine, item, AT, segment=segment).price
        == decide(engine, item, AT, segment=canonical).price
    )
