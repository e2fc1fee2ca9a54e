"""deploy/helm/llamarada rendered by Helm's own engine (helm-python-sdk), each object checked
against the Kubernetes API schemas (kubernetes-validate) and scanned by checkov, for the default
values and for ci/all-on-values.yaml; and the chart read against docker-compose.yml."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from app.core.config import ENV_PREFIX
from tests.deploy import compose_file
from tests.deploy.test_compose import setting_variables

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "llamarada"
ALL_ON = CHART / "ci" / "all-on-values.yaml"
KUBERNETES = "1.32"  # the API version the objects are validated against
NAMESPACE = "llamarada"
VALUE_SETS = ["default", "all-on"]
# Kinds whose schemas come with an operator (CRDs), not with Kubernetes.
CUSTOM_KINDS = {"ServiceMonitor"}
# Set by the chart from the services it runs (or mounts), not copied from compose.
CHART_COMPUTED = {"OLLAMA_URLS", "REDIS_URL", "CHROMA_URL", "DATA_DIR", "API_KEYS_FILE"}


def values(name: str) -> dict[str, Any] | None:
    """The values of a named set (None: the chart's defaults)."""
    return None if name == "default" else yaml.safe_load(ALL_ON.read_text())


@cache
def rendered(name: str) -> dict[str, str]:
    """Template path -> manifest text, as `helm template` renders it."""
    chart = helm.Chart.load(str(CHART))
    return chart.render(values(name), name=NAMESPACE, namespace=NAMESPACE, is_install=True)


def objects(name: str) -> list[dict[str, Any]]:
    """Every rendered Kubernetes object."""
    found = []
    for text in rendered(name).values():
        found += [doc for doc in yaml.safe_load_all(text) if doc]
    return found


def one(name: str, kind: str, suffix: str) -> dict[str, Any]:
    """The object of a kind whose name ends with `suffix`."""
    matches = [
        o for o in objects(name) if o["kind"] == kind and o["metadata"]["name"].endswith(suffix)
    ]
    assert len(matches) == 1, f"{kind} *{suffix}: {len(matches)} found"
    return matches[0]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    """A workload's pod spec."""
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def config(name: str) -> dict[str, str]:
    """The settings ConfigMap's data."""
    data: dict[str, str] = one(name, "ConfigMap", "-config")["data"]
    return data


@pytest.mark.parametrize("name", VALUE_SETS)
def test_helm_chart_objects_match_the_kubernetes_schemas(name: str) -> None:
    kinds = set()
    for obj in objects(name):
        kinds.add(obj["kind"])
        if obj["kind"] in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(obj, KUBERNETES, strict=True)
    expected = {
        "Deployment", "StatefulSet", "Service", "HorizontalPodAutoscaler",
        "PodDisruptionBudget", "Job", "Ingress", "NetworkPolicy", "ConfigMap", "ServiceAccount",
    }  # fmt: skip
    assert expected <= kinds
    if name == "all-on":
        assert {"ServiceMonitor", "Secret"} <= kinds


def test_helm_chart_lints_clean() -> None:
    for name in VALUE_SETS:
        report = helm.lint(str(CHART), values(name), strict=True, namespace=NAMESPACE)
        assert not report["errors"]
        assert not [m for m in report["messages"] if m["severity"] >= 2], report


def checkov() -> str:
    """The checkov executable: CHECKOV, the Makefile's venv, or one on PATH."""
    for candidate in (
        os.environ.get("CHECKOV"),
        str(REPO / ".venv-checkov" / "bin" / "checkov"),
        shutil.which("checkov"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("checkov is not installed (`make test` installs it in .venv-checkov)")


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", VALUE_SETS)
def test_helm_chart_passes_checkov(name: str, tmp_path: Path) -> None:
    for template, text in rendered(name).items():
        if text.strip():
            (tmp_path / Path(template).name).write_text(text)
    done = subprocess.run(
        [checkov(), "-d", str(tmp_path), "--framework", "kubernetes", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    report = json.loads(done.stdout)
    results = report["results"]
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in results["failed_checks"]
    ]
    assert not failed, "\n".join(failed)
    assert report["summary"]["passed"] > 100
    for skipped in results["skipped_checks"]:  # each waiver in the chart gives its reason
        assert len(skipped["check_result"].get("suppress_comment") or "") > 20, skipped["check_id"]


@pytest.mark.parametrize("name", VALUE_SETS)
def test_helm_chart_containers_are_locked_down(name: str) -> None:
    workloads = [o for o in objects(name) if o["kind"] in ("Deployment", "StatefulSet", "Job")]
    assert len(workloads) >= 5
    for workload in workloads:
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["automountServiceAccountToken"] is False
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, container["name"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), container["name"]


def test_helm_chart_api_probes_scale_and_disruption_budget() -> None:
    api = pod_spec(one("default", "Deployment", "-api"))["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert api["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert one("default", "HorizontalPodAutoscaler", "-api")["spec"]["maxReplicas"] > 1
    assert one("default", "PodDisruptionBudget", "-api")["spec"]["minAvailable"] == 1
    ollama = pod_spec(one("default", "StatefulSet", "-ollama"))["containers"][0]
    assert ollama["resources"]["limits"]["nvidia.com/gpu"] == 1
    for store in ("-ollama", "-redis", "-chroma"):
        assert one("default", "StatefulSet", store)["spec"]["volumeClaimTemplates"]
    job = one("default", "Job", "-models")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    assert pod_spec(job)["containers"][0]["command"] == ["python", "-m", "app.bootstrap", "ollama"]


def test_helm_chart_api_keys_come_from_a_mounted_secret() -> None:
    data = config("all-on")
    assert "LLAMARADA_API_KEYS" not in data
    secret = one("all-on", "Secret", "-api-keys")
    entries = secret["stringData"]["keys"].split()
    assert entries == ["ops:sk-ops-0123456789;admin", "app:sk-app-0123456789;rpm=60"]
    api = pod_spec(one("all-on", "Deployment", "-api"))
    mounts = {m["name"]: m["mountPath"] for m in api["containers"][0]["volumeMounts"]}
    assert data["LLAMARADA_API_KEYS_FILE"] == f"{mounts['keys']}/keys"
    keys_volume = next(v for v in api["volumes"] if v["name"] == "keys")
    assert keys_volume["secret"]["secretName"] == secret["metadata"]["name"]


@pytest.mark.parametrize("name", VALUE_SETS)
def test_helm_chart_settings_are_real_settings(name: str) -> None:
    known = setting_variables()
    data = config(name)
    unknown = {k for k in data if k.startswith(ENV_PREFIX)} - known
    assert not unknown, f"the chart sets variables nothing reads: {sorted(unknown)}"


def test_helm_chart_and_compose_configure_the_same_settings_the_same_way() -> None:
    compose = compose_file.environment("api", {"LLAMARADA_API_KEYS": "k"})
    compose_names = {k.removeprefix(ENV_PREFIX) for k in compose if k.startswith(ENV_PREFIX)}
    compose_names.add("OLLAMA_WAIT_TIMEOUT")  # compose sets it under Ollama's unprefixed name
    compose["LLAMARADA_OLLAMA_WAIT_TIMEOUT"] = compose.pop("OLLAMA_WAIT_TIMEOUT")
    chart = config("default")
    chart_names = {k.removeprefix(ENV_PREFIX) for k in chart if k.startswith(ENV_PREFIX)}
    assert compose_names - {"API_KEYS"} - CHART_COMPUTED == chart_names - CHART_COMPUTED
    for setting in chart_names - CHART_COMPUTED:
        variable = ENV_PREFIX + setting
        assert chart[variable] == compose[variable], variable


def seconds(duration: str) -> int:
    """Compose's `35s` in seconds."""
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, duration
    return int(match.group(1))


@pytest.mark.parametrize("name", VALUE_SETS)
def test_helm_chart_and_compose_grace_periods_follow_the_drain_deadline(name: str) -> None:
    deadline = int(config(name)["LLAMARADA_SERVER__DRAIN_TIMEOUT"])
    chart_values = yaml.safe_load((CHART / "values.yaml").read_text())
    pre_stop = chart_values["drain"]["preStopSeconds"]
    api = pod_spec(one(name, "Deployment", "-api"))
    worker = pod_spec(one(name, "Deployment", "-worker"))
    assert api["terminationGracePeriodSeconds"] == pre_stop + deadline + 5
    assert api["containers"][0]["lifecycle"]["preStop"]["exec"]["command"] == [
        "sleep",
        str(pre_stop),
    ]
    assert worker["terminationGracePeriodSeconds"] == deadline + 5
    services = compose_file.load()["services"]
    compose_deadline = int(
        compose_file.environment("api", {"LLAMARADA_API_KEYS": "k"})[
            "LLAMARADA_SERVER__DRAIN_TIMEOUT"
        ]
    )
    for service in ("api", "worker"):
        assert seconds(services[service]["stop_grace_period"]) == compose_deadline + 5


def test_helm_chart_ingress_streams_like_the_projects_nginx() -> None:
    ingress = one("default", "Ingress", NAMESPACE)
    notes = ingress["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert notes["nginx.ingress.kubernetes.io/proxy-request-buffering"] == "off"
    nginx = (REPO / "nginx" / "nginx.conf.template").read_text()
    read_timeout = int(re.search(r"proxy_read_timeout (\d+)s", nginx).group(1))  # type: ignore[union-attr]
    assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= read_timeout
    bodies = [int(size) for size in re.findall(r"client_max_body_size (\d+)m", nginx)]
    assert notes["nginx.ingress.kubernetes.io/proxy-body-size"] == f"{max(bodies)}m"
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"].endswith("-api")


@pytest.mark.parametrize("name", VALUE_SETS)
def test_helm_chart_network_policies_admit_only_the_gateway(name: str) -> None:
    policies = {o["metadata"]["name"]: o for o in objects(name) if o["kind"] == "NetworkPolicy"}
    workloads = [o for o in objects(name) if o["kind"] in ("Deployment", "StatefulSet", "Job")]
    for workload in workloads:  # every pod is covered by a policy
        component = workload["metadata"]["labels"]["app.kubernetes.io/component"]
        assert any(p.endswith(f"-{component}") for p in policies), component
    api_sources = policies[f"{NAMESPACE}-api"]["spec"]["ingress"][0]["from"]
    assert all("namespaceSelector" in source for source in api_sources)  # the ingress, Prometheus
    for backend in ("ollama", "redis", "chroma"):
        policy = policies.get(f"{NAMESPACE}-{backend}")
        if policy is None:
            assert name == "all-on"
            assert backend == "redis"  # external Redis in that set
            continue
        clients = {
            source["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
            for source in policy["spec"]["ingress"][0]["from"]
        }
        expected = {"api", "worker", "models"} if backend == "ollama" else {"api", "worker"}
        assert clients == expected, backend


def test_helm_chart_dashboard_is_the_projects_dashboard() -> None:
    shipped = (REPO / "docker" / "grafana" / "dashboards" / "llamarada.json").read_text()
    assert (CHART / "dashboards" / "llamarada.json").read_text() == shipped
    dashboard = one("all-on", "ConfigMap", "-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["llamarada.json"]) == json.loads(shipped)
    monitor = one("all-on", "ServiceMonitor", NAMESPACE)
    assert {e["port"] for e in monitor["spec"]["endpoints"]} == {"http", "metrics"}


def test_helm_chart_external_redis_url_is_a_secret() -> None:
    assert "LLAMARADA_REDIS_URL" not in config("all-on")
    api = pod_spec(one("all-on", "Deployment", "-api"))["containers"][0]
    [variable] = [e for e in api["env"] if e["name"] == "LLAMARADA_REDIS_URL"]
    secret = one("all-on", "Secret", "-redis-url")
    assert variable["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
    assert config("default")["LLAMARADA_REDIS_URL"] == f"redis://{NAMESPACE}-redis:6379/0"
