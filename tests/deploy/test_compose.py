"""docker-compose.yml and compose.override.yml read as data: no Docker engine needed."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import BaseModel

from app import bootstrap
from app.core.config import ENV_PREFIX, Settings
from tests.deploy import compose_file

REPO = compose_file.REPO
COMPOSE = compose_file.load()
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
REQUIRED_SECRETS = {"LLAMARADA_API_KEYS", "GRAFANA_ADMIN_PASSWORD"}
SECRET_NAME = re.compile(r"KEY|PASSWORD|SECRET|TOKEN", re.IGNORECASE)


def setting_variables() -> set[str]:
    """Every environment variable the Settings object reads, nested sections included."""
    names = set()
    for name, info in Settings.model_fields.items():
        names.add(f"{ENV_PREFIX}{name}".upper())
        section = info.annotation
        if isinstance(section, type) and issubclass(section, BaseModel):
            names |= {f"{ENV_PREFIX}{name}__{sub}".upper() for sub in section.model_fields}
    return names


def bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of each bind mount (`./...`) of a service."""
    mounts = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts.append((source, target))
    return mounts


def test_compose_has_no_version_key() -> None:
    assert "version" not in COMPOSE


def test_compose_runs_the_whole_stack() -> None:
    expected = {"ollama", "redis", "chroma", "api", "worker", "nginx", "prometheus", "grafana"}
    assert expected <= set(SERVICES)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_compose_every_service_has_a_healthcheck(name: str) -> None:
    healthcheck = SERVICES[name].get("healthcheck")
    assert healthcheck, f"{name} has no healthcheck"
    assert not healthcheck.get("disable")
    assert healthcheck["test"][0] in {"CMD", "CMD-SHELL"}


def test_compose_only_nginx_publishes_ports() -> None:
    publishing = {name for name, service in SERVICES.items() if service.get("ports")}
    assert publishing == {"nginx"}


def test_compose_override_publishes_on_loopback_only() -> None:
    override = compose_file.load(compose_file.OVERRIDE)["services"]
    assert set(override) <= set(SERVICES)
    for name, service in override.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


@pytest.mark.parametrize(
    ("name", "dependency"),
    [(name, dep) for name, s in SERVICES.items() for dep in s.get("depends_on", {})],
)
def test_compose_dependencies_wait_for_health(name: str, dependency: str) -> None:
    depends_on = SERVICES[name]["depends_on"]
    assert isinstance(depends_on, dict), f"{name}: depends_on must name conditions"
    assert dependency in SERVICES
    assert depends_on[dependency]["condition"] == "service_healthy"
    assert SERVICES[dependency].get("healthcheck")


def test_compose_api_waits_for_its_backing_services() -> None:
    assert {"ollama", "redis", "chroma"} <= set(SERVICES["api"]["depends_on"])
    assert SERVICES["api"]["depends_on"]["ollama-gpu"]["required"] is False


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_compose_images_are_pinned(name: str) -> None:
    image = SERVICES[name]["image"]
    repository, _, tag = image.rpartition(":")
    assert repository, f"{name}: {image} has no tag"
    assert "/" not in tag, f"{name}: {image} has no tag"
    assert tag not in {"latest", ""}, f"{name}: {image} is not pinned"


def test_compose_required_secrets_fail_with_a_message() -> None:
    text = compose_file.COMPOSE.read_text()
    found = {name: op for name, op in compose_file.references(text) if name in REQUIRED_SECRETS}
    assert found == dict.fromkeys(REQUIRED_SECRETS, ":?")
    with pytest.raises(compose_file.MissingVariable, match="set LLAMARADA_API_KEYS"):
        compose_file.environment("api", {})


def test_compose_commits_no_secret_values() -> None:
    for name, service in SERVICES.items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key) and key != "GF_SECURITY_ADMIN_USER":
                assert str(value).startswith("${"), f"{name}: {key} holds a literal value"
    assert not (REPO / ".env").is_file() or ".env" in (REPO / ".gitignore").read_text()


def test_compose_interpolates_fully_with_the_secrets_set() -> None:
    env = dict.fromkeys(REQUIRED_SECRETS, "s3cret")
    rendered = compose_file.interpolate(compose_file.COMPOSE.read_text(), env)
    assert "${" not in rendered
    assert compose_file.environment("api", env)["LLAMARADA_DEFAULT_MODEL"] == "llama3.1:8b"


@pytest.mark.parametrize("name", ["api", "worker"])
def test_compose_llamarada_variables_are_real_settings(name: str) -> None:
    known = setting_variables() | set(bootstrap.ENV_VARS)
    variables = set(SERVICES[name]["environment"])
    unknown = {v for v in variables if v.startswith(ENV_PREFIX)} - known
    assert not unknown, f"{name} sets variables nothing reads: {sorted(unknown)}"
    assert {v for v in variables if not v.startswith(ENV_PREFIX)} <= set(bootstrap.ENV_VARS) | {
        "WEB_CONCURRENCY"
    }


def test_compose_api_and_worker_share_the_image_and_pick_a_role() -> None:
    api, worker = SERVICES["api"], SERVICES["worker"]
    assert api["image"] == worker["image"]
    assert api["build"] == worker["build"] == {"context": ".", "dockerfile": "Dockerfile"}
    assert api["command"] == ["serve"]
    assert worker["command"] == ["worker"]
    assert api["environment"]["LLAMARADA_LLM_BACKEND"] == "ollama"
    for service in (api, worker):
        assert service["read_only"] is True
        assert "no-new-privileges:true" in service["security_opt"]


def test_compose_build_context_and_dockerfile_exist() -> None:
    for name, service in SERVICES.items():
        if "build" in service:
            context = REPO / service["build"]["context"]
            assert (context / service["build"]["dockerfile"]).is_file(), name


@pytest.mark.parametrize(
    ("name", "source", "target"),
    [(name, src, dst) for name, s in SERVICES.items() for src, dst in bind_mounts(s)],
)
def test_compose_bind_mounts_exist(name: str, source: str, target: str) -> None:
    path = REPO / source
    assert path.exists(), f"{name} mounts {source} at {target}, but it is not in the repository"
    if target.endswith((".yml", ".yaml", ".conf", ".template", ".json")):
        assert path.is_file()


def test_compose_named_volumes_are_declared() -> None:
    declared = set(COMPOSE["volumes"])
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} uses undeclared volume {source}"


def test_compose_redis_persists_and_evicts_least_recently_used() -> None:
    command = " ".join(SERVICES["redis"]["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy allkeys-lru" in command
    assert re.search(r"--maxmemory \S+", command)
    assert SERVICES["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]


def test_compose_ollama_keeps_models_and_has_a_gpu_profile() -> None:
    assert SERVICES["ollama"]["healthcheck"]["test"] == ["CMD", "ollama", "list"]
    assert any(v.endswith(":/root/.ollama") for v in SERVICES["ollama"]["volumes"])
    gpu = SERVICES["ollama-gpu"]
    assert gpu["profiles"] == ["gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert device["capabilities"] == ["gpu"]


def test_compose_grafana_is_an_optional_provisioned_profile() -> None:
    grafana = SERVICES["grafana"]
    assert grafana["profiles"] == ["monitoring"]
    targets = {dst: src for src, dst in bind_mounts(grafana)}
    assert targets["/etc/grafana/provisioning"] == "./docker/grafana/provisioning"
    assert targets["/etc/grafana/dashboards"] == "./docker/grafana/dashboards"


def test_compose_nginx_renders_the_projects_template() -> None:
    targets = {dst: src for src, dst in bind_mounts(SERVICES["nginx"])}
    assert targets["/etc/nginx/templates/default.conf.template"] == "./nginx/nginx.conf.template"
    assert targets["/usr/share/nginx/html"] == "./frontend"
    assert SERVICES["nginx"]["depends_on"]["api"]["condition"] == "service_healthy"


def test_compose_prometheus_loads_config_and_rules() -> None:
    targets = {dst: src for src, dst in bind_mounts(SERVICES["prometheus"])}
    assert targets["/etc/prometheus/prometheus.yml"] == "./docker/prometheus/prometheus.yml"
    assert targets["/etc/prometheus/alerts.yml"] == "./docker/prometheus/alerts.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in SERVICES["prometheus"]["command"]
