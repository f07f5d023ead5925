"""deploy/k8s and deploy/docker-compose.yml: valid against the Kubernetes schemas, and
consistent with the service they run (its commands, settings, ports and rules)."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import kubernetes_validate
import pytest

from tests.deploy.files import (
    COMPOSE_FILE,
    K8S,
    PROMETHEUS,
    ROLES,
    ROOT,
    containers,
    k8s_documents,
    k8s_objects,
    load_yaml,
    parse_pricing_command,
    setting_variables,
)

#: The oldest Kubernetes the manifests support, and the newest the package knows.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
#: Custom resources: no schema in the package; their structure is checked below.
CUSTOM_KINDS = {"ServiceMonitor"}
#: Each role's metrics port: the one its settings default to (settings.py).
METRICS_PORTS = {"serve": 8000, "repricer": 9101, "scheduler": 9102, "crawl": 9103}


def _id(document: tuple[str, dict[str, Any]]) -> str:
    path, body = document
    return f"{path}:{body['kind']}/{body['metadata']['name']}"


def _role(container: dict[str, Any]) -> str:
    return str(container["args"][0])


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("document", k8s_documents(), ids=_id)
def test_each_object_is_valid_for_kubernetes(
    document: tuple[str, dict[str, Any]], version: str
) -> None:
    _, body = document
    if body["kind"] in CUSTOM_KINDS:
        pytest.skip("a CRD: no bundled schema; test_service_monitor_... checks it")
    kubernetes_validate.validate(body, version, strict=True)


def test_kustomization_lists_every_manifest_and_every_rule_file() -> None:
    kustomization = load_yaml(K8S / "kustomization.yaml")
    manifests = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests
    (rules,) = kustomization["configMapGenerator"]
    assert rules["name"] == "pricing-rules"
    # Updated in place, so that mounted pods see the edit and hot-reload it.
    assert rules["options"]["disableNameSuffixHash"] is True
    listed = {(K8S / name).resolve() for name in rules["files"]}
    assert listed == {path.resolve() for path in (ROOT / "rules").glob("*.yaml")}


def test_each_deployment_runs_a_real_role_with_its_metrics_port() -> None:
    roles = []
    for deployment in k8s_objects("Deployment"):
        (container,) = containers(deployment)
        assert parse_pricing_command(container["args"]) in ROLES
        roles.append(_role(container))
        ports = {port["name"]: port["containerPort"] for port in container["ports"]}
        assert METRICS_PORTS[_role(container)] in ports.values()
        template = deployment["spec"]["template"]
        assert template["metadata"]["labels"] == deployment["spec"]["selector"]["matchLabels"]
        security = template["spec"]["securityContext"]
        assert security["runAsNonRoot"] is True
    assert sorted(roles) == sorted(ROLES)


def test_the_api_has_probes_an_autoscaler_a_budget_and_a_service() -> None:
    (api,) = (d for d in k8s_objects("Deployment") if _role(containers(d)[0]) == "serve")
    (container,) = containers(api)
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    (autoscaler,) = k8s_objects("HorizontalPodAutoscaler")
    assert autoscaler["spec"]["scaleTargetRef"]["name"] == api["metadata"]["name"]
    labels = api["spec"]["selector"]["matchLabels"]
    budgets = [pdb["spec"]["selector"]["matchLabels"] for pdb in k8s_objects("PodDisruptionBudget")]
    assert labels in budgets
    services = [s for s in k8s_objects("Service") if s["spec"]["selector"] == labels]
    assert services, "no Service selects the API pods"


def test_the_scheduler_never_runs_twice_in_a_rollout() -> None:
    (scheduler,) = (d for d in k8s_objects("Deployment") if _role(containers(d)[0]) == "scheduler")
    assert scheduler["spec"]["replicas"] == 1
    assert scheduler["spec"]["strategy"]["type"] == "Recreate"


def test_rules_are_mounted_as_a_whole_configmap_directory() -> None:
    """subPath mounts never see a ConfigMap update: the hot reload would not happen."""
    config = next(k8s_objects("ConfigMap"))
    rules_dir = config["data"]["PRICING_RULES_DIR"]
    for deployment in k8s_objects("Deployment"):
        (container,) = containers(deployment)
        if _role(container) == "scheduler":
            continue  # it reads no rules
        (mount,) = (m for m in container["volumeMounts"] if m["mountPath"] == rules_dir)
        assert "subPath" not in mount
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        assert volumes[mount["name"]]["configMap"]["name"] == "pricing-rules"


def test_api_keys_come_from_the_secret() -> None:
    (secret,) = k8s_objects("Secret")
    assert "PRICING_API_KEYS" in secret["stringData"]
    (api,) = (d for d in k8s_objects("Deployment") if _role(containers(d)[0]) == "serve")
    sources = containers(api)[0]["envFrom"]
    assert {"secretRef": {"name": secret["metadata"]["name"]}} in sources


def test_configured_variables_are_real_settings() -> None:
    """A misspelt variable would be ignored silently (settings ignore unknown ones)."""
    known = setting_variables()
    config = next(k8s_objects("ConfigMap"))
    assert set(config["data"]) <= known
    (secret,) = k8s_objects("Secret")
    assert set(secret["stringData"]) <= known
    for name, service in _pricing_services().items():
        assert set(service["environment"]) <= known, name


def test_service_monitor_scrapes_every_role_under_the_prometheus_job_names() -> None:
    (monitor,) = k8s_objects("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selector = monitor["spec"]["selector"]["matchLabels"]
    services = [
        s
        for s in k8s_objects("Service")
        if selector.items() <= s["metadata"].get("labels", {}).items()
    ]
    scraped_ports = {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]}
    served_ports = {port["name"] for s in services for port in s["spec"]["ports"]}
    assert scraped_ports <= served_ports
    # Each role's pods expose a port that one of those Services targets by name.
    targeted = {port["targetPort"] for s in services for port in s["spec"]["ports"]}
    for deployment in k8s_objects("Deployment"):
        names = {port["name"] for port in containers(deployment)[0]["ports"]}
        assert names & targeted, deployment["metadata"]["name"]
    prometheus_jobs = {
        job["job_name"] for job in load_yaml(PROMETHEUS / "prometheus.yml")["scrape_configs"]
    }
    for endpoint in monitor["spec"]["endpoints"]:
        (relabel,) = endpoint["relabelings"]
        assert relabel["targetLabel"] == "job"
        for deployment in k8s_objects("Deployment"):
            component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
            assert relabel["replacement"].replace("$1", component) in prometheus_jobs


# -- docker compose -----------------------------------------------------------------------------


def _pricing_services() -> dict[str, dict[str, Any]]:
    services = load_yaml(COMPOSE_FILE)["services"]
    return {name: s for name, s in services.items() if "pricing-service" in s.get("image", "")}


def test_compose_runs_every_role_and_two_crawlers() -> None:
    commands = [parse_pricing_command(s["command"]) for s in _pricing_services().values()]
    assert sorted(set(commands)) == sorted(ROLES)
    assert commands.count("crawl") == 2


def test_compose_services_wait_for_a_healthy_redis_and_have_health_checks() -> None:
    services = load_yaml(COMPOSE_FILE)["services"]
    redis_command = services["redis"]["command"]
    assert redis_command[redis_command.index("--appendonly") + 1] == "yes"
    assert "healthcheck" in services["redis"]
    for name, service in _pricing_services().items():
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert service["healthcheck"]["test"][:2] == ["CMD", "pricing-healthcheck"], name
        assert service["volumes"] == ["../rules:/app/rules:ro"], name
    for name in ("prometheus", "grafana"):
        assert "healthcheck" in services[name]


def test_prometheus_scrapes_every_compose_service_on_its_metrics_port() -> None:
    targets = {
        target
        for job in load_yaml(PROMETHEUS / "prometheus.yml")["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    for name, service in _pricing_services().items():
        role = parse_pricing_command(service["command"])
        assert f"{name}:{METRICS_PORTS[role]}" in targets, name
        # ... and its health check asks that same port.
        assert f":{METRICS_PORTS[role]}/" in service["healthcheck"]["test"][2]


def test_compose_mounts_files_that_exist() -> None:
    for name, service in load_yaml(COMPOSE_FILE)["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (COMPOSE_FILE.parent / source).exists(), f"{name}: {source}"
    assert (
        COMPOSE_FILE.parent
        / load_yaml(COMPOSE_FILE)["x-pricing-service"]["build"]["context"]
        / "Dockerfile"
    ).is_file()


def test_the_image_copies_what_exists_and_the_build_context_holds() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    kept = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    }
    for line in dockerfile.splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            for source in (w for w in words[1:-1] if not w.startswith("--")):
                assert (ROOT / source).exists(), line
                assert source.rstrip("/") in kept, f"{source} is left out of the build context"


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_lock_pins_every_runtime_dependency() -> None:
    """The image installs exactly requirements.lock (offline, --no-index): a dependency
    added to pyproject.toml and not to the lock would fail the build. Regenerate it with
    deploy/lock-requirements.sh."""
    lines = (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines()
    pins = [line for line in lines if line and not line.startswith("#")]
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[A-Za-z0-9_.+!-]+", pin) for pin in pins), pins
    pinned = {_normalized(pin.split("==")[0]) for pin in pins}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    for requirement in project["project"]["dependencies"]:
        name = re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0]
        assert _normalized(name) in pinned, f"{name} is not in requirements.lock"
