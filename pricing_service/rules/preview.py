"""What a candidate ruleset would do to the prices in force, without publishing anything.

Every SKU is priced in every segment the candidate or the ruleset compared with
distinguishes, and compared with the price in force for that segment at the same instant:
the published schedule's, or the item's current price where nothing is published for the
segment. A segment the candidate no longer prices on its own gets, once it is in force,
the price of the segment a lookup maps it to (its canonical segment), so that is the price
shown for it, and the row says which segment answers it. The API's
``POST /v1/rules/preview`` and ``pricing rules preview`` both use it.

Each row also says where the price is heading: the price the candidate settles at, with
the inputs as they are, once the pacing guardrails (maximum change per repricing and per
day, cooldown) and the loop protection stop holding it back. The next step alone can hide
an edit's whole effect: a cooldown keeps today's price, or a 15% step limit shows +15%
where the rule aims at +200%.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pricing_service.engine.compiled import CompiledRule, CompiledRuleset
from pricing_service.engine.decision import Decision
from pricing_service.engine.inputs import PricingInputs, Segment
from pricing_service.engine.segments import canonical_segment, priced_segments
from pricing_service.engine.single import decide, ending_decimals, rule_matches_item
from pricing_service.money import minor_unit_digits
from pricing_service.repricer.inputs import load_segments
from pricing_service.rules.loader import AMOUNT_LIKE_A_PERCENTAGE
from pricing_service.rules.model import Guardrails, Ruleset
from pricing_service.store.store import Store

_PERCENT = Decimal("0.01")
#: Repricings followed when looking for where a price settles, from where it is and, for
#: one still moving the same way, from the far end of its way.
HEADING_REPRICES = 10


@dataclass(frozen=True, slots=True)
class PriceChangePreview:
    sku: str
    segment: str  # canonical; '' is the default segment
    currency: str
    current: Decimal
    proposed: Decimal
    rule_id: str
    strategy: str = ""  # as the decision says: "discount", "fallback:list_price", ...
    guardrails_fired: tuple[str, ...] = ()
    #: The candidate's segment whose price a lookup of ``segment`` would get, when the
    #: candidate does not price ``segment`` on its own (a rule for it was removed); None
    #: when it does.
    answered_by: str | None = None
    #: Where the price settles under the candidate with the inputs as they are, once the
    #: pacing guardrails and loop protection stop holding it back (see the module's text).
    heading: Decimal | None = None
    #: What ``heading`` is compared with: the price in force, or against a baseline ruleset
    #: where the baseline's own prices settle.
    heading_from: Decimal | None = None
    #: False when the price had not settled after :data:`HEADING_REPRICES` repricings, or
    #: came back to an earlier price (a loop): ``heading`` is then the last price reached.
    heading_settles: bool = True
    #: When the rules, windows or adjustments that set the heading change (a happy hour's
    #: end): the heading holds until then. None: not by time.
    heading_until: datetime | None = None

    @property
    def held_short(self) -> bool:
        """Heading elsewhere than the next repricing takes it: pacing holds it back."""
        return self.heading is not None and self.heading != self.proposed

    @property
    def discount_raises(self) -> bool:
        """A discount that would put the price up: off a list price above the price in
        force, a promotion that charges more."""
        return self.strategy == "discount" and self.change > 0

    @property
    def change(self) -> Decimal:
        return self.proposed - self.current

    @property
    def change_percent(self) -> Decimal:
        return (self.change * 100 / self.current).quantize(_PERCENT)

    @property
    def heading_change_percent(self) -> Decimal:
        """How far the heading is from what it is compared with, in per cent (0 when
        either is unknown)."""
        if self.heading is None or not self.heading_from:
            return Decimal("0.00")
        return ((self.heading - self.heading_from) * 100 / self.heading_from).quantize(_PERCENT)

    @property
    def largest_change_percent(self) -> Decimal:
        """The next step's change or the heading's, whichever is larger in size."""
        return max(self.change_percent, self.heading_change_percent, key=abs)


@dataclass(frozen=True, slots=True)
class PreviewSummary:
    evaluated: int
    changed: int  # at the next repricing
    up: int
    down: int
    unpriced: int  # no price in force to compare with, or no proposed price
    #: Prices whose heading differs from what it is compared with, changing at the next
    #: repricing or not.
    heading_changed: int
    #: Of those, the prices the next repricing does not take there: held back short of it
    #: by the step limits, the cooldown, the loop protection or an override.
    held_short: int
    #: Prices still moving after HEADING_REPRICES repricings with no floor or ceiling to
    #: stop at, or moving in a loop.
    unsettled: int
    #: Prices that stay as they are while a guardrail or the loop protection fired, by
    #: name (a price with two firing counts under both): where a candidate that "changes
    #: nothing" is being held back, e.g. by a cooldown after the last change.
    held: dict[str, int]
    #: Changes up under a discount (see :attr:`PriceChangePreview.discount_raises`).
    discounts_up: int
    #: Rules whose scope (SKUs, categories, brands, tags, price band, segment) covers
    #: none of the SKUs previewed in any segment: a typo, or a category's other spelling.
    unmatched_rules: list[str]
    #: Rules whose rounding ending needs more decimal places than the currency of SKUs
    #: they priced has (".99" on a JPY item: JPY has no minor unit), as "rule-id: price
    #: ending .99, JPY": those prices are published unrounded. Validation cannot tell,
    #: as a currency belongs to the item, not to the rule files.
    endings_beyond_currency: list[str]
    #: Amount adjustments (``change: -20``) that moved a SKU's price by at least half of
    #: it, the way a forgotten "%" would, each with its largest move: "rule/adjustment:
    #: -20 USD would move SKU-1 from 30.00 by 66.67%". Validation judges only the rules whose
    #: prices the rule files bound; this sees the catalogue's prices.
    amounts_like_percentages: list[str]
    mean_abs_change_percent: Decimal | None
    median_abs_change_percent: Decimal | None
    max_abs_change_percent: Decimal | None
    max_abs_heading_change_percent: Decimal | None


@dataclass(frozen=True, slots=True)
class StoredPreviewInputs:
    """What a preview reads from the store for some SKUs: per segment, each SKU's inputs as
    the repricer would see them (its current price and recent moves are the segment's own;
    SKUs not in the catalogue are absent), and the price in force at the instant by SKU
    and segment."""

    inputs: dict[str, dict[str, PricingInputs]]
    in_force: dict[tuple[str, str], Decimal]

    @property
    def skus(self) -> set[str]:
        return {sku for by_sku in self.inputs.values() for sku in by_sku}


def preview_segments(
    compiled: CompiledRuleset, in_force: CompiledRuleset | None = None
) -> list[Segment]:
    """The segments a preview prices: each that ``compiled`` or ``in_force`` (the ruleset
    compared with, or the one in force) distinguishes. Those of ``in_force`` alone have
    prices published today that the candidate would replace."""
    segments = set(priced_segments(compiled))
    if in_force is not None:
        segments.update(priced_segments(in_force))
    return sorted(segments, key=str)


async def read_preview_inputs(
    store: Store,
    compiled: CompiledRuleset,
    skus: Sequence[str],
    at: datetime,
    in_force_rules: CompiledRuleset | None = None,
) -> StoredPreviewInputs:
    """Read ``skus``' inputs in each segment of :func:`preview_segments`, and the prices
    their published schedules give at ``at``."""
    segments = [str(segment) for segment in preview_segments(compiled, in_force_rules)]
    loaded = await load_segments(store, compiled, skus, at, segments)
    instant = int(at.timestamp())
    in_force = {
        (sku, segment): window.price
        for segment, by_sku in loaded.items()
        for sku, entry in by_sku.items()
        if entry.published is not None
        and (window := entry.published.window_at(instant)) is not None
        and window.price is not None
    }
    ahead = at - datetime.now(UTC)
    inputs = {
        segment: {sku: _seen_at(entry.inputs, ahead) for sku, entry in by_sku.items()}
        for segment, by_sku in loaded.items()
    }
    return StoredPreviewInputs(inputs, in_force)


def _seen_at(inputs: PricingInputs, ahead: timedelta) -> PricingInputs:
    """A preview of a later instant takes the market as it is now: offers and demand
    signals as fresh then as they are now. Aged as stored, every offer would be too old
    a week ahead, and competitor rules would all seem to fall back."""
    if ahead <= timedelta(0):
        return inputs
    offers = tuple(
        offer.model_copy(update={"observed_at": offer.observed_at + ahead})
        for offer in inputs.observations
    )
    demand = inputs.demand
    if demand is not None and demand.as_of is not None:
        demand = demand.model_copy(update={"as_of": demand.as_of + ahead})
    return inputs.model_copy(update={"observations": offers, "demand": demand})


@dataclass(frozen=True, slots=True)
class CataloguePreview:
    """A preview over many SKUs: the changes, their summary, and the SKUs asked for that
    are not in the catalogue."""

    changes: list[PriceChangePreview]
    summary: PreviewSummary
    missing: list[str]


#: SKUs read and priced at a time by :func:`preview_catalogue`.
PREVIEW_CHUNK = 2_000


async def preview_catalogue(
    store: Store,
    compiled: CompiledRuleset,
    at: datetime,
    skus: Sequence[str] | None = None,
    on_progress: Callable[[int], None] | None = None,
    baseline: CompiledRuleset | None = None,
    in_force_rules: CompiledRuleset | None = None,
) -> CataloguePreview:
    """Preview ``skus`` (default: the whole catalogue) a chunk at a time, against the
    prices in force or, given a ``baseline`` ruleset, against the prices it gives the same
    inputs at the same instant. The segments previewed are the candidate's and those of
    ``in_force_rules`` (default: ``baseline``). It prices on the calling thread: for a
    command line, not for a server's event loop."""
    in_force_rules = baseline if in_force_rules is None else in_force_rules
    tally = _Tally.of(compiled, baseline)
    missing: list[str] = []

    async def chunks() -> AsyncIterator[list[str]]:
        if skus is None:
            async for chunk in store.iter_skus(PREVIEW_CHUNK):
                yield chunk
            return
        wanted = list(dict.fromkeys(skus))
        for start in range(0, len(wanted), PREVIEW_CHUNK):
            yield wanted[start : start + PREVIEW_CHUNK]

    async for chunk in chunks():
        stored = await read_preview_inputs(store, compiled, chunk, at, in_force_rules)
        found_skus = stored.skus
        missing += [sku for sku in chunk if sku not in found_skus]
        tally.add(compiled, stored.inputs, stored.in_force, at, baseline, in_force_rules)
        if on_progress is not None:
            on_progress(len(chunk))
    return CataloguePreview(tally.changes, tally.summary(), missing)


def preview_changes(
    compiled: CompiledRuleset,
    inputs: Mapping[str, Mapping[str, PricingInputs]],
    in_force: Mapping[tuple[str, str], Decimal],
    now: datetime,
    *,
    baseline: CompiledRuleset | None = None,
    in_force_rules: CompiledRuleset | None = None,
) -> tuple[list[PriceChangePreview], PreviewSummary]:
    """Each SKU's price in each segment of :func:`preview_segments` (``inputs`` by
    segment, then SKU, as :func:`read_preview_inputs` reads them) against the price in
    force (``in_force`` by SKU and segment, else the item's current price), or against the
    price ``baseline`` gives the same inputs; ordered by SKU, then segment.
    ``in_force_rules`` defaults to ``baseline``. CPU-bound: call it off the event loop."""
    in_force_rules = baseline if in_force_rules is None else in_force_rules
    tally = _Tally.of(compiled, baseline)
    tally.add(compiled, inputs, in_force, now, baseline, in_force_rules)
    return tally.changes, tally.summary()


#: The guardrails that pace a price towards its target rather than bound it.
_PACING: dict[str, object] = {"max_change": None, "max_change_per_day": None, "cooldown": None}


def unpaced(compiled: CompiledRuleset) -> CompiledRuleset:
    """``compiled`` without its pacing guardrails and loop protection: its decisions are
    the rules' targets within the hard bounds, direction and rounding."""
    ruleset = compiled.ruleset

    def free(guardrails: Guardrails | None) -> Guardrails | None:
        return None if guardrails is None else guardrails.model_copy(update=_PACING)

    loop_protection = ruleset.loop_protection.model_copy(update={"enabled": False})
    default = ruleset.default.model_copy(update={"guardrails": free(ruleset.default.guardrails)})
    rules = [
        rule.model_copy(update={"guardrails": free(rule.guardrails)}) for rule in ruleset.rules
    ]
    unpaced_ruleset: Ruleset = ruleset.model_copy(
        update={
            "guardrails": ruleset.guardrails.model_copy(update=_PACING),
            "loop_protection": loop_protection,
            "default": default,
            "rules": rules,
        }
    )
    return CompiledRuleset(unpaced_ruleset)


@dataclass(frozen=True, slots=True)
class Heading:
    """Where a price settles, or, when it does not, the last price reached; ``until``:
    when the rules, windows or adjustments that set it change (None: not by time)."""

    price: Decimal | None
    settles: bool = True
    until: datetime | None = None


def heading(
    unpaced_rules: CompiledRuleset,
    entry: PricingInputs,
    at: datetime,
    segment: Segment,
    decision: Decision,
) -> Heading:
    """Where ``entry``'s price settles after ``decision``, its next repricing, under
    ``unpaced_rules`` (see :func:`unpaced`) at ``at``, with the inputs as they are and
    without an override (which ends). Each repricing starts from the price the last one
    set, so a rule relative to the current price compounds, as it would live; one still
    moving the same way after :data:`HEADING_REPRICES` is followed to the price it stops
    at from the far end (the floor, for a markdown: see :func:`_settled_from_far_end`)."""
    price = decision.price
    item = entry.item
    if price is None or (
        price == item.current_price
        and not decision.guardrails_fired
        and decision.held_by is None
        and entry.override is None
    ):
        return Heading(price, until=decision.valid_until)  # nothing held it back

    def reprice(current: Decimal) -> Decision:
        moved = item.model_copy(update={"current_price": current})
        return decide(
            unpaced_rules,
            moved,
            at,
            segment=segment,
            observations=entry.observations,
            demand=entry.demand,
            elasticity=entry.elasticity,
        )

    seen = {item.current_price, price}
    directions: set[bool] = set()
    until = None
    for _ in range(HEADING_REPRICES):
        next_decision = reprice(price)
        decided, until = next_decision.price, next_decision.valid_until
        if decided is None or decided == price:
            return Heading(price, until=until)
        if decided in seen:
            return Heading(decided, settles=False, until=until)
        directions.add(decided > price)
        seen.add(decided)
        price = decided
    if len(directions) == 1:
        far = _settled_from_far_end(reprice, price, directions.pop(), item.currency)
        if far is not None:
            return Heading(far.price, until=far.valid_until)
    return Heading(price, settles=False, until=until)


def _settled_from_far_end(
    reprice: Callable[[Decimal], Decision], reached: Decimal, rising: bool, currency: str
) -> Decision | None:
    """Where a price still moving one way settles, found from the far end of that way:
    from one minor unit for a price going down (a markdown compounding toward its floor,
    which may be hundreds of repricings away), from a hundred times the price reached
    for one going up. The decision it settles at when that lies beyond ``reached``; None
    when the price does not settle from there either (it has no floor or ceiling)."""
    price = Decimal(1).scaleb(-minor_unit_digits(currency)) if not rising else reached * 100
    for _ in range(HEADING_REPRICES):
        decision = reprice(price)
        if decision.price is None:
            return None
        if decision.price == price:
            beyond = price > reached if rising else price < reached
            return decision if beyond else None
        price = decision.price
    return None


@dataclass(slots=True)
class _Tally:
    """A preview's running counts, added to a chunk of SKUs at a time."""

    unmatched: dict[str, CompiledRule]  # rules no SKU priced so far falls within
    by_id: dict[str, CompiledRule]
    unpaced: CompiledRuleset
    unpaced_baseline: CompiledRuleset | None
    changes: list[PriceChangePreview] = field(default_factory=list)
    evaluated: int = 0
    changed: int = 0
    unpriced: int = 0
    held: Counter[str] = field(default_factory=Counter)
    #: (rule id, rounding noun, currency) of each ending a SKU's currency cannot carry.
    beyond_currency: set[tuple[str, str, str]] = field(default_factory=set)
    #: (rule id, adjustment id) -> the largest share of a price the amount moved, with
    #: the step's text and SKU.
    large_amounts: dict[tuple[str, str], tuple[Decimal, str]] = field(default_factory=dict)

    @classmethod
    def of(cls, compiled: CompiledRuleset, baseline: CompiledRuleset | None) -> _Tally:
        by_id = {rule.id: rule for rule in compiled.rules}
        return cls(
            unmatched=dict(by_id),
            by_id=by_id,
            unpaced=unpaced(compiled),
            unpaced_baseline=None if baseline is None else unpaced(baseline),
        )

    def _check_ending(self, decision: Decision) -> None:
        rule = self.by_id.get(decision.rule_id)
        rounding = None if rule is None else rule.guardrails.rounding
        if rounding is not None and ending_decimals(rounding) > minor_unit_digits(
            decision.currency
        ):
            self.beyond_currency.add((decision.rule_id, rounding.points_noun, decision.currency))

    def _check_amounts(self, decision: Decision) -> None:
        """Amount adjustments that moved the price by half of it or more."""
        rule = self.by_id.get(decision.rule_id)
        if rule is None:
            return
        amounts = {a.id: a for a in rule.adjustments if a.change_amount is not None}
        for step in decision.steps:
            adjustment = amounts.get(step.name) if step.stage == "adjustment" else None
            if adjustment is None or step.input is None or step.output is None:
                continue
            if step.input <= 0:
                continue
            share = abs(step.output - step.input) / step.input
            key = (rule.id, adjustment.id)
            if (
                share >= AMOUNT_LIKE_A_PERCENTAGE
                and share > self.large_amounts.get(key, (Decimal(0), ""))[0]
            ):
                moved = (share * 100).quantize(_PERCENT)
                text = (
                    f"{rule.id}/{adjustment.id}: {adjustment.change_text} {decision.currency} "
                    f"would move {decision.sku} from {step.input} by {moved}%"
                )
                self.large_amounts[key] = (share, text)

    def add(
        self,
        compiled: CompiledRuleset,
        inputs: Mapping[str, Mapping[str, PricingInputs]],
        in_force: Mapping[tuple[str, str], Decimal],
        now: datetime,
        baseline: CompiledRuleset | None,
        in_force_rules: CompiledRuleset | None,
    ) -> None:
        segments = preview_segments(compiled, in_force_rules)
        for sku in sorted({sku for by_sku in inputs.values() for sku in by_sku}):
            # The candidate's decision and heading per segment it prices, shared with the
            # segments it no longer prices on their own, which a lookup maps to one of these.
            decisions: dict[Segment, tuple[Decision, Heading] | None] = {}
            for segment in segments:
                name = str(segment)
                entry = inputs.get(name, {}).get(sku)
                if entry is None:
                    continue
                self.evaluated += 1
                covering = [
                    rule_id
                    for rule_id, rule in self.unmatched.items()
                    if rule_matches_item(rule, entry.item, segment)
                ]
                for rule_id in covering:
                    del self.unmatched[rule_id]
                answering = canonical_segment(compiled, segment)
                if answering not in decisions:
                    answering_entry = inputs.get(str(answering), {}).get(sku)
                    decisions[answering] = (
                        None
                        if answering_entry is None
                        else self._decide_and_head(compiled, answering_entry, now, answering)
                    )
                decided = decisions[answering]
                if decided is not None:
                    self._check_ending(decided[0])
                    self._check_amounts(decided[0])
                if baseline is None:
                    current = in_force.get((sku, name), entry.item.current_price)
                    heading_from = current
                else:
                    baseline_decision = _decide(baseline, entry, now, segment)
                    current = baseline_decision.price
                    assert self.unpaced_baseline is not None
                    heading_from = heading(
                        self.unpaced_baseline, entry, now, segment, baseline_decision
                    ).price
                proposed = None if decided is None else decided[0].price
                if current is None or current == 0 or decided is None or proposed is None:
                    self.unpriced += 1
                    continue
                decision, settles = decided
                if proposed == current:
                    reasons = decision.guardrails_fired
                    self.held.update(reasons + ((decision.held_by,) if decision.held_by else ()))
                else:
                    self.changed += 1
                if proposed == current and settles.price == heading_from and settles.settles:
                    continue
                self.changes.append(
                    PriceChangePreview(
                        sku=sku,
                        segment=name,
                        currency=entry.item.currency,
                        current=current,
                        proposed=proposed,
                        rule_id=decision.rule_id,
                        strategy=decision.strategy,
                        guardrails_fired=decision.guardrails_fired,
                        answered_by=None if answering == segment else str(answering),
                        heading=settles.price,
                        heading_from=heading_from,
                        heading_settles=settles.settles,
                        heading_until=settles.until,
                    )
                )

    def _decide_and_head(
        self, compiled: CompiledRuleset, entry: PricingInputs, at: datetime, segment: Segment
    ) -> tuple[Decision, Heading]:
        decision = _decide(compiled, entry, at, segment)
        return decision, heading(self.unpaced, entry, at, segment, decision)

    def summary(self) -> PreviewSummary:
        moves = [change for change in self.changes if change.change]
        magnitudes = [abs(change.change_percent) for change in moves]
        headings = [abs(change.heading_change_percent) for change in self.changes]
        return PreviewSummary(
            evaluated=self.evaluated,
            changed=self.changed,
            up=sum(change.change > 0 for change in moves),
            down=sum(change.change < 0 for change in moves),
            unpriced=self.unpriced,
            held=dict(sorted(self.held.items())),
            discounts_up=sum(change.discount_raises for change in moves),
            unmatched_rules=sorted(self.unmatched) if self.evaluated else [],
            endings_beyond_currency=[
                f"{rule_id}: {noun}, {currency}"
                for rule_id, noun, currency in sorted(self.beyond_currency)
            ],
            amounts_like_percentages=[text for _, (_, text) in sorted(self.large_amounts.items())],
            mean_abs_change_percent=(
                (sum(magnitudes, Decimal(0)) / len(magnitudes)).quantize(_PERCENT)
                if magnitudes
                else None
            ),
            median_abs_change_percent=_median(magnitudes),
            max_abs_change_percent=max(magnitudes) if magnitudes else None,
            heading_changed=sum(change.heading != change.heading_from for change in self.changes),
            held_short=sum(change.held_short for change in self.changes),
            unsettled=sum(not change.heading_settles for change in self.changes),
            max_abs_heading_change_percent=max(headings) if headings else None,
        )


def _decide(
    ruleset: CompiledRuleset, entry: PricingInputs, at: datetime, segment: Segment
) -> Decision:
    return decide(
        ruleset,
        entry.item,
        at,
        segment=segment,
        observations=entry.observations,
        demand=entry.demand,
        elasticity=entry.elasticity,
        override=entry.override,
    )


def _median(values: list[Decimal]) -> Decimal | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return ((ordered[middle - 1] + ordered[middle]) / 2).quantize(_PERCENT)
