"""`pricing explain`: a decision and its explanation, as a table or JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from pricing_service.engine.compiled import CompiledRuleset
from pricing_service.engine.decision import Decision, decision_to_dict
from pricing_service.engine.inputs import PricingInputs, Segment
from pricing_service.engine.offers import OfferReviews, review_offers
from pricing_service.engine.schedule import LATEST_START, schedule
from pricing_service.engine.segments import undeclared_parts
from pricing_service.rules.loader import RulesetError, load_ruleset

RulesOption = Annotated[Path, typer.Option(help="Rule files folder (or one file).")]
AtOption = Annotated[
    str | None,
    typer.Option(
        help="Instant to price at, ISO 8601 (2026-11-27T09:00:00-05:00); without an offset, "
        "in the ruleset's timezone; default now."
    ),
]
SegmentOption = Annotated[str | None, typer.Option(help="Segment such as channel:app,tier:member.")]


def parse_instant(text: str | None, zone: ZoneInfo | None = None) -> datetime:
    """``--at``: now when not given; a date or time without an offset is in ``zone`` (the
    ruleset's timezone: where the pricing team's windows are)."""
    if text is None:
        return datetime.now(UTC).replace(microsecond=0)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 instant: {text!r}") from None
    if moment.tzinfo is None:
        if zone is None:
            raise typer.BadParameter("give a timezone, e.g. 2026-11-27T00:00:00-05:00 or ...Z")
        note = daylight_saving_note(moment, zone)
        moment = moment.replace(tzinfo=zone)
        if note is not None:
            Console(stderr=True).print(note, markup=False, highlight=False, soft_wrap=True)
    if moment >= LATEST_START:
        raise typer.BadParameter(f"{text!r} is too far ahead: before {LATEST_START:%Y-%m-%d}")
    return moment


def daylight_saving_note(local: datetime, zone: ZoneInfo) -> str | None:
    """What a local time the clocks skip or pass twice (a daylight saving change) is read
    as, or None for any other time."""
    first, second = local.replace(tzinfo=zone, fold=0), local.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return None
    instant = first.astimezone(UTC).astimezone(zone)
    if instant.replace(tzinfo=None) != local:
        return (
            f"note: {local.isoformat()} does not exist in {zone.key} (the clocks skip it): "
            f"read as {instant.isoformat()}"
        )
    return (
        f"note: {local.isoformat()} happens twice in {zone.key} (the clocks go back): read as "
        f"the first, {first.isoformat()}; give an offset for the second, {second.isoformat()}"
    )


def check_segment(declared: Mapping[str, Sequence[str]], segment: Segment) -> None:
    """Refuse a segment with a typo; say which of its dimensions no rule can match."""
    errors, notes = undeclared_parts(declared, segment)
    if errors:
        raise typer.BadParameter("; ".join(errors), param_hint="--segment")
    for note in notes:
        Console(stderr=True).print(note, markup=False, highlight=False, soft_wrap=True)


def print_diagnostics(error: RulesetError) -> None:
    """Rule-file errors on stderr, one ``file:line:column: severity: message`` a line."""
    err = Console(stderr=True)
    for diagnostic in error.diagnostics:
        err.print(str(diagnostic), markup=False, highlight=False, soft_wrap=True)


def _local(moment: datetime | None, zone: ZoneInfo) -> str:
    if moment is None:
        return "open-ended"
    return f"{moment.astimezone(zone):%Y-%m-%d %H:%M %Z}"


def _age(seconds: int) -> str:
    """An input's age for people: 45s, 12m 5s, 5h 1m, 353d 12h."""
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def _render(
    console: Console, decisions: list[Decision], offers: OfferReviews, zone: ZoneInfo
) -> None:
    decision = decisions[0]
    price = "no price" if decision.price is None else f"{decision.price} {decision.currency}"
    console.print(
        f"[bold]{decision.sku}[/bold] segment={decision.segment or 'default'}: "
        f"[bold green]{price}[/bold green]"
    )
    console.print(
        f"rule [cyan]{decision.rule_id}[/cyan] · strategy {decision.strategy} · "
        f"ruleset {decision.ruleset_version}"
    )
    console.print(
        f"valid {_local(decision.valid_from, zone)} → {_local(decision.valid_until, zone)}"
    )
    steps = Table(title="Steps")
    for column in ("stage", "name", "in", "out", "detail"):
        steps.add_column(column)
    for step in decision.steps:
        steps.add_row(
            step.stage, step.name, str(step.input or ""), str(step.output or ""), step.detail
        )
    console.print(steps)
    if decision.inputs:
        inputs = Table(title="Inputs")
        for column in ("input", "value", "source", "age"):
            inputs.add_column(column)
        for used in decision.inputs:
            age = "" if used.age_seconds is None else _age(used.age_seconds)
            inputs.add_row(used.name, used.value, used.source, age)
        console.print(inputs)
    if offers.offers:
        judged = offers.judged_by
        title = "Competitor offers (each competitor's newest)"
        if judged is not None:
            title += f", judged by: {judged.description}"
        table = Table(title=title)
        for column in ("competitor", "offer", "source", "age", "verdict"):
            table.add_column(column)
        for offer in offers.offers:
            table.add_row(
                offer.competitor, offer.value, offer.source, _age(offer.age_seconds), offer.verdict
            )
        console.print(table)
    fired = ", ".join(decision.guardrails_fired) or "none"
    console.print(f"guardrails fired: {fired}")
    if decision.held_by:
        console.print(f"[bold red]loop breaker held the price: {decision.held_by}[/bold red]")
    for warning in decision.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    if len(decisions) > 1:
        upcoming = Table(title="Schedule")
        for column in ("from", "until", "price", "rule"):
            upcoming.add_column(column)
        for entry in decisions:
            upcoming.add_row(
                _local(entry.valid_from, zone),
                _local(entry.valid_until, zone),
                str(entry.price),
                entry.rule_id,
            )
        console.print(upcoming)


def print_decisions(
    ruleset: CompiledRuleset, inputs: PricingInputs, decisions: list[Decision], *, as_json: bool
) -> None:
    """A decision, its explanation, every competitor offer with what the decision made of
    it, and the coming windows: tables, or JSON."""
    offers = review_offers(ruleset, decisions[0], inputs.observations)
    if not as_json:
        _render(Console(), decisions, offers, ZoneInfo(ruleset.ruleset.timezone))
        return
    payload = decision_to_dict(decisions[0])
    payload["offers_judged_by"] = None if offers.judged_by is None else offers.judged_by.description
    payload["offers"] = [
        {
            "competitor": offer.competitor,
            "value": offer.value,
            "source": offer.source,
            "age_seconds": offer.age_seconds,
            "verdict": offer.verdict,
        }
        for offer in offers.offers
    ]
    payload["schedule"] = [
        {
            "valid_from": d.valid_from.isoformat(),
            "valid_until": None if d.valid_until is None else d.valid_until.isoformat(),
            "price": None if d.price is None else str(d.price),
            "rule_id": d.rule_id,
        }
        for d in decisions
    ]
    typer.echo(json.dumps(payload, indent=2))


def explain_item(
    item: Path, rules: Path, at: str | None, segment: str | None, as_json: bool
) -> None:
    """Explain the price the rules give the item described in ``item`` (ITEM.json)."""
    try:
        ruleset = load_ruleset(rules)
    except RulesetError as exc:
        print_diagnostics(exc)
        raise typer.Exit(code=1) from None
    try:
        inputs = PricingInputs.model_validate_json(item.read_bytes())
        wanted = Segment.parse(segment)
    except (OSError, ValidationError, ValueError) as exc:
        Console(stderr=True).print(f"{item}: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(code=1) from None
    check_segment(ruleset.segments, wanted)
    compiled = CompiledRuleset(ruleset)
    moment = parse_instant(at, ZoneInfo(ruleset.timezone))
    decisions = schedule(compiled, inputs, moment, segment=wanted)
    print_decisions(compiled, inputs, decisions, as_json=as_json)
