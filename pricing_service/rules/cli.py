"""`pricing rules …`: validate rule files, preview what they would change, and emit their
JSON Schema."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from pricing_service.engine.cli import AtOption, parse_instant
from pricing_service.engine.compiled import CompiledRuleset
from pricing_service.repricer.cli import run_with_store
from pricing_service.rules.diagnostics import has_errors
from pricing_service.rules.loader import check_ruleset
from pricing_service.rules.model import RuleFile, Ruleset
from pricing_service.rules.preview import (
    HEADING_REPRICES,
    CataloguePreview,
    PriceChangePreview,
    preview_catalogue,
)
from pricing_service.settings import get_settings
from pricing_service.store.store import Store

app = typer.Typer(
    help="Validate the pricing team's rule files, preview their effect, emit their JSON Schema."
)

#: Exit status of ``pricing rules preview`` when a change exceeds ``--fail-above``: 1 is
#: taken by invalid rules, 2 by usage errors.
EXIT_CHANGE_TOO_LARGE = 3

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


@app.command()
def validate(
    path: Path = typer.Argument(
        Path("rules"), help="A folder of rule files (*.yaml, *.yml) or a single rule file."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON object with every diagnostic, for machines."
    ),
    strict: bool = typer.Option(
        False,
        "--strict",
        help="Fail on warnings too (a shadowed rule, a guardrail that does nothing...): "
        "for the rule files' own CI.",
    ),
) -> None:
    """Check rule files and print every problem as file:line:column: severity: message.

    Exits with 1 when there is any error (with --strict, any warning), else 0.
    """
    ruleset, diagnostics = check_ruleset(path)
    failed = has_errors(diagnostics) or (strict and bool(diagnostics))
    errors = sum(d.severity == "error" for d in diagnostics)
    warnings = len(diagnostics) - errors
    if as_json:
        report = {
            "valid": not failed,
            "version": ruleset.version if ruleset is not None else None,
            "errors": errors,
            "warnings": warnings,
            "diagnostics": [d.as_dict() for d in diagnostics],
        }
        typer.echo(json.dumps(report, indent=2))
    else:
        # Plain echo: messages quote YAML such as [a, b], which rich would take as markup.
        for diagnostic in diagnostics:
            typer.echo(str(diagnostic))
        _print_summary(path, errors, warnings, None if failed else ruleset)
    if failed:
        raise typer.Exit(1)


def _percent(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise typer.BadParameter(f"not a number: {text!r}") from None
    if not value.is_finite() or value < 0:
        raise typer.BadParameter(f"give a percentage of 0 or more, not {text!r}")
    return value


@app.command()
def preview(
    path: Annotated[
        Path, typer.Argument(help="The candidate rule files: a folder or a single rule file.")
    ] = Path("rules"),
    sku: Annotated[
        list[str] | None,
        typer.Option("--sku", help="Preview this SKU (repeat the option); default every SKU."),
    ] = None,
    at: AtOption = None,
    top: Annotated[int, typer.Option(min=0, help="Largest changes to list.")] = 20,
    fail_above: Annotated[
        Decimal | None,
        typer.Option(
            parser=_percent,
            metavar="PERCENT",
            help=f"Exit with {EXIT_CHANGE_TOO_LARGE} when a price would move by more than "
            "this many per cent: a gate for the rule files' own CI.",
        ),
    ] = None,
    against: Annotated[
        Path | None,
        typer.Option(
            help="Compare with the prices these rule files give the same inputs at the same "
            "instant (e.g. main's rules/), not with the prices in force: the edit's own effect, "
            "without the moves already under way.",
            exists=True,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object with every change.")
    ] = False,
) -> None:
    """Show which prices in force the candidate rules would change, per SKU and segment.

    Reads the store (REDIS_URL, or the embedded Redis) and publishes nothing. Each SKU is
    priced from its stored inputs in every segment the candidate (or, with --against, the
    other rules) distinguishes, at the instant given (default now), and compared with the
    price published for that instant (or, with --against, with the price the other rules
    give). A segment the candidate no longer prices on its own is shown with the segment
    whose price its lookups would get ("tier:member → default").
    """
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    compiled = _checked(path, err, "the candidate rules")
    baseline = None if against is None else _checked(against, err, "the rules to compare with")
    moment = parse_instant(at, ZoneInfo(compiled.ruleset.timezone))

    async def work(store: Store) -> CataloguePreview:
        if sku:
            return await preview_catalogue(store, compiled, moment, sku, baseline=baseline)
        columns = (BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
        with Progress(
            *Progress.get_default_columns()[:1], *columns, console=err, transient=True
        ) as progress:
            task = progress.add_task("previewing", total=await store.count_items())
            return await preview_catalogue(
                store,
                compiled,
                moment,
                on_progress=lambda done: progress.advance(task, done),
                baseline=baseline,
            )

    result = run_with_store(get_settings(), work)
    if result.missing:
        err.print(f"not in the catalogue: {', '.join(result.missing)}", markup=False)
    too_large = [
        change
        for change in result.changes
        if fail_above is not None and abs(change.largest_change_percent) > fail_above
    ]
    if as_json:
        document = _preview_document(compiled, moment, result, baseline)
        typer.echo(json.dumps(document, indent=2))
    else:
        _print_preview(compiled, moment, result, top, baseline)
    if result.summary.unmatched_rules:
        err.print(
            f"[bold yellow]![/] {_plural(len(result.summary.unmatched_rules), 'rule')} "
            f"{'covers' if len(result.summary.unmatched_rules) == 1 else 'cover'} none of the "
            "SKUs previewed (names are case-sensitive): "
            + ", ".join(result.summary.unmatched_rules),
            markup=True,
        )
    if result.summary.endings_beyond_currency:
        err.print(
            "[bold yellow]![/] a rounding ending needs more decimal places than the SKUs' "
            "currency has, so their prices are published unrounded: "
            + "; ".join(result.summary.endings_beyond_currency),
            markup=True,
        )
    if result.summary.amounts_like_percentages:
        err.print(
            "[bold yellow]![/] an amount adjustment moved a price by half of it or more "
            '(a forgotten "%"?): ' + "; ".join(result.summary.amounts_like_percentages),
            markup=True,
        )
    raising = [change for change in result.changes if change.discount_raises]
    if raising:
        examples = ", ".join(
            f"{change.sku} {_segment_shown(change)} {change.change_percent:+}% ({change.rule_id})"
            for change in raising[:5]
        )
        err.print(
            f"[bold yellow]![/] {_plural(len(raising), 'price')} would go UP under a discount "
            f"(off a list price above the price compared with): {examples}"
            + (" ..." if len(raising) > 5 else "")
        )
    if too_large:
        largest = max(abs(c.largest_change_percent) for c in too_large)
        err.print(
            f"[bold red]✗[/] {_plural(len(too_large), 'price')} would move by more than "
            f"{fail_above}%, at once or where it is heading (largest {largest}%)"
        )
        raise typer.Exit(EXIT_CHANGE_TOO_LARGE)


def _checked(path: Path, err: Console, what: str) -> CompiledRuleset:
    ruleset, diagnostics = check_ruleset(path)
    for diagnostic in diagnostics:
        err.print(str(diagnostic), markup=False)
    if ruleset is None:
        err.print(f"[bold red]✗[/] {path}: {what} have errors; nothing previewed")
        raise typer.Exit(1)
    return CompiledRuleset(ruleset)


def _change_document(change: PriceChangePreview) -> dict[str, Any]:
    return {
        "sku": change.sku,
        "segment": change.segment,
        "currency": change.currency,
        "current": str(change.current),
        "proposed": str(change.proposed),
        "change": str(change.change),
        "change_percent": str(change.change_percent),
        "rule_id": change.rule_id,
        "strategy": change.strategy,
        "guardrails_fired": list(change.guardrails_fired),
        "answered_by": change.answered_by,
        "heading": None if change.heading is None else str(change.heading),
        "heading_from": None if change.heading_from is None else str(change.heading_from),
        "heading_change_percent": str(change.heading_change_percent),
        "heading_settles": change.heading_settles,
        "heading_until": None if change.heading_until is None else change.heading_until.isoformat(),
    }


def _preview_document(
    compiled: CompiledRuleset,
    at: datetime,
    result: CataloguePreview,
    baseline: CompiledRuleset | None,
) -> Any:
    summary = {
        name: str(value) if isinstance(value, Decimal) else value
        for name, value in asdict(result.summary).items()
    }
    return {
        "version": compiled.version,
        "against": "prices in force" if baseline is None else baseline.version,
        "at": at.isoformat(),
        "summary": summary,
        "changes": [_change_document(change) for change in result.changes],
        "missing": result.missing,
    }


def _print_preview(
    compiled: CompiledRuleset,
    at: datetime,
    result: CataloguePreview,
    top: int,
    baseline: CompiledRuleset | None,
) -> None:
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        # Rich lays a pipe out at 80 columns: a file or a CI log gets the tables whole.
        console.width = _PIPE_WIDTH
    summary = result.summary
    zone = ZoneInfo(compiled.ruleset.timezone)
    local = f"{at.astimezone(zone):%Y-%m-%d %H:%M %Z}"
    compared = "the prices in force" if baseline is None else f"ruleset {baseline.version}"
    console.print(
        f"Preview of ruleset [bold]{compiled.version}[/] at {local} against {compared}: "
        f"{_plural(summary.evaluated, 'SKU and segment')} priced, "
        f"[bold]{summary.changed} would change[/] at the next repricing ({summary.up} up, "
        f"{summary.down} down), {summary.unpriced} without a price to compare."
    )
    if summary.held_short:
        console.print(
            f"[bold]{summary.held_short} {'is' if summary.held_short == 1 else 'are'} held "
            "back[/] short of where the rules take "
            f"{'it' if summary.held_short == 1 else 'them'} (by the step limits, cooldown, "
            "loop protection or an override; inputs as they are now): headings up to "
            f"{summary.max_abs_heading_change_percent}% away."
        )
    if summary.unsettled:
        console.print(
            f"[bold yellow]![/] {_plural(summary.unsettled, 'price')} never settle: still "
            f"moving after {HEADING_REPRICES} repricings with no floor or ceiling to stop at, "
            "or moving in a loop (the last price reached shown with a ~)."
        )
    if any(change.heading_until is not None for change in result.changes):
        console.print(
            "A heading with a time holds until then: the rule, window or adjustment behind "
            "it changes, and the price may never get there."
        )
    # Said once above the tables too, whose narrow segment column may cut the arrow off.
    answered = sorted({_segment_shown(c) for c in result.changes if c.answered_by is not None})
    if answered:
        console.print(
            "Segments the candidate no longer prices on their own, compared at the price "
            f"their lookups would get (that of the segment after the arrow): {', '.join(answered)}."
        )
    if summary.held:
        reasons = ", ".join(f"{name} {count}" for name, count in summary.held.items())
        console.print(f"Unchanged while a guardrail fired: {reasons}.")
    if not result.changes:
        return
    if summary.changed:
        console.print(
            f"Size of the changes: mean {summary.mean_abs_change_percent}%, median "
            f"{summary.median_abs_change_percent}%, largest {summary.max_abs_change_percent}%."
        )
    by_rule: dict[str, list[PriceChangePreview]] = defaultdict(list)
    for change in result.changes:
        by_rule[change.rule_id].append(change)
    rules = Table(title="Changes by rule")
    for column in ("rule", "next", "up", "down", "held short", "largest %"):
        _add_column(rules, column, numeric=column != "rule")
    for rule_id, changes in sorted(by_rule.items(), key=lambda item: (-len(item[1]), item[0])):
        rules.add_row(
            rule_id,
            str(sum(c.change != 0 for c in changes)),
            str(sum(c.change > 0 for c in changes)),
            str(sum(c.change < 0 for c in changes)),
            str(sum(c.held_short for c in changes)),
            str(max(abs(c.largest_change_percent) for c in changes)),
        )
    console.print(rules)
    if top == 0:
        return
    largest = sorted(
        result.changes, key=lambda c: (-abs(c.largest_change_percent), c.sku, c.segment)
    )[:top]
    table = Table(title=f"Largest changes ({len(largest)} of {len(result.changes)})")
    numeric = ("current", "next", "change %", "heading", "heading %")
    for column in ("SKU", "segment", "currency", *numeric, "rule", "guardrails"):
        _add_column(table, column, numeric=column in numeric)
    for change in largest:
        table.add_row(
            change.sku,
            _segment_shown(change),
            change.currency,
            str(change.current),
            str(change.proposed),
            f"{change.change_percent:+}",
            _heading_shown(change, zone),
            f"{change.heading_change_percent:+}",
            change.rule_id,
            ", ".join(change.guardrails_fired),
        )
    console.print(table)


#: Columns the preview's tables may take when the output is not a terminal.
_PIPE_WIDTH = 240


def _heading_shown(change: PriceChangePreview, zone: ZoneInfo) -> str:
    if change.heading is None:
        return "-"
    shown = f"{'' if change.heading_settles else '~'}{change.heading}"
    if change.heading_until is not None:
        shown += f" until {change.heading_until.astimezone(zone):%a %H:%M}"
    return shown


def _add_column(table: Table, heading: str, *, numeric: bool) -> None:
    # Folded, not cut with an ellipsis: a narrow terminal or a pipe (80 columns) must not
    # hide a SKU, a price or a rule id.
    table.add_column(heading, justify="right" if numeric else "left", overflow="fold")


def _segment_shown(change: PriceChangePreview) -> str:
    """The segment, and for one the candidate no longer prices on its own, the segment
    whose price its lookups would get: "channel:app,tier:member → default"."""
    shown = change.segment or "default"
    if change.answered_by is None:
        return shown
    return f"{shown} → {change.answered_by or 'default'}"


def _print_summary(path: Path, errors: int, warnings: int, ruleset: Ruleset | None) -> None:
    console = Console(highlight=False, soft_wrap=True)
    counts = f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')}"
    if ruleset is None:
        console.print(f"[bold red]✗[/] {path}: {counts}")
        return
    console.print(
        f"[bold green]✓[/] {path}: ruleset {ruleset.version} is valid "
        f"({_plural(len(ruleset.rules), 'rule')}, {_plural(len(ruleset.events), 'event')}, "
        f"{_plural(len(ruleset.competitors), 'competitor')}; {counts})"
    )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


@app.command()
def schema(
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the schema to this file instead of printing it."
    ),
) -> None:
    """Print the JSON Schema of a rule file, for editors' completion and checks."""
    text = rule_file_schema_text()
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")


def rule_file_schema_text() -> str:
    """The JSON Schema of one rule file, as committed in ``rules/schema.json``.

    Pydantic emits keys in a deterministic order, so the text only changes with the model.
    """
    generated = RuleFile.model_json_schema(by_alias=True, mode="validation")
    generated.pop("title", None)
    generated.pop("description", None)
    document = {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": "Pricing rule file",
        "description": (
            "One YAML file of the pricing team's rules. All *.yaml files of a folder are "
            "merged into one ruleset; validate them with `pricing rules validate`."
        ),
        **generated,
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
