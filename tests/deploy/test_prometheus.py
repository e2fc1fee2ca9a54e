"""Prometheus config, alert rules and the Grafana dashboard, checked by promtool and by name."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.core.metrics import Metrics
from tests.deploy import compose_file

REPO = compose_file.REPO
PROMETHEUS = REPO / "docker" / "prometheus"
GRAFANA = REPO / "docker" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "llamarada.json"
METRIC = re.compile(r"\bllama_[a-z0-9_]+\b")
# Grafana's variables, replaced by values Prometheus accepts so promtool can parse the query.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$model": ".*"}


@pytest.fixture(scope="module")
def promtool() -> str:
    """The promtool binary (Debian package `prometheus`)."""
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed: apt-get install prometheus")
    return binary


def run_promtool(promtool: str, *args: str, cwd: Path = PROMETHEUS) -> str:
    done = subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def exported_metrics() -> set[str]:
    """Metric names in the exposition the gateway serves on /metrics."""
    text = Metrics().render().decode()
    return set(re.findall(r"^# TYPE (\S+) \S+$", text, re.MULTILINE))


def family(name: str, known: set[str]) -> str:
    """The metric a sample name belongs to (`x_bucket` of histogram `x`)."""
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name.removesuffix(suffix) in known:
            return name.removesuffix(suffix)
    return name


def dashboard_panels() -> list[dict[str, Any]]:
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard_panels() for t in p.get("targets", [])]
    exprs += [v["query"]["query"] for v in dashboard["templating"]["list"]]
    return exprs


def alert_expressions() -> list[str]:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def test_prometheus_config_is_valid(promtool: str) -> None:
    out = run_promtool(promtool, "check", "config", "prometheus.yml")
    assert "SUCCESS: 1 rule files found" in out


def test_prometheus_rules_are_valid(promtool: str) -> None:
    assert "SUCCESS" in run_promtool(promtool, "check", "rules", "alerts.yml")


def test_prometheus_alerts_fire_on_synthetic_series(promtool: str) -> None:
    assert "SUCCESS" in run_promtool(promtool, "test", "rules", "alerts_test.yml")


def test_prometheus_every_alert_has_a_unit_test() -> None:
    groups = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
    alerts = {rule["alert"] for group in groups for rule in group["rules"]}
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    assert alerts == fired
    assert {"LlamaradaHighErrorRate", "LlamaradaBackendDown", "LlamaradaHighLatencyP95"} <= alerts
    assert {"LlamaradaCacheErrors", "LlamaradaBatchQueueGrowing"} <= alerts


def test_prometheus_scrapes_api_and_worker_from_the_rules_it_loads() -> None:
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    api = jobs["llamarada-api"]["dns_sd_configs"][0]
    worker = jobs["llamarada-worker"]["dns_sd_configs"][0]
    assert (api["names"], api["port"]) == (["api"], 8000)
    assert (worker["names"], worker["port"]) == (["worker"], 9100)
    services = compose_file.load()["services"]
    assert "9100/metrics" in " ".join(services["worker"]["healthcheck"]["test"])


@pytest.mark.parametrize("source", ["alerts", "dashboard"])
def test_prometheus_queries_use_only_metrics_the_app_exports(source: str) -> None:
    exprs = alert_expressions() if source == "alerts" else dashboard_expressions()
    known = exported_metrics()
    used = {family(name, known) for expr in exprs for name in METRIC.findall(expr)}
    assert used, "no llama_* metric found"
    assert used <= known, f"not exported: {sorted(used - known)}"


def test_prometheus_contract_metrics_are_exported() -> None:
    contract = {
        "llama_requests_total",
        "llama_request_duration_seconds",
        "llama_active_requests",
        "llama_cache_requests_total",
        "llama_tokens_total",
        "llama_time_to_first_token_seconds",
        "llama_upstream_errors_total",
        "llama_backend_up",
    }
    assert contract <= exported_metrics()


def test_grafana_dashboard_queries_are_valid_promql(promtool: str, tmp_path: Path) -> None:
    rules = []
    for n, expr in enumerate(dashboard_expressions()):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        expr = re.sub(r"^label_values\((\w+), \w+\)$", r"\1", expr)
        rules.append({"record": f"dashboard:query_{n}", "expr": expr})
    (tmp_path / "dashboard.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "d", "rules": rules}]})
    )
    assert "SUCCESS" in run_promtool(promtool, "check", "rules", "dashboard.yml", cwd=tmp_path)


def test_grafana_dashboard_uses_the_provisioned_datasource() -> None:
    datasources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )["datasources"]
    (prometheus,) = datasources
    assert prometheus["url"] == "http://prometheus:9090"
    for panel in dashboard_panels():
        assert panel["datasource"]["uid"] == prometheus["uid"], panel["title"]
        assert panel["targets"], panel["title"]


def test_grafana_dashboard_provider_reads_the_mounted_folder() -> None:
    providers = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "llamarada.yml").read_text()
    )["providers"]
    grafana = compose_file.load()["services"]["grafana"]
    mounted = {v.split(":")[1] for v in grafana["volumes"] if v.startswith("./docker/grafana/dash")}
    assert {p["options"]["path"] for p in providers} == mounted
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "llamarada"
    ids = [p["id"] for p in json.loads(DASHBOARD.read_text())["panels"]]
    assert len(ids) == len(set(ids))
