"""`pricing rules …`: validate rule files and emit their JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from pricing_service.rules.diagnostics import has_errors
from pricing_service.rules.loader import check_ruleset
from pricing_service.rules.model import RuleFile, Ruleset

app = typer.Typer(help="Validate the pricing team's rule files and emit their JSON Schema.")

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


@app.command()
def validate(
    path: Path = typer.Argument(
        Path("rules"), help="A folder of rule files (*.yaml, *.yml) or a single rule file."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON object with every diagnostic, for machines."
    ),
) -> None:
    """Check rule files and print every problem as file:line:column: severity: message.

    Exits with 1 when there is any error, 0 when there are only warnings or none.
    """
    ruleset, diagnostics = check_ruleset(path)
    failed = has_errors(diagnostics)
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
        _print_summary(path, errors, warnings, ruleset)
    if failed:
        raise typer.Exit(1)


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
