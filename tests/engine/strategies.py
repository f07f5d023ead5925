"""Hypothesis strategies: random valid rulesets and random items for them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from pricing_service.engine.inputs import PricingInputs
from pricing_service.money import from_minor
from pricing_service.rules.model import Ruleset

CATEGORIES = ["electronics", "books", "garden"]
BRANDS = ["acme", "globex"]
TAGS = ["snack", "clearance", "new"]
COMPETITORS = ["alpha", "beta", "gamma", "ours"]
CURRENCIES = ["USD", "JPY", "KWD"]
START = datetime(2026, 1, 1, tzinfo=UTC)
#: Amounts that land exactly between two rounding points or make even-count medians odd.
TIE_PRONE_AMOUNTS = ["23.49", "23.5", "10", "10.01", "0.5", "199.99", "1000", "24.47"]


def percent(low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(lambda tenths: f"{Decimal(tenths) / 10}%")


@st.composite
def strategy_spec(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(
            [
                "fixed",
                "cost_plus",
                "discount",
                "list_price",
                "competitor",
                "elasticity",
                "keep_current",
            ]
        )
    )
    if kind == "fixed":
        return {"fixed": draw(st.sampled_from(TIE_PRONE_AMOUNTS) | st.integers(1, 50_000).map(str))}
    if kind == "cost_plus":
        return {"cost_plus": draw(percent(0, 1500))}
    if kind == "discount":
        return {"discount": draw(percent(0, 900))}
    if kind == "list_price":
        return {"list_price": True}
    if kind == "keep_current":
        return {"keep_current": True}
    if kind == "elasticity":
        return {
            "elasticity": {
                "max_standard_error": "0.5",
                "min_observations": draw(st.integers(1, 50)),
            }
        }
    reference = draw(st.sampled_from(["lowest", "median", "lowest_landed_in_stock", "competitor"]))
    action = draw(st.sampled_from(["match", "beat", "stay_above"]))
    spec: dict[str, Any] = {
        "reference": reference,
        "action": action,
        "max_age": draw(st.sampled_from(["1h", "6h", "2d"])),
        "in_stock_only": draw(st.booleans()),
        "include_shipping": draw(st.booleans()),
    }
    if reference == "competitor":
        spec["competitor"] = draw(st.sampled_from(COMPETITORS[:3]))
    if action != "match":
        spec["by"] = draw(st.one_of(percent(0, 300), st.integers(0, 500).map(str)))
    if draw(st.booleans()):
        spec["competitors"] = draw(
            st.lists(st.sampled_from(COMPETITORS), min_size=1, max_size=3, unique=True)
        )
    return {"competitor": spec}


@st.composite
def window_spec(draw: st.DrawFn) -> dict[str, Any]:
    window: dict[str, Any] = {}
    if draw(st.booleans()):
        window["days"] = draw(
            st.lists(
                st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]),
                min_size=1,
                max_size=4,
                unique=True,
            )
        )
    if draw(st.booleans()) or not window:
        start, end = draw(st.integers(0, 23)), draw(st.integers(0, 23))
        if start == end:
            end = (end + 1) % 24
        window["hours"] = f"{start:02d}:00-{end:02d}:30"
    return window


@st.composite
def guardrails_spec(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if draw(st.booleans()):
        spec["min_margin"] = draw(percent(0, 500))
    if draw(st.booleans()):
        spec["max_change"] = draw(percent(1, 500))
    if draw(st.booleans()):
        spec["max_change_per_day"] = draw(percent(1, 800))
    if draw(st.booleans()):
        spec["direction"] = draw(st.sampled_from(["any", "up_only", "down_only"]))
    if draw(st.booleans()):
        spec["cooldown"] = draw(st.sampled_from(["10m", "1h", "1d"]))
    if draw(st.booleans()):
        low = draw(st.integers(1, 100))
        spec["min_price"] = str(low)
        spec["max_price"] = str(low + draw(st.integers(0, 50_000)))
    if draw(st.booleans()):
        spec["rounding"] = draw(
            st.one_of(
                st.sampled_from(
                    [{"ending": ".99"}, {"ending": ".95"}, {"ending": "9"}, {"ending": ".5"}]
                ),
                st.lists(st.integers(1, 2000), min_size=1, max_size=5, unique=True).map(
                    lambda points: {"price_points": [str(p) for p in points]}
                ),
            ).map(lambda r: {**r, "mode": draw(st.sampled_from(["nearest", "down", "up"]))})
        )
    return spec


@st.composite
def rule_spec(draw: st.DrawFn, index: int) -> dict[str, Any]:
    match: dict[str, Any] = {}
    if draw(st.integers(0, 3)) == 0:
        match["categories"] = draw(
            st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=2, unique=True)
        )
    if draw(st.integers(0, 3)) == 0:
        match["brands"] = draw(
            st.lists(st.sampled_from(BRANDS), min_size=1, max_size=2, unique=True)
        )
    if draw(st.integers(0, 3)) == 0:
        match["tags"] = draw(st.lists(st.sampled_from(TAGS), min_size=1, max_size=2, unique=True))
    if draw(st.integers(0, 3)) == 0:
        match["skus"] = draw(
            st.lists(st.sampled_from(["S1", "S2", "S3"]), min_size=1, max_size=2, unique=True)
        )
    if draw(st.booleans()):
        low = draw(st.integers(0, 500))
        match["price_band"] = {"min": str(low), "max": str(low + draw(st.integers(0, 5000)))}
    if draw(st.integers(0, 4)) == 0:
        match["segment"] = {"channel": draw(st.sampled_from(["web", "app"]))}
    rule: dict[str, Any] = {
        "id": f"rule-{index}",
        "description": "generated",
        "owner": "tests",
        "priority": 1000 - index,
        "match": match,
        "strategy": draw(strategy_spec()),
        "fallback": draw(st.lists(strategy_spec(), max_size=2)),
        "guardrails": draw(guardrails_spec()),
    }
    if draw(st.integers(0, 2)) == 0:
        rule["when"] = draw(window_spec())
    adjustments = []
    for number in range(draw(st.integers(0, 2))):
        adjustment: dict[str, Any] = {
            "id": f"adj-{number}",
            "change": draw(
                st.one_of(
                    percent(-300, 300).map(lambda p: p if p.startswith("-") else "+" + p),
                    st.integers(-300, 300).map(str),
                )
            ),
        }
        if draw(st.booleans()):
            adjustment["when"] = draw(window_spec())
        if draw(st.booleans()):
            adjustment["signals"] = {"velocity_ratio": {"above": "1.2"}}
        if draw(st.booleans()):
            adjustment["signals"] = {"days_of_supply": {"below": "20"}, "inventory": {"above": "3"}}
        adjustments.append(adjustment)
    rule["adjustments"] = adjustments
    return rule


@st.composite
def rulesets(draw: st.DrawFn) -> Ruleset:
    count = draw(st.integers(0, 5))
    return Ruleset.model_validate(
        {
            "version": "test",
            "timezone": draw(st.sampled_from(["America/New_York", "Europe/Berlin", "UTC"])),
            "segments": {"channel": ["web", "app"]},
            "competitors": {name: {"name": name, "ours": name == "ours"} for name in COMPETITORS},
            "guardrails": draw(guardrails_spec()),
            "loop_protection": {
                "max_same_direction": draw(st.integers(2, 5)),
                "max_flips": draw(st.integers(2, 5)),
            },
            "default": {
                "strategy": draw(strategy_spec()),
                "fallback": draw(st.lists(strategy_spec(), max_size=1)),
            },
            "rules": [draw(rule_spec(index)) for index in range(count)],
        }
    )


def _amount(draw: st.DrawFn, currency: str, low: int, high: int) -> Decimal:
    return from_minor(draw(st.integers(low, high)), currency)


def _maybe(draw: st.DrawFn, currency: str, low: int, high: int) -> Decimal | None:
    return _amount(draw, currency, low, high) if draw(st.booleans()) else None


@st.composite
def pricing_inputs(draw: st.DrawFn, currency: str, at: datetime) -> PricingInputs:
    sku = draw(st.sampled_from(["S1", "S2", "S3", "S4", "S5"]))
    history_points = draw(
        st.lists(st.tuples(st.integers(60, 3 * 86_400), st.integers(1, 500_000)), max_size=6)
    )
    changes = sorted(
        (
            {"at": at - timedelta(seconds=ago), "price": from_minor(minor, currency)}
            for ago, minor in history_points
        ),
        key=lambda c: c["at"],
    )
    current = _maybe(draw, currency, 1, 500_000)
    item = {
        "sku": sku,
        "currency": currency,
        "cost": _maybe(draw, currency, 0, 300_000),
        "list_price": _maybe(draw, currency, 1, 600_000),
        "map_price": _maybe(draw, currency, 1, 400_000),
        "min_price": _maybe(draw, currency, 1, 200_000),
        "max_price": _maybe(draw, currency, 1, 900_000),
        "inventory": draw(st.none() | st.integers(0, 1000)),
        "category": draw(st.none() | st.sampled_from(CATEGORIES)),
        "brand": draw(st.none() | st.sampled_from(BRANDS)),
        "tags": draw(st.frozensets(st.sampled_from(TAGS), max_size=2)),
        "current_price": current,
        "last_changed_at": (at - timedelta(seconds=draw(st.integers(0, 2 * 86_400))))
        if current
        else None,
        "recent_changes": changes,
    }

    def offer_price() -> Decimal:
        if draw(st.booleans()):
            return Decimal(draw(st.sampled_from(TIE_PRONE_AMOUNTS))).quantize(
                from_minor(1, currency)
            )
        return _amount(draw, currency, 0, 500_000)

    observations = [
        {
            "competitor": draw(st.sampled_from([*COMPETITORS, *COMPETITORS[:3], "unknown"])),
            "price": offer_price(),
            "currency": draw(st.sampled_from([currency] * 8 + ["EUR"])),
            "observed_at": at
            - timedelta(seconds=draw(st.integers(-60, 5 * 3600) | st.integers(0, 3 * 86_400))),
            "shipping": _maybe(draw, currency, 0, 5_000),
            "in_stock": draw(st.booleans()),
        }
        for _ in range(draw(st.integers(0, 5)))
    ]
    for observation in observations:
        if observation["currency"] == "EUR":  # another currency: the engine must ignore it
            observation["price"] = observation["price"].quantize(Decimal(1))
            if observation["shipping"] is not None:
                observation["shipping"] = observation["shipping"].quantize(Decimal(1))
    demand = draw(
        st.none()
        | st.builds(
            dict,
            velocity_7d=st.floats(0, 50),
            velocity_28d=st.floats(0, 50),
            days_of_supply=st.none() | st.floats(0, 400),
        )
    )
    elasticity = draw(
        st.none()
        | st.builds(
            dict,
            elasticity=st.floats(-6, 1),
            standard_error=st.floats(0, 1),
            observations=st.integers(0, 200),
        )
    )
    return PricingInputs.model_validate(
        {"item": item, "observations": observations, "demand": demand, "elasticity": elasticity}
    )


instants = st.integers(0, 2 * 365 * 86_400).map(lambda s: START + timedelta(seconds=s))


@st.composite
def competitor_rulesets(draw: st.DrawFn) -> Ruleset:
    """Every item priced by a competitor strategy and then rounded: the paths where
    medians, ties and rounding modes meet."""
    strategy = draw(strategy_spec().filter(lambda spec: "competitor" in spec))
    guardrails = draw(guardrails_spec())
    guardrails.setdefault(
        "rounding",
        draw(
            st.sampled_from(
                [
                    {"ending": ".99"},
                    {"ending": ".5"},
                    {"price_points": ["10", "10.01", "23.5", "24.47"]},
                ]
            )
        ),
    )
    return Ruleset.model_validate(
        {
            "version": "test",
            "timezone": "UTC",
            "competitors": {name: {"name": name, "ours": name == "ours"} for name in COMPETITORS},
            "guardrails": guardrails,
            "default": {"strategy": strategy},
        }
    )


@st.composite
def clamped_rulesets(draw: st.DrawFn) -> Ruleset:
    """Rulesets pricing at the list price under tight guardrails: with
    :func:`clamped_inputs`, most prices are clamped, and by every kind of guardrail
    (random rulesets and items leave step limits far from binding)."""
    guardrails = draw(guardrails_spec())
    guardrails.pop("min_price", None)
    guardrails.pop("max_price", None)
    for name, low, high in (("max_change", 1, 300), ("max_change_per_day", 1, 300)):
        if name in guardrails:
            guardrails[name] = draw(percent(low, high))
    return Ruleset.model_validate(
        {
            "version": "test",
            "timezone": "UTC",
            "competitors": {},
            "guardrails": guardrails,
            "loop_protection": {"enabled": False},
            "default": {"strategy": {"list_price": True}},
            "rules": [],
        }
    )


@st.composite
def clamped_inputs(draw: st.DrawFn, currency: str, at: datetime) -> PricingInputs:
    """An item whose list price, cost, MAP, bounds and recent prices lie near its price in
    force, so that guardrails bind in turn (see :func:`clamped_rulesets`)."""
    current = draw(st.integers(1_000, 20_000))
    if draw(st.booleans()):
        # On a ".99" ending, where rounding within a narrow range can land back on it.
        current += 99 - current % 100

    def near(low_percent: int, high_percent: int) -> Decimal:
        return from_minor(current * draw(st.integers(low_percent, high_percent)) // 100, currency)

    def maybe_near(low_percent: int, high_percent: int) -> Decimal | None:
        return near(low_percent, high_percent) if draw(st.booleans()) else None

    day_ago = at - timedelta(seconds=draw(st.integers(86_400, 2 * 86_400)))
    item = {
        "sku": draw(st.sampled_from(["S1", "S2", "S3"])),
        "currency": currency,
        "cost": maybe_near(30, 110),
        "list_price": near(20, 250),
        "map_price": maybe_near(60, 140),
        "min_price": maybe_near(40, 120),
        "max_price": maybe_near(80, 200),
        "current_price": from_minor(current, currency),
        "last_changed_at": at - timedelta(seconds=draw(st.integers(0, 86_400))),
        "recent_changes": [{"at": day_ago, "price": near(50, 150)}] if draw(st.booleans()) else [],
    }
    return PricingInputs.model_validate({"item": item})
