"""The full reprice's fast lane: a chunk of SKUs read, priced, explained and published
without one Python object per input.

:func:`load_segments` builds pydantic models for every input of every SKU and the single
path explains as it prices: together about 250 µs a SKU. Here one Lua call reads a whole
chunk's raw values, ``orjson`` turns them into the columns of
:class:`~pricing_service.engine.batch.BatchInputs` (minor units parsed from the stored
decimal text), :func:`~pricing_service.engine.batch.decide_batch` prices them window by
window up to the horizon (as :func:`~pricing_service.engine.schedule.schedule` does, each
window from the previous one's price), :mod:`~pricing_service.engine.batch_explanation`
tells each decision's story word for word as the single path would, and the store
publishes the chunk in one script call per 1,000 schedules.

A SKU this lane cannot take (an override in force, an explanation shape it does not
tell, a stored value it does not parse) comes back in :attr:`ChunkPlan.single` for the
single path, which prices and publishes it as before. Both lanes fingerprint a schedule
from the same raw inputs (:func:`inputs_digest`), so they agree on what is already
published.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np
import orjson

from pricing_service.engine.batch import (
    HELD_NAMES,
    MISSING,
    BatchDecisions,
    BatchInputs,
    Vocabulary,
    decide_batch,
    strategy_name,
    take_rows,
    unfilled_columns,
)
from pricing_service.engine.batch_explanation import (
    OfferFacts,
    RowFacts,
    estimate_facts,
    explain_row,
    money_text,
)
from pricing_service.engine.compiled import CompiledRuleset, fired_names
from pricing_service.engine.decision import demand_value, offer_value
from pricing_service.engine.history import (
    MoveHistory,
    elasticity_basis_points,
    move_history_of,
)
from pricing_service.engine.inputs import CompetitorObservation, ItemFacts, PriceChange, Segment
from pricing_service.engine.schedule import MAX_WINDOWS
from pricing_service.money import minor_unit_digits
from pricing_service.repricer.inputs import (
    DigestParts,
    active_override,
    elasticity_estimate,
    field_map,
    inputs_digest,
)
from pricing_service.repricer.pricer import Outcome, next_boundary
from pricing_service.store.store import (
    OfferStatus,
    PreparedPublish,
    StoredSchedule,
    demand_from_sales,
    encode_audit_entries,
    fingerprint_windows,
    schedule_json,
)

logger = logging.getLogger(__name__)


class _NotForThisLane(Exception):
    """A SKU this lane leaves to the single path."""


@dataclass(slots=True)
class _Row:
    """One SKU's inputs as parsed for one segment's columns."""

    sku: str
    currency: str
    numbers: list[int]  # cost, list, map, min, max, current, last_changed (MISSING if none)
    inventory: float
    category: str | None
    brand: str | None
    tags: Sequence[str]
    points: list[tuple[int, int]]  # recent changes (epoch, minor), oldest first
    offers: list[tuple[str, int, int, bool, int]]  # competitor, price, shipping, stock, seen
    velocity_ratio: float
    days_of_supply: float
    elasticity: tuple[int, float, int] | None
    facts: RowFacts
    digest: str
    published_fingerprint: str | None


@dataclass(slots=True)
class ChunkPlan:
    """What the fast lane made of a chunk: schedules to publish with the outcome of
    each (same order), outcomes of decisions already published (same fingerprint), and
    the SKUs left to the single path."""

    prepared: list[PreparedPublish] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    unchanged: list[Outcome] = field(default_factory=list)
    single: list[str] = field(default_factory=list)
    #: SKUs listed but no longer in the catalogue: nothing to come back for.
    deleted: list[str] = field(default_factory=list)


def _minor(text: Any, digits: int) -> int:
    """Minor units from a stored decimal string, or :class:`_NotForThisLane`.

    Only a decimal as ``str(Decimal)`` writes a stored amount: ASCII digits with no sign,
    exponent or leading zero, and an optional fraction of at most ``digits`` (the
    explanation quotes the text, so anything else goes to the single path). Parsed
    without a regular expression: a full reprice parses millions of amounts.
    """
    if text.__class__ is not str:
        raise _NotForThisLane
    whole, dot, fraction = text.partition(".")
    if not (whole.isascii() and whole.isdigit()) or (whole[0] == "0" and len(whole) > 1):
        raise _NotForThisLane
    if not dot:
        scale: int = 10**digits
        return int(whole) * scale
    if not (fraction.isascii() and fraction.isdigit()) or len(fraction) > digits:
        raise _NotForThisLane
    return int(whole + fraction.ljust(digits, "0"))


#: The fields the single path's models accept; a stored value with any other field (written
#: around the service) goes to the single path, whose models reject it and say why.
_ITEM_FIELDS = frozenset(ItemFacts.model_fields)
_OBSERVATION_FIELDS = frozenset(CompetitorObservation.model_fields)
_CHANGE_FIELDS = frozenset(PriceChange.model_fields)
_CURRENCY = re.compile(r"[A-Z]{3}")
#: An item's amounts, in the order of :attr:`_Row.numbers`.
_AMOUNT_FIELDS = ("cost", "list_price", "map_price", "min_price", "max_price", "current_price")


def _check_item(item: dict[str, Any]) -> None:
    """:class:`_NotForThisLane` unless the item has only the fields, and the types, that
    :class:`ItemFacts` accepts for what this lane reads without a model (the amounts and
    instants are checked as they are parsed). The service writes nothing else; anything
    else is for the single path's model to judge (it reads a numeric string as a
    number, say, and rejects an unknown field)."""
    if not item.keys() <= _ITEM_FIELDS:
        raise _NotForThisLane
    currency: Any = item.get("currency")
    inventory = item.get("inventory")
    if currency.__class__ is not str or not _CURRENCY.fullmatch(currency):
        raise _NotForThisLane
    if inventory is not None and inventory.__class__ is not int:
        raise _NotForThisLane
    for name in ("category", "brand"):
        value = item.get(name)
        if value is not None and value.__class__ is not str:
            raise _NotForThisLane
    tags = item.get("tags")
    if tags is not None and (
        tags.__class__ is not list or any(tag.__class__ is not str for tag in tags)
    ):
        raise _NotForThisLane
    for change in item.get("recent_changes") or ():
        if change.__class__ is not dict or not change.keys() <= _CHANGE_FIELDS:
            raise _NotForThisLane


def _check_observation(observation: dict[str, Any]) -> None:
    """As :func:`_check_item`, for a competitor observation."""
    if not observation.keys() <= _OBSERVATION_FIELDS:
        raise _NotForThisLane
    currency: Any = observation.get("currency")
    if currency.__class__ is not str or not _CURRENCY.fullmatch(currency):
        raise _NotForThisLane
    if observation.get("in_stock", True).__class__ is not bool:
        raise _NotForThisLane
    if observation.get("source", "").__class__ is not str:
        raise _NotForThisLane


def _epoch(text: str) -> int:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise _NotForThisLane  # never stored by the service; the single path says why
    return int(moment.timestamp())


def parse_row(compiled: CompiledRuleset, sku: str, raw: Sequence[Any], now: datetime) -> _Row:
    """One SKU's raw inputs (a row of :func:`~pricing_service.repricer.inputs.read_chunk`),
    before any published schedule (see :func:`_in_segment`)."""
    raw_item, raw_offers, raw_override, raw_sales, raw_elasticity = raw[:5]
    if raw_item is None:
        raise LookupError(sku)
    if raw_override is not None and active_override(raw_override, now) is not None:
        raise _NotForThisLane
    item = orjson.loads(raw_item)
    _check_item(item)
    currency = item["currency"]
    digits = minor_unit_digits(currency)
    get = item.get
    numbers = [
        int(MISSING) if (text := get(name)) is None else _minor(text, digits)
        for name in _AMOUNT_FIELDS
    ]
    current_text = item.get("current_price")
    changed_text = item.get("last_changed_at")
    changed_at = None if changed_text is None else _epoch(changed_text)
    points = [
        (_epoch(change["at"]), _minor(change["price"], digits))
        for change in item.get("recent_changes") or ()
    ]
    numbers.append(int(MISSING) if changed_at is None else changed_at)

    known = compiled.known_competitors
    offers: list[tuple[str, int, int, bool, int]] = []
    offer_facts: list[OfferFacts] = []
    offer_values: list[tuple[str, bytes]] = []
    latest: dict[str, tuple[int, dict[str, Any]]] = {}
    for position in range(1, len(raw_offers), 2):
        status = orjson.loads(raw_offers[position])
        accepted = status.get("status", "accepted") == "accepted"
        observation = status["observation"] if accepted else status.get("last_accepted")
        if accepted and status.get("last_accepted") is None and observation["competitor"] in known:
            _check_observation(observation)
            if status.get("received_at").__class__ is not str:
                raise _NotForThisLane
        else:
            # The single path validates every stored offer, the engine's or not; these
            # rarer shapes are checked as it checks them, by its model.
            in_force = OfferStatus.model_validate_json(raw_offers[position]).in_force
            if in_force is None or in_force.competitor not in known:
                continue
        offer_values.append((observation["competitor"], raw_offers[position]))
        seen = _epoch(observation["observed_at"])
        name = observation["competitor"]
        if name not in latest or seen > latest[name][0]:
            latest[name] = (seen, observation)
    for name in sorted(latest):
        seen, observation = latest[name]
        price_text, shipping_text = observation["price"], observation.get("shipping")
        same = observation["currency"] == currency
        offer_digits = minor_unit_digits(observation["currency"])
        price = _minor(price_text, offer_digits)
        shipping = int(MISSING) if shipping_text is None else _minor(shipping_text, offer_digits)
        in_stock = observation.get("in_stock", True)
        offers.append(
            (
                name,
                price if same else int(MISSING),
                shipping if same else int(MISSING),
                in_stock,
                seen,
            )
        )
        value = offer_value(price_text, observation["currency"], shipping_text, in_stock)
        offer_facts.append(OfferFacts(name, value, observation.get("source", "crawler")))

    inventory = item.get("inventory")
    velocity_ratio = days_of_supply = float("nan")
    demand = stats = None
    sales = field_map(raw_sales)
    if sales:
        stats = demand_from_sales(sales, now, inventory)
        if stats is not None:
            ratio, supply = stats.velocity_ratio, stats.days_of_supply
            velocity_ratio = float("nan") if ratio is None else ratio
            days_of_supply = float("nan") if supply is None else supply
            demand = demand_value(ratio, supply)
    elasticity = None
    estimate = elasticity_estimate(raw_elasticity)
    if estimate is not None:
        elasticity = (
            elasticity_basis_points(estimate.elasticity),
            estimate.standard_error,
            estimate.observations,
        )
    facts = RowFacts(
        current_price=current_text,
        current_since=changed_at,
        cost=item.get("cost"),
        list_price=item.get("list_price"),
        offers=offer_facts,
        demand=demand,
        demand_as_of=None if demand is None else int(now.timestamp()),
        **estimate_facts(estimate),
    )
    digest = inputs_digest(
        DigestParts(
            item=raw_item,
            offers=[value for _, value in sorted(offer_values)],
            override=None,
            demand=stats,
            elasticity=raw_elasticity,
        )
    )
    return _Row(
        sku=sku,
        currency=currency,
        numbers=numbers,
        inventory=float("nan") if inventory is None else float(inventory),
        category=item.get("category"),
        brand=item.get("brand"),
        tags=item.get("tags") or (),
        points=points,
        offers=offers,
        velocity_ratio=velocity_ratio,
        days_of_supply=days_of_supply,
        elasticity=elasticity,
        facts=facts,
        digest=digest,
        published_fingerprint=None,
    )


def _in_segment(row: _Row, raw_schedule: bytes | None, epoch: int) -> _Row:
    """``row`` in a segment whose published schedule is ``raw_schedule``: its price in
    force and recent moves are our own (what ``_with_published_price`` in
    :mod:`~pricing_service.repricer.inputs` does)."""
    if raw_schedule is None:
        return row
    stored = StoredSchedule.parse(raw_schedule)
    numbers, points, facts = row.numbers, row.points, row.facts
    schedule = orjson.loads(stored.schedule_json)
    # A schedule in another currency predates a currency change: it says nothing.
    if schedule["c"] == row.currency:
        digits = minor_unit_digits(row.currency)
        moves, in_force = _published_moves(stored.moves, schedule["w"], epoch, digits)
        if in_force is not None:
            changed_at = moves[-1][0]
            numbers = [*numbers[:5], _minor(in_force, digits), changed_at]
            points = moves
            facts = facts.at_price(in_force, changed_at)
    # Built whole rather than by dataclasses.replace, which costs several times as much.
    return _Row(
        sku=row.sku,
        currency=row.currency,
        numbers=numbers,
        inventory=row.inventory,
        category=row.category,
        brand=row.brand,
        tags=row.tags,
        points=points,
        offers=row.offers,
        velocity_ratio=row.velocity_ratio,
        days_of_supply=row.days_of_supply,
        elasticity=row.elasticity,
        facts=facts,
        digest=row.digest,
        published_fingerprint=stored.fingerprint,
    )


def _published_moves(
    moves: bytes, windows: list[list[Any]], epoch: int, digits: int
) -> tuple[list[tuple[int, int]], str | None]:
    """The price changes our own schedule made, oldest first, and the price in force
    (what ``_with_published_price`` in :mod:`~pricing_service.repricer.inputs` does)."""
    points: list[tuple[int, int]] = []
    if moves != b"-":
        for entry in reversed(moves.split(b",")):
            at, price = entry.decode().split(":", 1)
            points.append((int(at), _minor(price, digits)))
    in_force = None
    for valid_from, _, price_text in windows:
        if valid_from > epoch:
            break
        if price_text is None:
            continue
        in_force = price_text
        minor = _minor(price_text, digits)
        if not points or points[-1][1] != minor:
            points.append((int(valid_from), minor))
    return points, in_force


def encode_rows(compiled: CompiledRuleset, rows: Sequence[_Row], now: datetime) -> BatchInputs:
    """The columns of ``rows`` (one currency)."""
    vocabulary = Vocabulary(compiled)
    epoch = int(now.timestamp())
    window = compiled.loop_window_seconds
    n = len(rows)
    k = max(1, max(len(row.offers) for row in rows))
    numbers = np.array([row.numbers for row in rows], np.int64).reshape(n, 7)
    sku_rules = [compiled.rules[r].skus or frozenset() for r in vocabulary.sku_rules]
    columns = BatchInputs(
        currency=rows[0].currency,
        skus=[row.sku for row in rows],
        cost=numbers[:, 0].copy(),
        list_price=numbers[:, 1].copy(),
        map_price=numbers[:, 2].copy(),
        min_price=numbers[:, 3].copy(),
        max_price=numbers[:, 4].copy(),
        current=numbers[:, 5].copy(),
        last_changed=numbers[:, 6].copy(),
        inventory=np.array([row.inventory for row in rows], np.float64),
        category=np.array(
            [vocabulary.categories.get(row.category or "", -1) for row in rows], np.int32
        ),
        brand=np.array([vocabulary.brands.get(row.brand or "", -1) for row in rows], np.int32),
        tags=np.array(
            [
                sum(1 << vocabulary.tags[t] for t in set(row.tags) if t in vocabulary.tags)
                for row in rows
            ],
            np.uint64,
        ),
        sku_in_rule=np.array(
            [[row.sku in skus for skus in sku_rules] for row in rows], dtype=bool
        ).reshape(n, len(sku_rules)),
        velocity_ratio=np.array([row.velocity_ratio for row in rows], np.float64),
        days_of_supply=np.array([row.days_of_supply for row in rows], np.float64),
        **unfilled_columns(n, k),
    )
    codes = vocabulary.competitors
    for index, row in enumerate(rows):
        current = row.numbers[5]
        changed = row.numbers[6]
        if row.points or current != MISSING:
            columns.set_moves(index, _moves(row.points, current, changed, epoch, window))
        for slot, (name, price, shipping, in_stock, seen) in enumerate(row.offers):
            columns.offer_competitor[index, slot] = codes[name]
            columns.offer_price[index, slot] = price
            columns.offer_shipping[index, slot] = shipping
            columns.offer_in_stock[index, slot] = in_stock
            columns.offer_observed[index, slot] = seen
        if row.elasticity is not None:
            (
                columns.elasticity_bp[index],
                columns.elasticity_se[index],
                columns.elasticity_n[index],
            ) = row.elasticity
    return columns


def _moves(
    points: list[tuple[int, int]], current: int, changed_at: int, epoch: int, window: int
) -> MoveHistory:
    """:func:`move_history_of` with the columns' MISSING for an unknown price or time."""
    return move_history_of(
        points,
        None if current == MISSING else current,
        None if changed_at == MISSING else changed_at,
        epoch,
        window,
    )


def plan_chunk(
    compiled: CompiledRuleset,
    skus: Sequence[str],
    raw_rows: Sequence[Sequence[Any]],
    segments: Sequence[Segment],
    now: datetime,
    *,
    read_at: int,
    boundary_lead_seconds: int,
) -> ChunkPlan:
    """Price, explain and encode a chunk read by
    :func:`~pricing_service.repricer.inputs.read_chunk` (pure: no I/O)."""
    plan = ChunkPlan()
    epoch = int(now.timestamp())
    horizon_end = epoch + int(compiled.horizon.total_seconds())
    single: set[str] = set()
    deleted: set[str] = set()
    parsed: list[tuple[_Row, Sequence[Any]]] = []
    for sku, raw in zip(skus, raw_rows, strict=True):
        try:
            parsed.append((parse_row(compiled, sku, raw, now), raw))
        except LookupError:
            deleted.add(sku)
        except Exception:  # the single path prices it, or logs why it cannot
            logger.debug("%s: left to the single path", sku, exc_info=True)
            single.add(sku)
    for segment_index, segment in enumerate(segments):
        by_currency: dict[str, list[_Row]] = {}
        for base, raw in parsed:
            if base.sku in single:
                continue
            try:
                row = _in_segment(base, raw[5 + segment_index], epoch)
            except Exception:
                logger.debug("%s: left to the single path", base.sku, exc_info=True)
                single.add(base.sku)
                continue
            by_currency.setdefault(row.currency, []).append(row)
        for rows in by_currency.values():
            windows = _schedules(compiled, rows, segment, now, horizon_end)
            _plan_rows(
                compiled,
                rows,
                windows,
                str(segment),
                epoch,
                read_at,
                boundary_lead_seconds,
                plan,
                single,
            )
    # A SKU left to the single path is priced there in every segment.
    kept = [index for index, p in enumerate(plan.prepared) if p.sku not in single]
    plan.prepared = [plan.prepared[index] for index in kept]
    plan.outcomes = [plan.outcomes[index] for index in kept]
    plan.unchanged = [outcome for outcome in plan.unchanged if outcome.sku not in single]
    plan.single = sorted(single)
    plan.deleted = sorted(deleted)
    return plan


# Not frozen, though never changed: a full reprice builds one or more per SKU, and a
# frozen dataclass costs about five times as much to build.
@dataclass(slots=True)
class _Window:
    """One window of a row's schedule: where its decision sits in a batch result, and
    what its explanation quotes."""

    epoch: int
    columns: BatchInputs
    result: BatchDecisions
    index: int
    facts: RowFacts
    price: int  # minor units, MISSING if unpriced
    until: int | None  # epoch s, None if the window does not end


def _window_ends(result: BatchDecisions) -> tuple[list[int], list[int | None]]:
    """Each row's price and window end as Python ints (see :class:`_Window`): read once
    per batch, where a numpy element costs several times a list item each time."""
    missing = int(MISSING)
    untils = [None if until == missing else until for until in result.valid_until.tolist()]
    return result.price.tolist(), untils


def _schedules(
    compiled: CompiledRuleset,
    rows: Sequence[_Row],
    segment: Segment,
    now: datetime,
    horizon_end: int,
) -> list[list[_Window]]:
    """Each row's windows up to the horizon, as :func:`~pricing_service.engine.schedule.
    schedule` builds them: each window priced at the previous one's end, starting from
    its price. Rows whose next window starts at the same instant are priced together."""
    epoch = int(now.timestamp())
    columns = encode_rows(compiled, rows, now)
    result = decide_batch(compiled, columns, now, segment=segment)
    prices, untils = _window_ends(result)
    windows = [
        [_Window(epoch, columns, result, index, row.facts, prices[index], untils[index])]
        for index, row in enumerate(rows)
    ]
    # What the next window starts from: the recent changes, the price in force, its start.
    state = [(row.points, row.numbers[5], row.numbers[6], False) for row in rows]
    pending = list(range(len(rows)))
    window_seconds = compiled.loop_window_seconds
    while pending:
        due: dict[int, list[int]] = {}
        for position in pending:
            last = windows[position][-1]
            until = last.until
            if last.price == MISSING or until is None or until >= horizon_end:
                continue
            if len(windows[position]) >= MAX_WINDOWS:
                continue
            points, current, changed_at, _ = state[position]
            moved = last.price != current
            if moved:
                points = [*points, (last.epoch, last.price)]
                current, changed_at = last.price, last.epoch
            state[position] = (points, current, changed_at, moved)
            due.setdefault(until, []).append(position)
        pending = []
        for moment, positions in sorted(due.items()):
            subset = take_rows(columns, np.array(positions))
            for slot, position in enumerate(positions):
                points, current, changed_at, _ = state[position]
                subset.current[slot] = current
                subset.last_changed[slot] = changed_at
                subset.set_moves(slot, _moves(points, current, changed_at, moment, window_seconds))
            at = datetime.fromtimestamp(moment, tz=UTC)
            later = decide_batch(compiled, subset, at, segment=segment)
            digits = minor_unit_digits(subset.currency)
            prices, untils = _window_ends(later)
            for slot, position in enumerate(positions):
                _, current, changed_at, moved = state[position]
                facts = windows[position][-1].facts
                facts = facts.at_price(
                    # A price our schedule set reads as the engine wrote it; one kept
                    # from the inputs, as they wrote it.
                    money_text(current, digits) if moved else facts.current_price,
                    None if changed_at == MISSING else changed_at,
                )
                windows[position].append(
                    _Window(moment, subset, later, slot, facts, prices[slot], untils[slot])
                )
                pending.append(position)
    return windows


def _plan_rows(
    compiled: CompiledRuleset,
    rows: Sequence[_Row],
    schedules: Sequence[Sequence[_Window]],
    segment: str,
    epoch: int,
    read_at: int,
    lead: int,
    plan: ChunkPlan,
    single: set[str],
) -> None:
    version = compiled.version
    for row, windows in zip(rows, schedules, strict=True):
        first = windows[0]
        result, index = first.result, first.index
        digits = minor_unit_digits(first.columns.currency)
        spans = [
            (
                window.epoch,
                window.until,
                None if window.price == MISSING else money_text(window.price, digits),
                compiled.rules[int(window.result.rule_index[window.index])].id,
            )
            for window in windows
        ]
        if len(windows) == MAX_WINDOWS and spans[-1][1] is not None:
            single.add(row.sku)  # the single path stops at the same bound, and says so
            continue
        mark = fingerprint_windows(version, segment, row.digest, spans)
        rule = compiled.rules[int(result.rule_index[index])]
        price = spans[0][2]
        outcome = Outcome(
            sku=row.sku,
            segment=segment,
            strategy=strategy_name(rule, int(result.strategy_position[index])),
            guardrails_fired=fired_names(int(result.guardrails_fired[index])),
            held_by=HELD_NAMES.get(int(result.held[index])),
            priced=price is not None,
            changed=price is not None and first.price != int(first.columns.current[index]),
            due=next_boundary((span[1] for span in spans), epoch, lead),
        )
        if mark == row.published_fingerprint:
            plan.unchanged.append(outcome)  # already published: no explanation needed
            continue
        told = [
            explain_row(
                compiled,
                window.columns,
                window.result,
                window.index,
                window.facts,
                window.epoch,
                segment,
            )
            for window in windows
        ]
        if any(entry is None for entry in told):
            single.add(row.sku)
            continue
        stored = [list(span[:3]) for span in spans]  # the schedule JSON's windows
        plan.prepared.append(
            PreparedPublish(
                sku=row.sku,
                segment=segment,
                fingerprint=mark,
                schedule_json=schedule_json(version, first.columns.currency, stored),
                audit=encode_audit_entries(cast(list[dict[str, Any]], told), stored, segment),
                current_price="" if price is None else price,
                price_epoch=epoch,
                read_at=read_at,
            )
        )
        plan.outcomes.append(outcome)


__all__ = ["ChunkPlan", "plan_chunk"]
