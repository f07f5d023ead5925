"""Benchmark the pricing engine: batch decisions per second, single-item latency, memory.

    python bench/engine.py [--sizes 100000 1000000] [--quick] [--profile] [--seed 7]

Everything runs on one core (BLAS/OpenMP threads pinned to 1 before numpy loads) and is
deterministic for a seed. The batch path is fed ``BatchInputs`` columns generated
directly with numpy, the way the service loads them, so object construction is not
measured. Each figure is the best of a few repeats, and a plain numpy pass over the same
columns (cost x 1.35, rounded half up) runs in the same process as the floor the batch
path is compared with, so the ratio stays meaningful on a noisy machine.

Before any timing, a sample of items is built as objects, encoded with ``encode_batch``
and priced by both paths at several instants and segments: the prices must agree, or
the benchmark would be measuring a wrong fast path.
"""

from __future__ import annotations

import os

for _variable in (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
):
    os.environ[_variable] = "1"

import argparse  # noqa: E402  (numpy must see the thread settings above)
import cProfile  # noqa: E402
import gc  # noqa: E402
import io  # noqa: E402
import platform  # noqa: E402
import pstats  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, field, fields, replace  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from decimal import Decimal  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, cast  # noqa: E402

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from pricing_service.engine import (  # noqa: E402
    DEFAULT_SEGMENT,
    MISSING,
    BatchDecisions,
    BatchInputs,
    CompetitorObservation,
    CompiledRuleset,
    Decision,
    DemandStats,
    ElasticityEstimate,
    ItemFacts,
    PriceChange,
    PricingInputs,
    Segment,
    decide,
    decide_batch,
    encode_batch,
)
from pricing_service.engine.batch import Vocabulary  # noqa: E402
from pricing_service.money import RATIO_SCALE, from_minor  # noqa: E402
from pricing_service.rules.model import Ruleset  # noqa: E402

Int64Array = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

CURRENCY = "USD"
FOREIGN_CURRENCY = "EUR"
#: The benchmark instant: Black Friday 2026, 18:30 in New York (a Friday evening).
BENCH_AT = datetime(2026, 11, 27, 23, 30, tzinfo=UTC)
#: Extra instants for the equivalence check: a plain Wednesday morning, a summer
#: Saturday night, and a Prime Day afternoon.
CHECK_INSTANTS = (
    BENCH_AT,
    datetime(2026, 3, 11, 14, 0, tzinfo=UTC),
    datetime(2026, 7, 12, 4, 15, tzinfo=UTC),
    datetime(2026, 7, 14, 19, 0, tzinfo=UTC),
)
CHECK_SEGMENTS = (
    DEFAULT_SEGMENT,
    Segment.parse("channel:app,tier:member"),
    Segment.parse("channel:marketplace"),
)
#: Currencies of the equivalence check: 2, 0 and 3 minor-unit digits.
CHECK_CURRENCIES = ("USD", "JPY", "KWD")

GOAL_BATCH_PER_SECOND = 1_000_000
GOAL_SINGLE_MICROSECONDS = 50.0
#: Competitor slots per item in the generated columns (each item sees 0..4 offers).
OFFER_SLOTS = 4
FLOOR_MARKUP_PPM = 1_350_000

# -- the catalogue universe: some names are used by rules, some are not ------------------

CATEGORIES = (
    "apparel", "appliances", "auto", "baby", "beauty", "books", "electronics", "garden",
    "grocery", "home", "music", "office", "pets", "sports", "tools", "toys",
)  # fmt: skip
BRANDS = (
    "acme", "auriga", "boreal", "cobalt", "dunmore", "ember", "fjord", "granite", "helio",
    "ionic", "juniper", "kestrel", "lumen", "meridian", "norvik", "orchid", "pioneer",
    "quill", "ridge", "summit", "tundra", "umber", "vesper", "zephyr",
)  # fmt: skip
TAGS = (
    "bestseller", "bulky", "bundle", "clearance", "eco", "fragile", "imported", "new",
    "premium", "refurbished", "seasonal", "snack",
)  # fmt: skip
TAG_PROBABILITY = 0.07
#: Competitor ids; ``our_outlet`` is our own store and never counts.
COMPETITORS = ("bargainhub", "dealzone", "megamart", "our_outlet", "pricehawk", "shopright")


# -- rulesets -----------------------------------------------------------------------------

STANDARD_GUARDRAILS: dict[str, Any] = {
    "min_margin": "8%",
    "enforce_map": True,
    "max_change": "15%",
    "max_change_per_day": "30%",
    "cooldown": "15m",
    "rounding": {"ending": ".99"},
}
EVENTS: dict[str, Any] = {
    "black_friday": {
        "name": "Black Friday",
        "holiday": {"country": "US", "name": "Thanksgiving"},
        "offset_days": 1,
    },
    "cyber_monday": {
        "name": "Cyber Monday",
        "holiday": {"country": "US", "name": "Thanksgiving"},
        "offset_days": 4,
    },
    "christmas_rush": {"name": "Christmas rush", "month_day": "12-15", "duration_days": 10},
    "boxing_week": {"name": "Boxing week", "month_day": "12-26", "duration_days": 7},
    "prime_day": {
        "name": "Prime Day",
        "dates": [{"from": "2026-07-14", "to": "2026-07-15"}],
    },
    "back_to_school": {
        "name": "Back to school",
        "nth_weekday": {"month": 8, "weekday": "mon", "n": 1},
        "duration_days": 14,
    },
}


def _competitor_table() -> dict[str, Any]:
    return {
        cid: {"name": cid.replace("_", " ").title(), "ours": cid == "our_outlet"}
        for cid in COMPETITORS
    }


def _ruleset(
    version: str,
    default: dict[str, Any],
    rules: list[dict[str, Any]],
    *,
    guardrails: dict[str, Any] | None,
    loop_protection: bool = True,
) -> Ruleset:
    return Ruleset.model_validate(
        {
            "version": version,
            "timezone": "America/New_York",
            "segments": {"channel": ["web", "app", "marketplace"], "tier": ["member"]},
            "guardrails": guardrails or {},
            "loop_protection": {"enabled": loop_protection},
            "default": {"owner": "bench", **default},
            "rules": rules,
            "events": EVENTS,
            "competitors": _competitor_table(),
        }
    )


def cost_plus_ruleset(*, guardrails: bool) -> Ruleset:
    """Every item at cost plus 35% (keep the current price without a cost)."""
    return _ruleset(
        "bench-cost-plus" + ("" if guardrails else "-bare"),
        {"strategy": {"cost_plus": "35%"}},
        [],
        guardrails=STANDARD_GUARDRAILS if guardrails else None,
        loop_protection=guardrails,
    )


def competitor_ruleset(*, guardrails: bool) -> Ruleset:
    """Competitor strategies only: lowest, median, named, landed; no other fallback
    than keeping the current price."""
    rules = [
        {
            "id": "books-median",
            "description": "match the median",
            "owner": "bench",
            "priority": 30,
            "match": {"categories": ["books", "music"]},
            "strategy": {"competitor": {"reference": "median", "max_age": "2d"}},
        },
        {
            "id": "appliances-above-megamart",
            "description": "2.00 above megamart",
            "owner": "bench",
            "priority": 20,
            "match": {"categories": ["appliances"]},
            "strategy": {
                "competitor": {
                    "reference": "competitor",
                    "competitor": "megamart",
                    "action": "stay_above",
                    "by": "2.00",
                }
            },
        },
        {
            "id": "electronics-landed",
            "description": "beat the lowest landed price by 1%",
            "owner": "bench",
            "priority": 10,
            "match": {"categories": ["electronics"]},
            "strategy": {
                "competitor": {
                    "reference": "lowest",
                    "action": "beat",
                    "by": "1%",
                    "max_age": "12h",
                    "include_shipping": True,
                }
            },
        },
    ]
    return _ruleset(
        "bench-competitor" + ("" if guardrails else "-bare"),
        {"strategy": {"competitor": {"reference": "lowest", "action": "beat", "by": "0.50"}}},
        rules,
        guardrails=STANDARD_GUARDRAILS if guardrails else None,
        loop_protection=guardrails,
    )


def _competitor_spec(rng: random.Random) -> dict[str, Any]:
    reference = rng.choice(["lowest", "lowest", "median", "competitor", "lowest_landed_in_stock"])
    spec: dict[str, Any] = {"reference": reference}
    if reference == "competitor":
        spec["competitor"] = rng.choice(["megamart", "shopright", "bargainhub"])
    action = rng.choice(["match", "beat", "beat", "stay_above"])
    spec["action"] = action
    if action != "match":
        spec["by"] = rng.choice(["1%", "2%", "0.5%", "0.50", "1.00", "3%"])
    if reference in ("lowest", "median") and rng.random() < 0.4:
        spec["competitors"] = sorted(
            rng.sample(["megamart", "shopright", "bargainhub", "dealzone", "pricehawk"], 3)
        )
    spec["max_age"] = rng.choice(["6h", "12h", "24h", "2d", "3d"])
    if rng.random() < 0.25:
        spec["in_stock_only"] = False
    if rng.random() < 0.35:
        spec["include_shipping"] = True
    return spec


ADJUSTMENT_TEMPLATES: tuple[dict[str, Any], ...] = (
    {
        "id": "scarce-and-selling",
        "signals": {"velocity_ratio": {"above": 1.5}, "days_of_supply": {"below": 14}},
        "change": "+5%",
    },
    {"id": "slow-stock", "signals": {"days_of_supply": {"above": 120}}, "change": "-7%"},
    {"id": "low-inventory", "signals": {"inventory": {"below": 5}}, "change": "+3%"},
    {"id": "overstock", "signals": {"inventory": {"above": 300}}, "change": "-1.00"},
    {"id": "cooling-demand", "signals": {"velocity_ratio": {"below": 0.6}}, "change": "-4%"},
    {"id": "evening-uplift", "when": {"hours": "18:00-22:00"}, "change": "+2%"},
    {"id": "weekend-dip", "when": {"days": ["sat", "sun"]}, "change": "-3%"},
    {"id": "christmas-uplift", "when": {"events": ["christmas_rush"]}, "change": "+4%"},
    {
        "id": "black-friday-clearout",
        "when": {"events": ["black_friday"]},
        "signals": {"days_of_supply": {"above": 60}},
        "change": "-10%",
    },
)
FALLBACK_CHOICES: tuple[list[dict[str, Any]], ...] = (
    [{"cost_plus": "30%"}],
    [{"cost_plus": "40%"}, {"list_price": True}],
    [{"discount": "10%"}],
    [{"list_price": True}],
    [],
)
RULE_GUARDRAIL_CHOICES: tuple[dict[str, Any] | None, ...] = (
    None,
    None,
    None,
    {"min_margin": "12%"},
    {"max_change": "10%"},
    {"rounding": {"ending": ".95"}},
    {"direction": "down_only"},
    {"cooldown": "1h", "rounding": {"ending": ".49", "mode": "down"}},
    {"rounding": {"ending": "9", "mode": "up"}},
)


def mixed_ruleset(seed: int) -> Ruleset:
    """A realistic ruleset of 35 rules: events, segments, SKU lists, time windows,
    competitor rules per category and price band, tags, brands, price bands."""
    rng = random.Random(seed)
    rules: list[dict[str, Any]] = []
    priority = 1000

    def add(rule_id: str, match: dict[str, Any], strategy: dict[str, Any], **extra: Any) -> None:
        nonlocal priority
        priority -= 10
        rule = {
            "id": rule_id,
            "description": rule_id.replace("-", " "),
            "owner": "bench@example.com",
            "priority": priority,
            "match": match,
            "strategy": strategy,
        }
        rule.update({key: value for key, value in extra.items() if value})
        rules.append(rule)

    # Events.
    when_bf = {"events": ["black_friday", "cyber_monday"]}
    add("bf-electronics", {"categories": ["electronics"]}, {"discount": "15%"}, when=when_bf)
    add(
        "bf-toys-beat",
        {"categories": ["toys"]},
        {"competitor": {"reference": "lowest", "action": "beat", "by": "3%"}},
        when={"events": ["black_friday"]},
        fallback=[{"discount": "10%"}],
    )
    add(
        "christmas-toys",
        {"categories": ["toys", "baby"]},
        {"cost_plus": "45%"},
        when={"events": ["christmas_rush"]},
    )
    add(
        "prime-day-bestsellers",
        {"tags": ["bestseller"]},
        {"competitor": {"reference": "lowest", "competitors": ["megamart"]}},
        when={"events": ["prime_day"]},
    )
    # Segments.
    add("member-app", {"segment": {"channel": "app", "tier": "member"}}, {"discount": "5%"})
    add(
        "marketplace-landed",
        {"segment": {"channel": "marketplace"}},
        {"competitor": {"reference": "lowest_landed_in_stock"}},
    )
    # SKU lists: SKUs present in every size from 100k up.
    fixed_skus = sorted(sku_name(index) for index in rng.sample(range(100_000), 40))
    frozen_skus = sorted(sku_name(index) for index in rng.sample(range(100_000), 30))
    add("promo-fixed", {"skus": fixed_skus}, {"fixed": "19.99"})
    add("frozen-skus", {"skus": frozen_skus}, {"keep_current": True})
    # Time windows.
    add(
        "weekend-garden",
        {"categories": ["garden"]},
        {"discount": "10%"},
        when={"days": ["sat", "sun"]},
    )
    add(
        "happy-hour-snacks",
        {"categories": ["grocery"], "tags": ["snack"]},
        {"discount": "15%"},
        when={"days": ["mon", "tue", "wed", "thu", "fri"], "hours": "18:00-21:00"},
    )
    add(
        "night-owl-electronics",
        {"categories": ["electronics"]},
        {"competitor": {"reference": "lowest", "action": "beat", "by": "0.5%"}},
        when={"hours": "23:00-06:00"},
        fallback=[{"cost_plus": "25%"}],
    )
    add(
        "friday-apparel",
        {"categories": ["apparel"]},
        {"cost_plus": "60%"},
        when={"days": ["fri"]},
        fallback=[{"discount": "20%"}],
    )
    # Competitor rules per category and price band.
    bands = ({"max": 25}, {"min": 25, "max": 250}, {"min": 250})
    for category in ("electronics", "appliances", "books", "home", "sports", "office", "beauty"):
        for band in rng.sample(bands, 2):
            add(
                f"{category}-competitor-{len(rules)}",
                {"categories": [category], "price_band": band},
                {"competitor": _competitor_spec(rng)},
                fallback=rng.choice(FALLBACK_CHOICES),
                adjustments=[dict(a) for a in rng.sample(ADJUSTMENT_TEMPLATES, rng.randint(0, 2))],
                guardrails=rng.choice(RULE_GUARDRAIL_CHOICES),
            )
    for category in ("auto", "pets", "tools"):
        add(
            f"{category}-competitor",
            {"categories": [category]},
            {"competitor": _competitor_spec(rng)},
            fallback=rng.choice(FALLBACK_CHOICES),
            adjustments=[dict(a) for a in rng.sample(ADJUSTMENT_TEMPLATES, rng.randint(0, 2))],
            guardrails=rng.choice(RULE_GUARDRAIL_CHOICES),
        )
    # Tags.
    add(
        "clearance",
        {"tags": ["clearance"]},
        {"list_price": True},
        adjustments=[
            {
                "id": "slow-stock-markdown",
                "signals": {"days_of_supply": {"above": 90}},
                "change": "-20%",
            },
            {"id": "boxing-week-extra", "when": {"events": ["boxing_week"]}, "change": "-5.00"},
        ],
    )
    add("new-arrivals", {"tags": ["new"]}, {"cost_plus": "55%"}, fallback=[{"list_price": True}])
    add(
        "bestseller-above-median",
        {"tags": ["bestseller", "premium"]},
        {"competitor": {"reference": "median", "action": "stay_above", "by": "1%"}},
        fallback=[{"cost_plus": "40%"}],
        adjustments=[dict(ADJUSTMENT_TEMPLATES[0])],
    )
    add(
        "refurbished",
        {"tags": ["refurbished"]},
        {"discount": "25%"},
        fallback=[{"cost_plus": "20%"}],
        guardrails={"min_margin": "5%"},
    )
    # Brands.
    add(
        "premium-elasticity",
        {"brands": ["lumen", "auriga"]},
        {"elasticity": {"max_standard_error": "0.4", "min_observations": 60}},
        fallback=[{"cost_plus": "40%"}],
    )
    add(
        "house-brands",
        {"brands": ["norvik", "helio"]},
        {"cost_plus": "38%"},
        adjustments=[dict(ADJUSTMENT_TEMPLATES[2]), dict(ADJUSTMENT_TEMPLATES[5])],
    )
    add(
        "zephyr-list",
        {"brands": ["zephyr"]},
        {"list_price": True},
        guardrails={"direction": "up_only"},
    )
    # Price bands across categories.
    add(
        "luxury-band",
        {"price_band": {"min": 1000}},
        {"cost_plus": "25%"},
        guardrails={
            "rounding": {"price_points": ["999", "1099", "1199", "1299", "1499", "1999", "2499"]}
        },
    )
    add(
        "cheap-band",
        {"price_band": {"max": "4.99"}},
        {"cost_plus": "80%"},
        fallback=[{"fixed": "2.99"}],
    )
    default = {
        "description": "cost plus 35%, else the list price",
        "strategy": {"cost_plus": "35%"},
        "fallback": [{"list_price": True}],
        "adjustments": [dict(ADJUSTMENT_TEMPLATES[1])],
    }
    return _ruleset(f"bench-mixed-{seed}", default, rules, guardrails=STANDARD_GUARDRAILS)


# -- synthetic items as columns -------------------------------------------------------------


def sku_name(index: int) -> str:
    return f"SKU-{index:07d}"


@dataclass(slots=True)
class Catalogue:
    """Generated columns plus the names behind the codes, to rebuild item objects."""

    inputs: BatchInputs
    category_index: npt.NDArray[np.int16]  # into CATEGORIES, -1 for none
    brand_index: npt.NDArray[np.int16]  # into BRANDS, -1 for none
    tag_matrix: BoolArray  # n x len(TAGS)
    offer_is_foreign: BoolArray  # n x slots: quoted in FOREIGN_CURRENCY
    offer_foreign_price: Int64Array  # n x slots, minor units of FOREIGN_CURRENCY


def _lookup(names: Sequence[str], codes: dict[str, int]) -> npt.NDArray[np.int32]:
    return np.array([codes.get(name, -1) for name in names], np.int32)


def _scaled(rng: np.random.Generator, base: Int64Array, low: float, high: float) -> Int64Array:
    """``base`` times a uniform factor in ``[low, high)``, whole minor units, at least 1."""
    factor = rng.uniform(low, high, base.shape[0])
    scaled: Int64Array = np.maximum(1, np.rint(base * factor)).astype(np.int64)
    return scaled


def _tag_column(tag_matrix: BoolArray, vocabulary: Vocabulary) -> npt.NDArray[np.uint64]:
    """One bit per tag the ruleset mentions, at the tag's vocabulary code."""
    bits = np.array(
        [1 << vocabulary.tags[t] if t in vocabulary.tags else 0 for t in TAGS], np.uint64
    )
    column: npt.NDArray[np.uint64] = np.bitwise_or.reduce(
        np.where(tag_matrix, bits, np.uint64(0)), axis=1
    )
    return column


def _with_missing(rng: np.random.Generator, values: Int64Array, present: float) -> Int64Array:
    return np.where(rng.random(values.shape[0]) < present, values, MISSING)


def generate_catalogue(
    ruleset: CompiledRuleset, n: int, at: datetime, seed: int, currency: str = CURRENCY
) -> Catalogue:
    """``n`` items as ``BatchInputs`` columns, coded in ``ruleset``'s vocabulary."""
    rng = np.random.default_rng(seed)
    vocabulary = Vocabulary(ruleset)
    epoch = int(at.timestamp())

    true_cost = np.rint(np.exp(rng.uniform(np.log(80), np.log(150_000), n))).astype(np.int64)
    true_list = _scaled(rng, true_cost, 1.2, 2.2)
    cost = _with_missing(rng, true_cost, 0.95)
    list_price = _with_missing(rng, true_list, 0.97)
    map_price = _with_missing(rng, _scaled(rng, true_list, 0.7, 0.95), 0.15)
    min_price = _with_missing(rng, _scaled(rng, true_cost, 1.0, 1.25), 0.08)
    max_price = _with_missing(rng, _scaled(rng, true_list, 1.05, 1.5), 0.06)
    current = _with_missing(rng, _scaled(rng, true_list, 0.8, 1.1), 0.97)
    known_current = current != MISSING
    # Most prices changed days ago; about one in twenty within the 15-minute cooldown.
    recent = rng.random(n) < 0.05
    age = np.where(recent, rng.integers(30, 900, n), rng.integers(1_800, 14 * 86_400, n)).astype(
        np.int64
    )
    last_changed = np.where(known_current, epoch - age, MISSING)
    inventory = np.where(rng.random(n) < 0.9, rng.integers(0, 500, n).astype(np.float64), np.nan)

    category_index = rng.integers(0, len(CATEGORIES), n).astype(np.int16)
    category_index[rng.random(n) < 0.03] = -1
    brand_index = rng.integers(0, len(BRANDS), n).astype(np.int16)
    brand_index[rng.random(n) < 0.1] = -1
    category_codes = np.append(_lookup(CATEGORIES, vocabulary.categories), np.int32(-1))
    brand_codes = np.append(_lookup(BRANDS, vocabulary.brands), np.int32(-1))
    tag_matrix = rng.random((n, len(TAGS))) < TAG_PROBABILITY
    tags = _tag_column(tag_matrix, vocabulary)

    sku_in_rule = np.zeros((n, len(vocabulary.sku_rules)), bool)
    for column, rule_index in enumerate(vocabulary.sku_rules):
        for sku in ruleset.rules[rule_index].skus or ():
            index = int(sku.removeprefix("SKU-"))
            if index < n:
                sku_in_rule[index, column] = True

    # Loop-protection history, shaped like move_history's output.
    last_direction = rng.choice(np.array([-1, 0, 1], np.int8), n, p=[0.3, 0.4, 0.3])
    moving = (last_direction != 0) & known_current
    last_direction = np.where(moving, last_direction, 0).astype(np.int8)
    run_length = np.where(moving, rng.integers(1, 5, n), 0).astype(np.int32)
    flips = np.where(moving, rng.integers(0, 5, n), 0).astype(np.int32)
    price_day_ago = np.where(
        known_current, _scaled(rng, np.where(known_current, current, 1), 0.8, 1.2), MISSING
    )

    offers = _generate_offers(rng, vocabulary, true_list, epoch, n)
    velocity_ratio = np.where(rng.random(n) < 0.85, np.round(rng.lognormal(0, 0.5, n), 3), np.nan)
    days_of_supply = np.where(rng.random(n) < 0.8, np.round(rng.exponential(60, n), 1), np.nan)
    has_elasticity = rng.random(n) < 0.3
    elasticity_bp = np.where(has_elasticity, rng.integers(-40_000, -5_000, n), MISSING).astype(
        np.int64
    )
    elasticity_se = np.where(has_elasticity, np.round(rng.uniform(0.05, 0.8, n), 3), np.nan)
    elasticity_n = np.where(has_elasticity, rng.integers(10, 400, n), 0).astype(np.int64)

    inputs = BatchInputs(
        currency=currency,
        skus=[sku_name(index) for index in range(n)],
        cost=cost,
        list_price=list_price,
        map_price=map_price,
        min_price=min_price,
        max_price=max_price,
        current=current,
        last_changed=last_changed.astype(np.int64),
        inventory=inventory,
        category=category_codes[category_index],
        brand=brand_codes[brand_index],
        tags=tags,
        sku_in_rule=sku_in_rule,
        last_direction=last_direction,
        run_length=run_length,
        flips=flips,
        price_day_ago=price_day_ago.astype(np.int64),
        offer_price=offers.price,
        offer_shipping=offers.shipping,
        offer_in_stock=offers.in_stock,
        offer_observed=offers.observed,
        offer_competitor=offers.competitor,
        velocity_ratio=velocity_ratio,
        days_of_supply=days_of_supply,
        elasticity_bp=elasticity_bp,
        elasticity_se=elasticity_se,
        elasticity_n=elasticity_n,
    )
    return Catalogue(
        inputs=inputs,
        category_index=category_index,
        brand_index=brand_index,
        tag_matrix=tag_matrix,
        offer_is_foreign=offers.foreign,
        offer_foreign_price=offers.foreign_price,
    )


@dataclass(slots=True)
class _Offers:
    price: Int64Array
    shipping: Int64Array
    in_stock: BoolArray
    observed: Int64Array
    competitor: npt.NDArray[np.int16]
    foreign: BoolArray
    foreign_price: Int64Array


def _generate_offers(
    rng: np.random.Generator, vocabulary: Vocabulary, list_price: Int64Array, epoch: int, n: int
) -> _Offers:
    """Each competitor's latest offer, at most ``OFFER_SLOTS`` per item, packed into the
    slots in competitor-id order as ``encode_batch`` does."""
    codes = np.array(sorted(vocabulary.competitors.values()), np.int16)
    present = rng.random((n, len(codes))) < 0.55
    slot = np.cumsum(present, axis=1) - 1
    present &= slot < OFFER_SLOTS
    rows, competitor_column = np.nonzero(present)
    slots = slot[rows, competitor_column]

    def matrix(fill: Any, dtype: Any) -> npt.NDArray[Any]:
        return np.full((n, OFFER_SLOTS), fill, dtype)

    count = rows.shape[0]
    base_price = np.maximum(1, np.rint(list_price[rows] * rng.uniform(0.7, 1.2, count)))
    foreign = rng.random(count) < 0.03
    competitor = matrix(-1, np.int16)
    competitor[rows, slots] = codes[competitor_column]
    price = matrix(MISSING, np.int64)
    price[rows, slots] = np.where(foreign, MISSING, base_price)
    shipping = matrix(MISSING, np.int64)
    has_shipping = (rng.random(count) < 0.6) & ~foreign
    shipping[rows, slots] = np.where(has_shipping, rng.integers(0, 1_300, count), MISSING)
    in_stock = matrix(False, bool)
    in_stock[rows, slots] = rng.random(count) < 0.85
    observed = matrix(0, np.int64)
    # Crawls are mostly fresh (mean age 8 hours); a tail is days old and goes stale.
    age = np.minimum(60 + rng.exponential(8 * 3_600, count), 4 * 86_400).astype(np.int64)
    observed[rows, slots] = epoch - age
    is_foreign = matrix(False, bool)
    is_foreign[rows, slots] = foreign
    foreign_price = matrix(MISSING, np.int64)
    foreign_price[rows, slots] = np.where(foreign, base_price, MISSING)
    return _Offers(price, shipping, in_stock, observed, competitor, is_foreign, foreign_price)


def in_vocabulary(catalogue: Catalogue, ruleset: CompiledRuleset) -> BatchInputs:
    """The catalogue's columns with names coded in another ruleset's vocabulary."""
    vocabulary = Vocabulary(ruleset)
    standard = {name: code for code, name in enumerate(sorted(COMPETITORS))}
    if vocabulary.competitors != standard or vocabulary.sku_rules:
        raise ValueError("recoding needs the standard competitors and no SKU lists")
    category_codes = np.append(_lookup(CATEGORIES, vocabulary.categories), np.int32(-1))
    brand_codes = np.append(_lookup(BRANDS, vocabulary.brands), np.int32(-1))
    return replace(
        catalogue.inputs,
        category=category_codes[catalogue.category_index],
        brand=brand_codes[catalogue.brand_index],
        tags=_tag_column(catalogue.tag_matrix, vocabulary),
        sku_in_rule=np.zeros((len(catalogue.inputs), 0), bool),
    )


# -- the same items as objects ------------------------------------------------------------


def _money(minor: int | np.integer[Any], currency: str) -> Decimal | None:
    return None if int(minor) == int(MISSING) else from_minor(int(minor), currency)


def _moment(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def build_objects(
    ruleset: CompiledRuleset, catalogue: Catalogue, rows: Sequence[int], seed: int
) -> list[PricingInputs]:
    """Item objects carrying the same facts as the columns at ``rows``, plus a price
    history, older duplicate offers and an unknown competitor for the single path to
    sift through."""
    rng = random.Random(seed)
    inputs = catalogue.inputs
    home = inputs.currency
    names = {code: name for name, code in Vocabulary(ruleset).competitors.items()}
    result: list[PricingInputs] = []
    for row in rows:
        current = int(inputs.current[row])
        changed = int(inputs.last_changed[row])
        changes: list[PriceChange] = []
        if current != int(MISSING):
            moment, price = changed, current
            history: list[tuple[int, int]] = [(moment, price)]
            for _ in range(rng.randint(0, 5)):
                moment -= rng.randint(600, 20 * 3_600)
                price = max(1, round(price * rng.uniform(0.9, 1.1)))
                history.append((moment, price))
            changes = [
                PriceChange(at=_moment(t), price=from_minor(p, home)) for t, p in reversed(history)
            ]
        category = int(catalogue.category_index[row])
        brand = int(catalogue.brand_index[row])
        inventory = float(inputs.inventory[row])
        item = ItemFacts(
            sku=inputs.skus[row],
            currency=home,
            cost=_money(inputs.cost[row], home),
            list_price=_money(inputs.list_price[row], home),
            map_price=_money(inputs.map_price[row], home),
            min_price=_money(inputs.min_price[row], home),
            max_price=_money(inputs.max_price[row], home),
            inventory=None if np.isnan(inventory) else int(inventory),
            category=None if category < 0 else CATEGORIES[category],
            brand=None if brand < 0 else BRANDS[brand],
            tags=frozenset(t for t, on in zip(TAGS, catalogue.tag_matrix[row], strict=True) if on),
            current_price=_money(current, home),
            last_changed_at=None if changed == int(MISSING) else _moment(changed),
            recent_changes=tuple(changes),
        )
        observations: list[CompetitorObservation] = []
        for slot in range(inputs.offer_competitor.shape[1]):
            code = int(inputs.offer_competitor[row, slot])
            if code < 0:
                continue
            foreign = bool(catalogue.offer_is_foreign[row, slot])
            currency = FOREIGN_CURRENCY if foreign else home
            price_column = catalogue.offer_foreign_price if foreign else inputs.offer_price
            observed = int(inputs.offer_observed[row, slot])
            offer = CompetitorObservation(
                competitor=names[code],
                price=from_minor(int(price_column[row, slot]), currency),
                currency=currency,
                observed_at=_moment(observed),
                shipping=_money(inputs.offer_shipping[row, slot], home),
                in_stock=bool(inputs.offer_in_stock[row, slot]),
            )
            observations.append(offer)
            if rng.random() < 0.2:  # an older observation the latest one supersedes
                observations.append(
                    offer.model_copy(
                        update={
                            "observed_at": _moment(observed - rng.randint(60, 86_400)),
                            "price": from_minor(rng.randint(100, 90_000), currency),
                        }
                    )
                )
        if rng.random() < 0.05:
            observations.append(
                CompetitorObservation(
                    competitor="unknown_store",
                    price=from_minor(rng.randint(100, 90_000), home),
                    currency=home,
                    observed_at=_moment(changed if changed != int(MISSING) else 1_780_000_000),
                )
            )
        rng.shuffle(observations)
        ratio = float(inputs.velocity_ratio[row])
        supply = float(inputs.days_of_supply[row])
        demand = None
        if not (np.isnan(ratio) and np.isnan(supply)):
            demand = DemandStats(
                velocity_7d=None if np.isnan(ratio) else ratio,
                velocity_28d=None if np.isnan(ratio) else 1.0,
                days_of_supply=None if np.isnan(supply) else supply,
            )
        elasticity = None
        if int(inputs.elasticity_bp[row]) != int(MISSING):
            elasticity = ElasticityEstimate(
                elasticity=int(inputs.elasticity_bp[row]) / 10_000,
                standard_error=float(inputs.elasticity_se[row]),
                observations=int(inputs.elasticity_n[row]),
            )
        result.append(
            PricingInputs(
                item=item, observations=tuple(observations), demand=demand, elasticity=elasticity
            )
        )
    return result


# -- checks -------------------------------------------------------------------------------

HISTORY_COLUMNS = frozenset({"last_direction", "run_length", "flips", "price_day_ago"})


def column_mismatches(direct: BatchInputs, encoded: BatchInputs) -> list[str]:
    """Columns where the generator and ``encode_batch`` disagree (history columns are
    derived from the generated price changes, so they are not compared)."""
    problems: list[str] = []
    for column in fields(BatchInputs):
        name = column.name
        if name in HISTORY_COLUMNS:
            continue
        mine, theirs = getattr(direct, name), getattr(encoded, name)
        if name == "currency" or name == "skus":
            if mine != theirs:
                problems.append(name)
            continue
        if mine.ndim == 2 and name.startswith("offer_"):
            width = min(mine.shape[1], theirs.shape[1])
            spare_mine = mine[:, width:]
            spare_theirs = theirs[:, width:]
            if not (
                np.array_equal(mine[:, :width], theirs[:, :width], equal_nan=False)
                and _all_empty(name, spare_mine)
                and _all_empty(name, spare_theirs)
            ):
                problems.append(name)
            continue
        equal_nan = mine.dtype.kind == "f"
        if mine.shape != theirs.shape or not np.array_equal(mine, theirs, equal_nan=equal_nan):
            problems.append(name)
    return problems


def _all_empty(name: str, block: npt.NDArray[Any]) -> bool:
    empty = {"offer_competitor": -1, "offer_price": MISSING, "offer_shipping": MISSING}
    return bool(np.all(block == empty.get(name, 0)))


def single_summary(decision: Decision) -> dict[str, object]:
    """The fields ``BatchDecisions.summary`` reports, from a single-path decision."""
    until = decision.valid_until
    return {
        "sku": decision.sku,
        "price": decision.price,
        "rule_id": decision.rule_id,
        "strategy": decision.strategy,
        "guardrails_fired": decision.guardrails_fired,
        "held_by": decision.held_by,
        "valid_until": None if until is None else int(until.timestamp()),
        "adjustments": tuple(s.name for s in decision.steps if s.stage == "adjustment"),
    }


@dataclass(slots=True)
class CheckResult:
    decisions: int = 0
    price_mismatches: int = 0
    summary_mismatches: int = 0
    examples: list[str] = field(default_factory=list)
    #: What the sample exercised, from the single path's decisions.
    coverage: Counter[str] = field(default_factory=Counter)

    def record_coverage(self, summary: dict[str, object]) -> None:
        self.coverage[f"rule:{summary['rule_id']}"] += 1
        self.coverage[f"strategy:{summary['strategy']}"] += 1
        for name in cast(tuple[str, ...], summary["guardrails_fired"]):
            self.coverage[f"guardrail:{name}"] += 1
        if summary["held_by"] is not None:
            self.coverage[f"held:{summary['held_by']}"] += 1
        for name in cast(tuple[str, ...], summary["adjustments"]):
            self.coverage[f"adjustment:{name}"] += 1
        if summary["price"] is None:
            self.coverage["unpriced"] += 1

    def describe_coverage(self) -> str:
        def count(prefix: str) -> int:
            return sum(1 for key in self.coverage if key.startswith(prefix))

        guardrails = ", ".join(
            f"{key.removeprefix('guardrail:')} {value}"
            for key, value in sorted(self.coverage.items())
            if key.startswith("guardrail:")
        )
        held = sum(value for key, value in self.coverage.items() if key.startswith("held:"))
        return (
            f"{count('rule:')} rules, {count('strategy:')} strategy kinds, "
            f"{count('adjustment:')} adjustments, {held} loop holds, "
            f"{self.coverage['unpriced']} unpriced; guardrails fired: {guardrails}"
        )


def check_equivalence(
    ruleset: CompiledRuleset, sample: Sequence[PricingInputs], result: CheckResult
) -> None:
    """Price ``sample`` by both paths at every check instant and segment."""
    for at in CHECK_INSTANTS:
        encoded = encode_batch(ruleset, sample, at)
        for segment in CHECK_SEGMENTS:
            batch = decide_batch(ruleset, encoded, at, segment=segment)
            for index, entry in enumerate(sample):
                single = decide(
                    ruleset,
                    entry.item,
                    at,
                    segment=segment,
                    observations=entry.observations,
                    demand=entry.demand,
                    elasticity=entry.elasticity,
                )
                result.decisions += 1
                expected = single_summary(single)
                result.record_coverage(expected)
                got = batch.summary(index, ruleset)
                if got["price"] != expected["price"]:
                    result.price_mismatches += 1
                if got != expected:
                    result.summary_mismatches += 1
                    if len(result.examples) < 5:
                        differing = {
                            key: (got[key], expected[key])
                            for key in expected
                            if got.get(key) != expected[key]
                        }
                        result.examples.append(
                            f"{ruleset.version} {entry.item.currency} at={at.isoformat()} "
                            f"segment='{segment}' sku={entry.item.sku}: "
                            f"(batch, single) {differing}"
                        )


# -- measurements ---------------------------------------------------------------------------


def best_time(repeats: int, run: Callable[[], object]) -> float:
    """The fastest of ``repeats`` runs, in seconds, with the garbage collector off."""
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        gc.disable()
        try:
            start = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - start)
        finally:
            gc.enable()
    return best


def arithmetic_floor(inputs: BatchInputs) -> Int64Array:
    """Store-free floor: cost x 1.35 rounded half up, MISSING where the cost is unknown."""
    cost = inputs.cost
    known = cost != MISSING
    doubled = 2 * RATIO_SCALE
    marked_up = (2 * np.where(known, cost, 0) * FLOOR_MARKUP_PPM + RATIO_SCALE) // doubled
    return np.where(known, marked_up, MISSING)


def peak_bytes(run: Callable[[], object]) -> int:
    """Peak bytes allocated (numpy buffers included) while ``run`` runs."""
    gc.collect()
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def inputs_bytes(inputs: BatchInputs) -> tuple[int, int]:
    """(bytes of the numpy columns, bytes of the SKU strings and their list)."""
    arrays = sum(
        getattr(inputs, f.name).nbytes
        for f in fields(BatchInputs)
        if isinstance(getattr(inputs, f.name), np.ndarray)
    )
    strings = sys.getsizeof(inputs.skus) + sum(sys.getsizeof(s) for s in inputs.skus)
    return arrays, strings


def decisions_bytes(decisions: BatchDecisions) -> int:
    return sum(
        getattr(decisions, f.name).nbytes
        for f in fields(BatchDecisions)
        if isinstance(getattr(decisions, f.name), np.ndarray)
    )


def competitor_share(ruleset: CompiledRuleset, decisions: BatchDecisions) -> float:
    """The share of items a competitor strategy priced (first choice or fallback)."""
    count = 0
    for rule in ruleset.rules:
        in_rule = decisions.rule_index == rule.index
        for position, strategy in enumerate(rule.chain):
            if strategy.kind == "competitor":
                count += int(np.count_nonzero(in_rule & (decisions.strategy_position == position)))
    return count / len(decisions.price)


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def profile_batch(ruleset: CompiledRuleset, inputs: BatchInputs, title: str, top: int) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    decide_batch(ruleset, inputs, BENCH_AT)
    profiler.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats("tottime").print_stats(top)
    print(f"\n== cProfile of decide_batch: {title} (sorted by own time) ==")
    lines = stream.getvalue().splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    for line in lines[start:]:
        if line.strip():
            print(line.replace(str(REPO_ROOT) + "/", ""))


# -- main -----------------------------------------------------------------------------------


def _rate(value: float) -> str:
    return f"{value / 1e6:.2f}e6/s"


@dataclass(frozen=True, slots=True)
class Settings:
    sizes: tuple[int, ...]
    repeats: int
    single_count: int
    check_count: int
    seed: int
    profile: bool


def build_rulesets(seed: int) -> dict[str, CompiledRuleset]:
    return {
        "cost_plus (bare)": CompiledRuleset(cost_plus_ruleset(guardrails=False)),
        "cost_plus": CompiledRuleset(cost_plus_ruleset(guardrails=True)),
        "competitor (bare)": CompiledRuleset(competitor_ruleset(guardrails=False)),
        "competitor": CompiledRuleset(competitor_ruleset(guardrails=True)),
        "mixed": CompiledRuleset(mixed_ruleset(seed)),
    }


def run_check(rulesets: dict[str, CompiledRuleset], settings: Settings) -> bool:
    """Batch and single must agree on a sample encoded from objects; True when they do."""
    mixed = rulesets["mixed"]
    check = CheckResult()
    bad_columns: list[str] = []
    sample_sizes = []
    for offset, currency in enumerate(CHECK_CURRENCIES):
        count = settings.check_count if currency == CURRENCY else settings.check_count // 4
        sample_sizes.append(f"{count} {currency}")
        seed = settings.seed + 10 * (offset + 1)
        catalogue = generate_catalogue(mixed, count, BENCH_AT, seed, currency)
        sample = build_objects(mixed, catalogue, range(count), seed + 1)
        encoded = encode_batch(mixed, sample, BENCH_AT)
        bad_columns += [
            f"{currency}:{name}" for name in column_mismatches(catalogue.inputs, encoded)
        ]
        for name in ("cost_plus", "competitor", "mixed"):
            check_equivalence(rulesets[name], sample, check)
    print(
        f"\ncheck: items built as objects ({', '.join(sample_sizes)}), encoded by encode_batch, "
        f"priced at {len(CHECK_INSTANTS)} instants x {len(CHECK_SEGMENTS)} segments x "
        f"3 rulesets = {check.decisions} decisions by both paths"
    )
    print(f"check: sample exercised {check.describe_coverage()}")
    print(f"check: generated columns vs encode_batch, mismatching columns: {len(bad_columns)}")
    for name in bad_columns:
        print(f"  {name}")
    print(f"check: batch vs single price mismatches: {check.price_mismatches}")
    print(
        "check: batch vs single summary mismatches (rule, strategy, guardrails, hold, "
        f"valid_until, adjustments): {check.summary_mismatches}"
    )
    for example in check.examples:
        print(f"  e.g. {example}")
    return check.price_mismatches == 0 and not bad_columns


@dataclass(slots=True)
class BatchRow:
    size: int
    name: str
    rules: int
    seconds: float
    floor_seconds: float
    peak_bytes: int | None
    priced: float
    by_competitor: float

    @property
    def per_second(self) -> float:
        return self.size / self.seconds


def run_batch(rulesets: dict[str, CompiledRuleset], settings: Settings) -> list[BatchRow]:
    mixed = rulesets["mixed"]
    table: list[BatchRow] = []
    memory: list[str] = []
    for size in settings.sizes:
        catalogue = generate_catalogue(mixed, size, BENCH_AT, settings.seed)

        def run_floor(catalogue: Catalogue = catalogue) -> None:
            arithmetic_floor(catalogue.inputs)

        floor = best_time(settings.repeats, run_floor)
        table.append(BatchRow(size, "floor: cost*1.35 numpy", 0, floor, floor, None, 1.0, 0.0))
        for name, ruleset in rulesets.items():
            inputs = catalogue.inputs if ruleset is mixed else in_vocabulary(catalogue, ruleset)
            decisions = decide_batch(ruleset, inputs, BENCH_AT)  # also warms the window cache

            def run(ruleset: CompiledRuleset = ruleset, inputs: BatchInputs = inputs) -> None:
                decide_batch(ruleset, inputs, BENCH_AT)

            seconds = best_time(settings.repeats, run)
            peak = peak_bytes(run)
            priced = float(np.mean(decisions.price != MISSING))
            by_competitor = competitor_share(ruleset, decisions)
            table.append(
                BatchRow(
                    size, name, len(ruleset.rules), seconds, floor, peak, priced, by_competitor
                )
            )
            if settings.profile and size == max(settings.sizes) and "bare" not in name:
                profile_batch(ruleset, inputs, f"{name}, {size:,} items", 25)
        arrays, strings = inputs_bytes(catalogue.inputs)
        output = decisions_bytes(decide_batch(mixed, catalogue.inputs, BENCH_AT))
        memory.append(
            f"{size:>9,} items: BatchInputs {arrays / size:.0f} B/item in numpy columns "
            f"(+{strings / size:.0f} B/item SKU strings), BatchDecisions {output / size:.0f} B/item"
        )
        del catalogue

    print(f"\nBatch path (decide_batch), one core, best of {settings.repeats}")
    header = (
        f"{'items':>9}  {'ruleset':<24} {'rules':>5} {'best s':>8} {'decisions/s':>12} "
        f"{'x floor':>8} {'peak B/item':>11} {'priced':>7} {'by comp.':>8}"
    )
    print(header)
    print("-" * len(header))
    for row in table:
        peak_text = "-" if row.peak_bytes is None else f"{row.peak_bytes / row.size:.0f}"
        print(
            f"{row.size:>9,}  {row.name:<24} {row.rules:>5} {row.seconds:>8.4f} "
            f"{_rate(row.per_second):>12} {row.seconds / row.floor_seconds:>8.1f} {peak_text:>11} "
            f"{row.priced:>7.1%} {row.by_competitor:>8.1%}"
        )
    print(
        "x floor: time over the store-free numpy floor on the same columns; "
        "peak: tracemalloc peak during decide_batch / items; "
        "rules include the default rule; bare: no guardrails, no loop protection; "
        "by comp.: share priced by a competitor strategy"
    )
    for line in memory:
        print("memory:", line)
    return table


SINGLE_ROUNDS = 5


def run_single(rulesets: dict[str, CompiledRuleset], settings: Settings) -> dict[str, float]:
    """Microseconds per decision of the single path, per ruleset. The rulesets take turns
    round after round, so a burst of load on the machine hits them alike."""
    mixed = rulesets["mixed"]
    count = settings.single_count
    catalogue = generate_catalogue(mixed, count, BENCH_AT, settings.seed + 3)
    items = build_objects(mixed, catalogue, range(count), settings.seed + 4)
    names = ("cost_plus", "competitor", "mixed")

    def run(ruleset: CompiledRuleset) -> None:
        for entry in items:
            decide(
                ruleset,
                entry.item,
                BENCH_AT,
                observations=entry.observations,
                demand=entry.demand,
                elasticity=entry.elasticity,
            )

    best = dict.fromkeys(names, float("inf"))
    for name in names:
        run(rulesets[name])  # warm up
    for _ in range(SINGLE_ROUNDS):
        for name in names:
            gc.collect()
            gc.disable()
            start = time.perf_counter()
            run(rulesets[name])
            best[name] = min(best[name], time.perf_counter() - start)
            gc.enable()
    print(
        f"\nSingle path (decide), {count:,} items as objects with observations, "
        f"best of {SINGLE_ROUNDS} interleaved rounds"
    )
    print(f"{'ruleset':<24} {'us/decision':>12} {'decisions/s':>12}")
    result: dict[str, float] = {}
    for name in names:
        result[name] = best[name] / count * 1e6
        print(f"{name:<24} {result[name]:>12.1f} {count / best[name]:>12,.0f}")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", help="batch sizes (100000 1000000)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller samples")
    parser.add_argument("--profile", action="store_true", help="cProfile the batch rulesets")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    quick: bool = args.quick
    settings = Settings(
        sizes=tuple(args.sizes or ([100_000] if quick else [100_000, 1_000_000])),
        repeats=2 if quick else 5,
        single_count=5_000 if quick else 20_000,
        check_count=500 if quick else 2_000,
        seed=args.seed,
        profile=args.profile,
    )
    started = time.perf_counter()
    print("Pricing engine benchmark (bench/engine.py)")
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, cpus {os.cpu_count()}, "
        f"BLAS/OpenMP threads 1, seed {settings.seed}, at {BENCH_AT.isoformat()}"
    )
    print(f"machine at start: {_load()}")
    rulesets = build_rulesets(settings.seed)
    print("rulesets: " + ", ".join(f"{name} {len(r.rules)} rules" for name, r in rulesets.items()))

    agree = run_check(rulesets, settings)
    table = run_batch(rulesets, settings)
    single = run_single(rulesets, settings)

    print(f"\ntotal run time {time.perf_counter() - started:.0f} s; at the end: {_load()}")
    scope = "worst of " + ", ".join(f"{size:,}" for size in settings.sizes) + " items"
    for name in ("cost_plus", "competitor", "mixed"):
        worst = min(row.per_second for row in table if row.name == name)
        if name == "mixed":
            print(f"INFO batch mixed: {_rate(worst)} ({scope})")
            continue
        verdict = "MET" if worst >= GOAL_BATCH_PER_SECOND else "MISSED"
        print(f"GOAL batch {name} >= 1e6/s: {verdict} ({_rate(worst)}, {scope})")
    verdict = "MET" if single["mixed"] <= GOAL_SINGLE_MICROSECONDS else "MISSED"
    print(f"GOAL single mixed <= 50 us/decision: {verdict} ({single['mixed']:.1f} us)")
    print(f"CHECK batch == single prices: {'OK' if agree else 'FAILED'}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
