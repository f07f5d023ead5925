"""A small ruleset and instant shared by the store tests."""

from __future__ import annotations

from datetime import UTC, datetime

from pricing_service.engine import CompiledRuleset
from pricing_service.rules.model import Ruleset

AT = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)  # a Friday: the weekend window is next


def weekend_engine() -> CompiledRuleset:
    """List price, 20% off on weekends in New York."""
    return CompiledRuleset(
        Ruleset.model_validate(
            {
                "version": "v1",
                "timezone": "America/New_York",
                "default": {"strategy": {"list_price": True}},
                "rules": [
                    {
                        "id": "weekend",
                        "description": "d",
                        "owner": "o",
                        "priority": 1,
                        "when": {"days": ["sat", "sun"]},
                        "strategy": {"discount": "20%"},
                    }
                ],
            }
        )
    )
