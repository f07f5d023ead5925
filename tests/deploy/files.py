"""The deployment files under test, loaded once, and what the service says they may use."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import typer.main
import yaml

from crawlers.settings import CrawlerSettings
from pricing_service.cli import app
from pricing_service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
PROMETHEUS = DEPLOY / "prometheus"
DASHBOARD_FILE = DEPLOY / "grafana" / "dashboards" / "pricing.json"
RUNBOOKS = ROOT / "docs" / "runbooks.md"

#: The long-running roles, by the `pricing` command that starts each.
ROLES = ("serve", "repricer", "scheduler", "crawl")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@cache
def k8s_documents() -> tuple[tuple[str, dict[str, Any]], ...]:
    """Every Kubernetes object in deploy/k8s (the kustomization excepted), with its file."""
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document:
                found.append((path.name, document))
    return tuple(found)


def k8s_objects(kind: str) -> Iterator[dict[str, Any]]:
    return (document for _, document in k8s_documents() if document["kind"] == kind)


def containers(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    return list(deployment["spec"]["template"]["spec"]["containers"])


def parse_pricing_command(args: Sequence[str]) -> str:
    """Parse ``pricing ARGS`` as the CLI would, without running it; returns the command's
    name. Raises the CLI's usage error for an unknown command or option, or a bad value."""
    group = typer.main.get_command(app)
    name, *rest = args
    with group.make_context("pricing", list(args)) as parent:
        command = group.get_command(parent, name)  # type: ignore[attr-defined]
        if command is None:
            raise LookupError(f"no such command: pricing {name}")
        with command.make_context(name, rest, parent=parent):
            return name


def setting_variables() -> set[str]:
    """Every environment variable the service's settings read."""
    names = {"REDIS_URL"}
    for settings, prefix in ((Settings, "PRICING_"), (CrawlerSettings, "PRICING_CRAWL_")):
        names |= {prefix + field.upper() for field in settings.model_fields}
    return names
