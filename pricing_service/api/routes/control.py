"""Control: overrides, the kill switch, rules, and manual repricing."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from pricing_service.api.deps import Admin, Reader, RulesDep, SettingsDep, StoreDep, Writer
from pricing_service.api.problems import (
    FORBIDDEN,
    UNAUTHORIZED,
    UNAVAILABLE,
    ProblemError,
    invalid,
    not_found,
)
from pricing_service.catalogue import SKU_PATTERN, ExactPrice, is_exact_in
from pricing_service.engine.compiled import CompiledRuleset
from pricing_service.engine.inputs import ItemFacts
from pricing_service.engine.schedule import LATEST_START
from pricing_service.rules.loader import check_texts
from pricing_service.rules.preview import HEADING_REPRICES, preview_changes, read_preview_inputs
from pricing_service.store.store import InvalidStoredItemError, Override, Store

router = APIRouter(tags=["control"], responses={**UNAUTHORIZED, **UNAVAILABLE})

Sku = Annotated[str, Path(pattern=SKU_PATTERN, description="The item's SKU.")]
#: SKUs one preview evaluates: it runs the engine in the API process.
MAX_PREVIEW_SKUS = 10_000
#: Rule files in one validate or preview call, and the size of each.
MAX_RULE_FILES = 100
MAX_RULE_FILE_CHARS = 1_000_000


class OverrideIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    price: ExactPrice
    until: datetime = Field(description="When the override ends (ISO 8601 with a timezone).")
    reason: str = Field(min_length=1, max_length=500)
    force: bool = Field(default=False, description="Bypass the hard floor and ceiling too.")


class FreezeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=500)


class FreezeState(BaseModel):
    frozen: bool
    marked_dirty: int = 0


class RuleFilesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    files: dict[str, Annotated[str, Field(max_length=MAX_RULE_FILE_CHARS)]] = Field(
        description="Rule file name (*.yaml) to its text.", max_length=MAX_RULE_FILES
    )


class DiagnosticOut(BaseModel):
    file: str
    line: int
    column: int
    severity: str
    message: str


class ValidationReport(BaseModel):
    valid: bool
    version: str | None
    errors: int
    warnings: int
    diagnostics: list[DiagnosticOut]


class RulesStatus(BaseModel):
    version: str | None = Field(description="The ruleset this API process uses.")
    files: list[str]
    loaded_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    repricer: dict[str, str] = Field(description="What the repricers report about theirs.")


class PreviewIn(RuleFilesIn):
    skus: list[Annotated[str, Field(pattern=SKU_PATTERN)]] = Field(
        default_factory=list,
        max_length=10_000,
        description="SKUs to preview; all (up to 10,000) when empty.",
    )
    at: datetime | None = Field(
        default=None,
        description=(
            "Price at this instant (ISO 8601 with a timezone), e.g. during a coming event, "
            "against the prices published for it; default now. Inputs are as stored now, "
            "offers and demand as fresh then as they are now."
        ),
    )
    against: Literal["prices", "rules"] = Field(
        default="prices",
        description=(
            "prices: compare with the prices in force (published for the instant); rules: "
            "with the prices the ruleset in force gives the same inputs at the same "
            "instant, which shows the edit's own effect without moves already under way."
        ),
    )


class PriceChangeOut(BaseModel):
    sku: str
    segment: str = Field(description="The canonical segment ('' is the default).")
    currency: str
    current: Decimal
    proposed: Decimal
    change: Decimal
    change_percent: Decimal
    rule_id: str
    strategy: str = Field(description='What set the price: "discount", "fallback:list_price"...')
    guardrails_fired: list[str] = Field(description="Guardrails that shaped the proposed price.")
    answered_by: str | None = Field(
        default=None,
        description=(
            "For a segment the candidate no longer prices on its own (it only exists in the "
            "ruleset compared with): the candidate's segment whose price a lookup of it "
            "would get ('' is the default), which is the proposed price. Null otherwise."
        ),
    )
    heading: Decimal | None = Field(
        description=(
            "Where the price settles with the inputs as they are, once the step limits "
            "(max_change, max_change_per_day), cooldown, loop protection and any override "
            "stop holding it back: the next step alone can hide an edit's whole effect."
        )
    )
    heading_from: Decimal | None = Field(
        description=(
            "What the heading is compared with: the price in force, or (against=rules) "
            "where the ruleset in force settles the same price."
        )
    )
    heading_change_percent: Decimal
    heading_settles: bool = Field(
        description=f"False when the price was still moving after {HEADING_REPRICES} "
        "repricings with no floor or ceiling to stop at, or looped."
    )
    heading_until: datetime | None = Field(
        description="When the rule, window or adjustment behind the heading changes (a "
        "happy hour's end): the heading holds until then, and may never be reached. Null: "
        "not by time."
    )


class PreviewSummaryOut(BaseModel):
    evaluated: int
    changed: int
    up: int
    down: int
    unpriced: int
    held: dict[str, int] = Field(
        description=(
            "Prices that stay as they are while a guardrail or the loop protection fired, "
            "by name (a price with two firing counts under both)."
        )
    )
    discounts_up: int = Field(
        description="Changes up under a discount: off a list price above the price in force."
    )
    unmatched_rules: list[str] = Field(
        description="Rules whose scope covers none of the SKUs previewed: a typo, or a "
        "category spelled another way (names are case-sensitive)."
    )
    endings_beyond_currency: list[str] = Field(
        description="Rules whose rounding ending needs more decimal places than the currency "
        'of SKUs they priced has, as "rule-id: price ending .99, JPY" (JPY has no minor '
        "unit): those prices are published unrounded."
    )
    amounts_like_percentages: list[str] = Field(
        description="Amount adjustments (change: -20) that moved a price by half of it or "
        'more, as a forgotten "%" would, each with its largest move: "rule/adjustment: '
        '-20 USD would move SKU-1 from 30.00 by 66.67%".'
    )
    mean_abs_change_percent: Decimal | None
    median_abs_change_percent: Decimal | None
    max_abs_change_percent: Decimal | None
    heading_changed: int = Field(
        description="Prices heading elsewhere than the price compared with, moving next or not."
    )
    held_short: int = Field(
        description="Of those, the prices the next repricing does not take there (held back "
        "by the step limits, cooldown, loop protection or an override)."
    )
    unsettled: int = Field(
        description=f"Prices still moving after {HEADING_REPRICES} repricings with no floor "
        "or ceiling to stop at, or looping."
    )
    max_abs_heading_change_percent: Decimal | None


class PreviewOut(BaseModel):
    version: str
    truncated: bool = Field(description="More SKUs exist than one preview evaluates.")
    unknown: list[str] = Field(description="SKUs asked for that are not in the catalogue.")
    summary: PreviewSummaryOut
    changes: list[PriceChangeOut]


class RepriceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    skus: list[Annotated[str, Field(pattern=SKU_PATTERN)]] = Field(default_factory=list)
    all: bool = False


class RepriceResult(BaseModel):
    marked_dirty: int
    unknown: list[str] = []
    invalid: list[str] = Field(
        default=[],
        description="SKUs whose stored item does not validate (written around the API): "
        "not repriced until PUT /v1/items/{sku} replaces it.",
    )


@router.put("/v1/overrides/{sku}", responses={**FORBIDDEN, 404: {"description": "No such item."}})
async def put_override(sku: Sku, body: OverrideIn, principal: Admin, store: StoreDep) -> Override:
    """Set a manual price until an instant (admin); the repricer audits and applies it."""
    if body.until.tzinfo is None:
        raise invalid("until: give a timezone, e.g. 2026-11-27T00:00:00Z")
    if body.until <= datetime.now(UTC):
        raise invalid("until: must be in the future")
    item = await store.get_item(sku)
    if item is None:
        raise not_found("item", f"no item {sku!r}")
    if not is_exact_in(body.price, item.currency):
        raise invalid(f"price: more decimals than {item.currency} allows")
    override = Override(
        price=body.price,
        until=body.until,
        reason=body.reason,
        force=body.force,
        set_by=principal.name,
    )
    await store.set_override(sku, override)
    return override


@router.delete(
    "/v1/overrides/{sku}",
    status_code=204,
    responses={**FORBIDDEN, 404: {"description": "No override."}},
)
async def delete_override(sku: Sku, _: Admin, store: StoreDep) -> Response:
    """Remove a manual price (admin)."""
    if not await store.clear_override(sku):
        raise not_found("override", f"no override for {sku!r}")
    return Response(status_code=204)


@router.post("/v1/admin/freeze", responses=FORBIDDEN)
async def freeze(_: Admin, store: StoreDep, body: FreezeIn | None = None) -> FreezeState:
    """Stop all price changes (admin); lookups keep answering."""
    await store.set_frozen(True, reason=body.reason if body else "")
    return FreezeState(frozen=True)


async def _mark_all_dirty(store: Store, reason: str) -> int:
    marked = 0
    async for chunk in store.iter_skus():
        await store.mark_dirty(chunk, reason)
        marked += len(chunk)
    return marked


@router.post("/v1/admin/unfreeze", responses=FORBIDDEN)
async def unfreeze(_: Admin, store: StoreDep) -> FreezeState:
    """Let prices change again (admin), repricing every SKU."""
    await store.set_frozen(False)
    return FreezeState(frozen=False, marked_dirty=await _mark_all_dirty(store, "unfreeze"))


@router.post("/v1/admin/reprice", responses=FORBIDDEN)
async def reprice(
    body: RepriceIn, _: Admin, store: StoreDep, settings: SettingsDep
) -> RepriceResult:
    """Queue SKUs, or every SKU, for repricing (admin)."""
    if body.all == bool(body.skus):
        raise invalid('give either "skus" or "all": true')
    if body.all:
        return RepriceResult(marked_dirty=await _mark_all_dirty(store, "manual"))
    if len(body.skus) > settings.max_bulk_items:
        raise invalid(f"skus: at most {settings.max_bulk_items} per call")
    skus = list(dict.fromkeys(body.skus))
    items = dict(zip(skus, await store.get_items(skus), strict=True))
    known = [sku for sku, item in items.items() if isinstance(item, ItemFacts)]
    unknown = [sku for sku, item in items.items() if item is None]
    broken = [sku for sku, item in items.items() if isinstance(item, InvalidStoredItemError)]
    await store.mark_dirty(known, "manual")
    return RepriceResult(marked_dirty=len(known), unknown=unknown, invalid=broken)


@router.get("/v1/rules")
async def rules_status(_: Reader, rules: RulesDep, store: StoreDep) -> RulesStatus:
    """The ruleset in force, its files, load time and last error."""
    current = rules.current
    return RulesStatus(
        version=None if current is None else current.compiled.version,
        files=[] if current is None else list(current.files),
        loaded_at=None if current is None else current.loaded_at,
        last_error=rules.last_error,
        last_error_at=rules.last_error_at,
        repricer=await store.ruleset_status(),
    )


@router.post("/v1/rules/validate", responses=FORBIDDEN)
async def validate_rules(body: RuleFilesIn, _: Writer) -> ValidationReport:
    """Check candidate rule files; the same diagnostics as `pricing rules validate`."""
    ruleset, diagnostics = check_texts(body.files)
    errors = sum(d.severity == "error" for d in diagnostics)
    return ValidationReport(
        valid=ruleset is not None,
        version=None if ruleset is None else ruleset.version,
        errors=errors,
        warnings=len(diagnostics) - errors,
        diagnostics=[DiagnosticOut.model_validate(d.as_dict()) for d in diagnostics],
    )


@router.post(
    "/v1/rules/preview",
    responses={**FORBIDDEN, 422: {"description": "Invalid rule files or request."}},
)
async def preview_rules(body: PreviewIn, _: Writer, store: StoreDep, rules: RulesDep) -> PreviewOut:
    """Which prices in force a candidate ruleset would change, per SKU and segment."""
    ruleset, diagnostics = check_texts(body.files)
    if ruleset is None:
        raise invalid(
            "the candidate rules have errors",
            errors=[
                {"location": [d.file, d.line, d.column], "message": d.message, "type": d.severity}
                for d in diagnostics
            ],
        )
    compiled = CompiledRuleset(ruleset)
    truncated = False
    if body.skus:
        skus = list(dict.fromkeys(body.skus))
    else:
        skus = []
        async for chunk in store.iter_skus():
            skus += chunk
            if len(skus) > MAX_PREVIEW_SKUS:
                skus, truncated = sorted(skus)[:MAX_PREVIEW_SKUS], True
                break
    if body.at is not None and body.at.tzinfo is None:
        raise invalid("at: give a timezone, e.g. 2026-11-27T00:00:00Z")
    if body.at is not None and body.at >= LATEST_START:
        raise invalid(f"at: before {LATEST_START:%Y-%m-%d}, please")
    at = datetime.now(UTC) if body.at is None else body.at
    # Its segments are previewed too: those the candidate drops still have prices in force.
    in_force_rules = None if rules.current is None else rules.current.compiled
    baseline = None
    if body.against == "rules":
        if in_force_rules is None:
            raise ProblemError(
                409, "no-ruleset", "no ruleset is in force to compare with", title="No ruleset"
            )
        baseline = in_force_rules
    stored = await read_preview_inputs(store, compiled, skus, at, in_force_rules)
    changes, summary = await asyncio.to_thread(
        partial(preview_changes, baseline=baseline, in_force_rules=in_force_rules),
        compiled,
        stored.inputs,
        stored.in_force,
        at,
    )
    found = stored.skus
    return PreviewOut(
        version=ruleset.version,
        truncated=truncated,
        unknown=[sku for sku in skus if sku not in found],
        summary=PreviewSummaryOut(**asdict(summary)),
        changes=[
            PriceChangeOut(
                **asdict(change),
                change=change.change,
                change_percent=change.change_percent,
                heading_change_percent=change.heading_change_percent,
            )
            for change in changes
        ],
    )
