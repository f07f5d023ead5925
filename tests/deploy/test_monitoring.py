"""deploy/prometheus and deploy/grafana: every metric they use is one the service exports,
and every alert has a runbook section and promtool tests firing and not firing. The
promtool checks themselves run in .ci/run (`promtool test rules` takes a while)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY

import pricing_service.cli  # noqa: F401  (imports every role, so every metric is registered)
from pricing_service.metrics import ONE_ROLE_METRICS
from tests.deploy.files import DASHBOARD_FILE, PROMETHEUS, RUNBOOKS, load_yaml

#: Series Prometheus makes itself rather than scraping them.
PROMETHEUS_SERIES = {"up"}
#: The sample names each metric type exports, from its family name.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}
_SELECTED_NAME = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{")
_SERVICE_NAME = re.compile(r"\bpricing[_:][a-zA-Z0-9_:]*")
_LABEL_MATCHERS = re.compile(r"\{[^}]*\}")
_HEADING = re.compile(r"^#+\s+(.+?)\s*$", re.MULTILINE)


def exported_series() -> set[str]:
    names = set()
    for make in ONE_ROLE_METRICS:  # made on first use by their role: make them all here
        make()
    for family in REGISTRY.collect():
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ("",))}
    return names


def metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression reads (label values and strings left out)."""
    without_matchers = _LABEL_MATCHERS.sub("{}", expr)
    return set(_SELECTED_NAME.findall(expr)) | set(_SERVICE_NAME.findall(without_matchers))


def rules() -> list[dict[str, Any]]:
    return [
        rule for group in load_yaml(PROMETHEUS / "alerts.yml")["groups"] for rule in group["rules"]
    ]


def alerts() -> list[dict[str, Any]]:
    return [rule for rule in rules() if "alert" in rule]


def dashboard_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from dashboard_panels(panel.get("panels", []))


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD_FILE.read_text(encoding="utf-8")))


def dashboard_exprs() -> list[str]:
    return [
        target["expr"]
        for panel in dashboard_panels(dashboard()["panels"])
        for target in panel.get("targets", [])
    ]


def test_the_name_extraction_sees_names_not_label_values() -> None:
    expr = 'sum(rate(pricing_a_total{job=~"pricing-x",route="/v1/pricing_b"}[5m])) / up{} > 0'
    assert metric_names(expr) == {"pricing_a_total", "up"}


def test_alert_rules_use_only_exported_metrics() -> None:
    known = exported_series() | PROMETHEUS_SERIES
    recorded = {rule["record"] for rule in rules() if "record" in rule}
    for rule in rules():
        unknown = metric_names(rule["expr"]) - known - recorded
        assert not unknown, f"{rule.get('alert') or rule.get('record')}: {unknown}"


def test_dashboard_uses_only_exported_metrics() -> None:
    known = exported_series() | PROMETHEUS_SERIES
    exprs = dashboard_exprs()
    assert exprs
    for expr in exprs:
        assert not metric_names(expr) - known, expr


def test_dashboard_panels_read_the_data_source_variable() -> None:
    board = dashboard()
    panels = [p for p in dashboard_panels(board["panels"]) if p["type"] != "row"]
    assert len({p["id"] for p in panels}) == len(panels)
    variables = {v["name"] for v in board["templating"]["list"]}
    assert "datasource" in variables
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_every_alert_has_a_runbook_section() -> None:
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        for heading in _HEADING.findall(RUNBOOKS.read_text(encoding="utf-8"))
    }
    for alert in alerts():
        url = alert["annotations"]["runbook_url"]
        path, _, anchor = url.partition("#")
        assert path == "docs/runbooks.md", alert["alert"]
        assert anchor in anchors, f"{alert['alert']}: no section #{anchor} in {RUNBOOKS.name}"


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    cases = [
        case
        for test in load_yaml(PROMETHEUS / "alerts_test.yml")["tests"]
        for case in test["alert_rule_test"]
    ]
    for alert in alerts():
        name = alert["alert"]
        outcomes = {bool(case["exp_alerts"]) for case in cases if case["alertname"] == name}
        assert outcomes == {True, False}, f"{name}: tested {outcomes or 'never'}"
