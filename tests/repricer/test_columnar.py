"""The full reprice's fast lane publishes exactly what the single path would."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pricing_service.demand.buckets import day_bucket
from pricing_service.engine.compiled import CompiledRuleset
from pricing_service.engine.inputs import CompetitorObservation, ItemFacts, PricingInputs, Segment
from pricing_service.engine.schedule import schedule
from pricing_service.engine.segments import priced_segments
from pricing_service.repricer.columnar import ChunkPlan, _minor, _NotForThisLane, plan_chunk
from pricing_service.repricer.full import Share, price_chunk, reprice_all
from pricing_service.repricer.inputs import load_segments, read_chunk
from pricing_service.repricer.parallel import RulesChangedError, reprice_all_in_processes
from pricing_service.repricer.pricer import Pricer
from pricing_service.rules.model import Ruleset
from pricing_service.settings import Settings
from pricing_service.store import keys
from pricing_service.store.store import (
    OfferStatus,
    Override,
    PublishRequest,
    Sale,
    Store,
    StoredElasticity,
    fingerprint,
)
from tests.engine.strategies import CURRENCIES, instants, pricing_inputs, rulesets
from tests.repricer.helpers import compile_rules, write_rules

NOW = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)

#: Something of every shape the fast lane tells: competitor references (lowest, median,
#: one competitor) with fallbacks, a demand adjustment, rounding, every common guardrail,
#: two segments, schedules of several windows (a weekend adjustment, weekday evenings, a
#: cooldown), an elasticity strategy; and what it leaves to the single path (an override).
RULES = """
timezone: America/New_York
horizon: 2d
competitors:
  alpha: { name: Alpha }
  beta: { name: Beta }
  gamma: { name: Gamma }
  ours: { name: Our outlet, ours: true }
segments:
  channel: [web, app]
guardrails:
  min_margin: "8%"
  enforce_map: true
  max_change: "15%"
  rounding: { ending: ".99" }
default:
  description: Cost plus 35%.
  owner: test@example.com
  strategy: { cost_plus: "35%" }
  fallback:
    - list_price: true
rules:
  - id: beat-lowest
    description: Beat the lowest offer by 1%.
    owner: test@example.com
    priority: 40
    match: { categories: [electronics] }
    strategy:
      competitor: { reference: lowest, action: beat, by: "1%", max_age: 2d }
    fallback:
      - cost_plus: "25%"
    adjustments:
      - id: hot
        description: Selling fast, stock short.
        signals: { velocity_ratio: { above: 1.2 } }
        change: "+4%"
  - id: median
    description: Match the median offer with shipping.
    owner: test@example.com
    priority: 30
    match: { categories: [home] }
    strategy:
      competitor: { reference: median, include_shipping: true, max_age: 3d }
  - id: follow-beta
    description: Match Beta in the app.
    owner: test@example.com
    priority: 25
    match: { categories: [toys], segment: { channel: app } }
    strategy:
      competitor: { reference: competitor, competitor: beta, in_stock_only: true }
    fallback:
      - keep_current: true
  - id: elastic
    description: Profit-maximising price.
    owner: test@example.com
    priority: 20
    match: { categories: [garden] }
    strategy:
      elasticity: { max_standard_error: "0.5", min_observations: 5 }
    fallback:
      - list_price: true
  - id: books
    description: Ten percent off the list price.
    owner: test@example.com
    priority: 10
    match: { categories: [books] }
    strategy: { discount: "10%" }
    adjustments:
      - id: weekend-books
        description: Five percent more off at weekends.
        when: { days: [sat, sun] }
        change: "-5%"
  - id: toys-evening
    description: Toys at list price, higher on weekday evenings.
    owner: test@example.com
    priority: 5
    match: { categories: [toys] }
    strategy: { list_price: true }
    guardrails: { cooldown: 6h }
    adjustments:
      - id: evening
        description: Weekday evenings, +3%.
        when: { days: [mon, tue, wed, thu, fri], hours: "18:00-21:00" }
        change: "+3%"
"""


def _offer(competitor: str, price: str, hours: float, **extra: object) -> OfferStatus:
    observation = CompetitorObservation(
        competitor=competitor,
        price=Decimal(price),
        currency=str(extra.pop("currency", "USD")),
        observed_at=NOW - timedelta(hours=hours),
        **extra,  # type: ignore[arg-type]
    )
    return OfferStatus(observation=observation, received_at=NOW)


async def _catalogue(store: Store) -> list[str]:
    items = [
        ItemFacts(
            sku="E-1",
            currency="USD",
            cost=Decimal("10.00"),
            list_price=Decimal("19.00"),
            category="electronics",
            inventory=4,
            current_price=Decimal("17.00"),
        ),
        ItemFacts(
            sku="E-2",
            currency="USD",
            cost=Decimal("10.5"),
            list_price=Decimal("19.9"),
            category="electronics",
            map_price=Decimal("16.00"),
        ),
        ItemFacts(
            sku="E-3",
            currency="USD",
            cost=Decimal("100.00"),
            category="electronics",
            tags=frozenset({"new", "clearance"}),
        ),
        ItemFacts(
            sku="H-1",
            currency="USD",
            cost=Decimal("20.00"),
            list_price=Decimal("40.00"),
            category="home",
            current_price=Decimal("35.00"),
            last_changed_at=NOW - timedelta(days=3),
        ),
        ItemFacts(
            sku="T-1",
            currency="USD",
            list_price=Decimal("30.00"),
            category="toys",
            current_price=Decimal("29.00"),
        ),
        ItemFacts(sku="T-2", currency="USD", list_price=Decimal("30.00"), category="toys"),
        ItemFacts(
            sku="B-1",
            currency="USD",
            cost=Decimal("5.00"),
            list_price=Decimal("12.00"),
            category="books",
        ),
        ItemFacts(
            sku="G-1",
            currency="USD",
            cost=Decimal("8.00"),
            list_price=Decimal("20.00"),
            category="garden",
        ),
        ItemFacts(
            sku="G-2",
            currency="USD",
            cost=Decimal("8.00"),
            list_price=Decimal("20.00"),
            category="garden",
        ),
        ItemFacts(sku="N-1", currency="USD"),  # nothing to price by
        ItemFacts(
            sku="Y-1",
            currency="JPY",
            cost=Decimal(900),
            list_price=Decimal(1500),
            category="electronics",
        ),
        ItemFacts(sku="O-1", currency="USD", cost=Decimal("30.00"), list_price=Decimal("50.00")),
    ]
    await store.put_items(items)
    await store.put_offers("E-1", [_offer("alpha", "15.00", 3), _offer("beta", "14.50", 60)])
    held = _offer("alpha", "1.00", 1)
    await store.put_offers(
        "E-2",
        [
            held.model_copy(
                update={
                    "status": "quarantined",
                    "reason": "outlier",
                    "last_accepted": _offer("alpha", "18.00", 5).observation,
                }
            ),
            _offer("ours", "12.00", 1),
        ],
    )
    await store.put_offers(
        "H-1",
        [
            _offer("alpha", "30.00", 2, shipping=Decimal("4.99")),
            _offer("beta", "33.00", 2, shipping=Decimal("0.00")),
            _offer("gamma", "31.00", 2),  # no shipping given: left out
        ],
    )
    await store.put_offers("T-1", [_offer("beta", "27.00", 1, in_stock=False)])
    await store.put_offers("T-2", [_offer("beta", "26.00", 1)])
    await store.put_offers("Y-1", [_offer("alpha", "1400", 1, currency="JPY")])
    await store.add_sales(
        "E-1",
        "USD",
        [
            Sale(NOW - timedelta(days=d, hours=1), 3 if d < 7 else 1, Decimal("17.00"))
            for d in range(20)
        ],
    )
    await store.put_elasticities(
        {
            "G-1": StoredElasticity(
                elasticity=-2.5,
                standard_error=0.1,
                observations=40,
                fitted_at=NOW - timedelta(hours=5),
            )
        },
        changed=[],
    )
    await store.put_elasticities(  # too uncertain: the rule falls back to the list price
        {
            "G-2": StoredElasticity(
                elasticity=-1.8, standard_error=0.9, observations=12, fitted_at=NOW
            )
        },
        changed=[],
    )
    await store.set_override(
        "O-1", Override(price=Decimal("45.00"), until=NOW + timedelta(hours=3), reason="launch")
    )
    return sorted(item.sku for item in items)


async def _plan_agrees_with_the_single_path(
    store: Store, tmp_path: Path, skus: list[str], now: datetime
) -> ChunkPlan:
    compiled = compile_rules(write_rules(tmp_path / "rules", RULES))
    return await _lanes_agree(store, compiled, skus, now)


async def _lanes_agree(
    store: Store, compiled: CompiledRuleset, skus: list[str], now: datetime
) -> ChunkPlan:
    """Plan the chunk with the fast lane and check each schedule it would publish against
    the single path's for the same stored inputs: same bytes, same fingerprint."""
    segments = priced_segments(compiled)
    names = [str(segment) for segment in segments]
    raw = await read_chunk(store, skus, names, now)
    plan = plan_chunk(compiled, skus, raw, segments, now, read_at=7, boundary_lead_seconds=60)
    loaded = await load_segments(store, compiled, skus, now, names)
    for prepared in plan.prepared:
        entry = loaded[prepared.segment][prepared.sku]
        decisions = schedule(compiled, entry.inputs, now, segment=Segment.parse(prepared.segment))
        mark = fingerprint(compiled.version, prepared.segment, entry.digest, decisions)
        request = PublishRequest(prepared.sku, prepared.segment, decisions, mark, read_at=7)
        expected = Store.prepare_publish(request)
        if prepared != expected:
            from pricing_service.store.store import audit_json

            print("FAST", audit_json(prepared.audit))
            print("SINGLE", audit_json(expected.audit))
        assert prepared == expected, prepared.sku
    return plan


@pytest.mark.anyio
async def test_the_fast_lane_publishes_what_the_single_path_would(
    store: Store, tmp_path: Path
) -> None:
    skus = await _catalogue(store)
    plan = await _plan_agrees_with_the_single_path(store, tmp_path, skus, NOW)
    # Left to the single path: the override.
    assert plan.single == ["O-1"]
    windows = {p.sku: json.loads(p.schedule_json)["w"] for p in plan.prepared if not p.segment}
    assert len(windows["B-1"]) > 1  # Saturday's window...
    assert len(windows["T-2"]) > 1  # ...and the toys' evening
    assert {p.sku for p in plan.prepared} == set(skus) - {"O-1"}
    assert len(plan.prepared) == 2 * 11  # the default and app segments (web is the default)
    compiled = compile_rules(write_rules(tmp_path / "rules", RULES))
    pricer = Pricer(store, boundary_lead_seconds=60)
    counts = await reprice_all(pricer, compiled, NOW)
    assert (counts.priced + counts.unpriced, counts.errors) == (len(skus) * 2, 0)
    assert counts.published == len(skus) * 2

    # On top of what was published: prices in force and moves come from our schedules.
    later = NOW + timedelta(hours=1)
    plan = await _plan_agrees_with_the_single_path(store, tmp_path, skus, later)
    again = await reprice_all(pricer, compiled, later)
    assert again.errors == 0
    # The same inputs again: both lanes find every schedule already published.
    assert (await reprice_all(pricer, compiled, later)).published == 0
    assert (await pricer.price(compiled, skus, later)).published == 0


@pytest.mark.anyio
async def test_processes_share_the_catalogue_and_agree_with_one_process(
    store: Store, clean_redis: str, tmp_path: Path
) -> None:
    skus = await _catalogue(store)
    rules_dir = write_rules(tmp_path / "rules", RULES)
    compiled = compile_rules(rules_dir)
    settings = Settings(retention_days=35, boundary_lead_seconds=60)
    counts = await reprice_all_in_processes(clean_redis, settings, rules_dir, compiled, NOW, 2)
    assert (counts.priced + counts.unpriced, counts.errors) == (len(skus) * 2, 0)
    assert counts.published == len(skus) * 2
    for sku in skus:
        for segment in ("", "channel:app"):
            assert await store.get_schedule(sku, segment) is not None, (sku, segment)
    # One process finds every schedule the two published: same instant, same fingerprints.
    again = await reprice_all(Pricer(store, boundary_lead_seconds=60), compiled, NOW)
    assert (again.published, again.priced + again.unpriced) == (0, len(skus) * 2)


def test_a_share_must_exist() -> None:
    with pytest.raises(ValueError, match="does not exist"):
        Share(2, 2)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=st.data(), ruleset=rulesets(), at=instants, currency=st.sampled_from(CURRENCIES))
def test_the_lanes_agree_on_random_rules_and_catalogues(
    clean_redis: str, data: st.DataObject, ruleset: Ruleset, at: datetime, currency: str
) -> None:
    items = data.draw(
        st.lists(
            pricing_inputs(currency, at), min_size=1, max_size=5, unique_by=lambda i: i.item.sku
        )
    )
    sold = data.draw(st.lists(st.integers(0, 27), max_size=12))
    asyncio.run(_random_catalogue(clean_redis, CompiledRuleset(ruleset), items, sold, at))


async def _random_catalogue(
    url: str, compiled: CompiledRuleset, items: list[PricingInputs], sold: list[int], at: datetime
) -> None:
    store = Store.from_url(url, retention=timedelta(days=35))
    try:
        await store.redis.flushdb()
        await store.put_items([entry.item for entry in items])
        for entry in items:
            sku, currency = entry.item.sku, entry.item.currency
            offers = [OfferStatus(observation=o, received_at=at) for o in entry.observations]
            if offers:
                await store.put_offers(sku, offers)
            estimate = entry.elasticity
            if estimate is not None:
                stored = StoredElasticity(
                    elasticity=estimate.elasticity,
                    standard_error=estimate.standard_error,
                    observations=estimate.observations,
                    fitted_at=at - timedelta(hours=3),
                )
                await store.put_elasticities({sku: stored}, changed=[])
            if sold and entry.demand is not None:
                price = entry.item.list_price or Decimal(1)
                sales = [(at - timedelta(days=day), 1 + day % 3, price) for day in sold]
                await store.add_sales(sku, currency, sales)
        skus = sorted(entry.item.sku for entry in items)
        await _lanes_agree(store, compiled, skus, at)
        # On top of what the fast lane published: prices in force and moves from it.
        await price_chunk(Pricer(store, boundary_lead_seconds=60), compiled, skus, at)
        await _lanes_agree(store, compiled, skus, at + timedelta(hours=5))
    finally:
        await store.close()


@pytest.mark.anyio
async def test_processes_refuse_rules_edited_since_the_caller_read_them(
    store: Store, clean_redis: str, tmp_path: Path
) -> None:
    await _catalogue(store)
    rules_dir = write_rules(tmp_path / "rules", RULES)
    compiled = compile_rules(rules_dir)
    (rules_dir / "rules.yaml").write_text(RULES.replace("Cost plus 35%.", "Cost plus 35 %."))
    settings = Settings(retention_days=35, boundary_lead_seconds=60)
    with pytest.raises(RulesChangedError, match="now version"):
        await reprice_all_in_processes(clean_redis, settings, rules_dir, compiled, NOW, 2)
    (rules_dir / "rules.yaml").write_text("rules: [")
    with pytest.raises(RulesChangedError, match="no longer load"):
        await reprice_all_in_processes(clean_redis, settings, rules_dir, compiled, NOW, 2)


@pytest.mark.anyio
async def test_values_written_around_the_service_are_left_to_the_single_path(
    store: Store, tmp_path: Path
) -> None:
    """Stored values the service never writes (an unknown field, a value of another type)
    are not priced on the fast lane's lenient reading: the single path's models judge them,
    and what they reject costs that SKU only."""
    skus = await _catalogue(store)
    good = ItemFacts(sku="W-1", currency="USD", cost=Decimal("10.00"), list_price=Decimal("20.00"))
    written = [f"W-{number}" for number in range(1, 7)]
    await store.put_items([good.model_copy(update={"sku": sku}) for sku in written])
    odd: dict[str, dict[str, object]] = {
        "W-2": {"colour": "red"},  # a field ItemFacts does not have: rejected
        "W-3": {"tags": "a,b"},  # a string where a list belongs: rejected
        "W-4": {"inventory": "12"},  # a numeric string: pydantic reads it as 12
    }
    for sku, extra in odd.items():
        body = json.loads(good.model_copy(update={"sku": sku}).model_dump_json()) | extra
        await store.redis.set(keys.item(sku), json.dumps(body))
    offer = json.loads(_offer("alpha", "18.00", 1).model_dump_json())
    offer["observation"]["in_stock"] = "no"  # pydantic reads it as False
    await store.redis.hset(keys.offers("W-5"), "alpha", json.dumps(offer))
    unknown = json.loads(_offer("delta", "18.00", 1).model_dump_json())
    unknown["observation"]["price"] = "cheap"  # a competitor the rules ignore: still rejected
    await store.redis.hset(keys.offers("W-6"), "delta", json.dumps(unknown))
    every = sorted([*skus, *written])

    compiled = compile_rules(write_rules(tmp_path / "rules", RULES))
    segments = priced_segments(compiled)
    raw = await read_chunk(store, every, [str(segment) for segment in segments], NOW)
    plan = plan_chunk(compiled, every, raw, segments, NOW, read_at=7, boundary_lead_seconds=60)
    assert plan.single == ["O-1", "W-2", "W-3", "W-4", "W-5", "W-6"]
    await _lanes_agree(store, compiled, sorted({*skus, "W-1"}), NOW)

    counts = await reprice_all(Pricer(store, boundary_lead_seconds=60), compiled, NOW)
    assert counts.errors == 3 * len(segments)
    assert counts.published == (len(every) - 3) * len(segments)
    for sku in written:
        published = await store.redis.get(keys.schedule(sku, ""))
        assert (published is None) == (sku in {"W-2", "W-3", "W-6"}), sku


#: What the fast lane accepts as a stored amount: ``str(Decimal)`` of a non-negative
#: amount, no exponent, no leading zero.
_PLAIN_AMOUNT = re.compile(r"(0|[1-9][0-9]*)(\.[0-9]+)?")


@given(
    text=st.one_of(
        st.text(alphabet="0123456789.-+e _\u0662\u00b2", max_size=8),
        st.decimals(min_value=0, max_value=10**9, allow_nan=False, places=4).map(str),
    ),
    digits=st.sampled_from([0, 2, 3]),
)
def test_the_fast_lane_reads_plain_amounts_only_and_exactly(text: str, digits: int) -> None:
    match = _PLAIN_AMOUNT.fullmatch(text)
    fraction = "" if match is None or match[2] is None else match[2][1:]
    if match is None or len(fraction) > digits:
        with pytest.raises(_NotForThisLane):
            _minor(text, digits)
    else:
        assert _minor(text, digits) == Decimal(text).scaleb(digits)


@pytest.mark.anyio
async def test_sales_change_a_fingerprint_only_through_the_demand_signals(
    store: Store, tmp_path: Path
) -> None:
    compiled = compile_rules(write_rules(tmp_path / "rules", RULES))
    await store.put_items([ItemFacts(sku="S-1", currency="USD", list_price=Decimal("20.00"))])
    sold = [Sale(NOW - timedelta(days=day, hours=1), 2, Decimal("19.00")) for day in range(10)]
    await store.add_sales("S-1", "USD", sold)

    async def digests() -> tuple[str, str]:
        """The SKU's digest by the single path, and the fast lane's fingerprint."""
        entry = (await load_segments(store, compiled, ["S-1"], NOW, [""]))[""]["S-1"]
        plan = await _lanes_agree(store, compiled, ["S-1"], NOW)  # and the lanes agree
        return entry.digest, next(p.fingerprint for p in plan.prepared if not p.segment)

    before = await digests()
    # Revenue and an inventory report in a bucket move no signal the engine reads.
    day = day_bucket(NOW - timedelta(days=3))
    await store.redis.hincrby(keys.sales("S-1"), f"r:{day}", 500)
    await store.redis.hset(keys.sales("S-1"), f"i:{day}", 7)
    assert await digests() == before
    # One more unit sold moves the velocities.
    await store.redis.hincrby(keys.sales("S-1"), f"u:{day}", 1)
    after = await digests()
    assert after[0] != before[0]
    assert after[1] != before[1]
