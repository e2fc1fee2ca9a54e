"""Compose without Docker: the `api` service's start.sh, environment and neighbours, on this host.

Redis is a real redis-server; Ollama is a second Llamarada in embedded mode (a real
Ollama-protocol upstream with a real model); nginx, when the project's template is there, is
the Debian binary with the template Compose mounts. start.sh is started before its upstream
exists, so it must wait for it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import RedisProcess, free_port
from tests.deploy import compose_file

REPO = compose_file.REPO
NGINX_TEMPLATE = REPO / "nginx" / "nginx.conf.template"
API_KEY = "test-key-0123456789abcdef"
MODEL = "smollm2:135m"


@dataclass
class Stack:
    """The running services: where the API answers and where each one logs."""

    api_url: str
    logs: dict[str, Path]


def spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a service in its own process group, logging to a file."""
    with log.open("wb") as out:
        return subprocess.Popen(
            command,
            env=env,
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a service and every process it started (uvicorn workers)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    """Poll `url` until it answers 200; fail with the service's log if it dies or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{log.name} exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{url} not ready after {timeout} s:\n{log.read_text()}")


@pytest.fixture
def stack(tmp_path: Path, redis_server: RedisProcess) -> Iterator[Stack]:
    """start.sh as the api container, then its upstream, both running until the test ends."""
    base_env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin:/bin"]),
        "PYTHONPATH": str(REPO),
        "HOME": str(tmp_path),
    }
    upstream_port, api_port = free_port(), free_port()
    api_env = compose_file.environment("api", {"LLAMARADA_API_KEYS": API_KEY})
    # Host addresses for the compose service names; embedded Chroma instead of the server.
    del api_env["LLAMARADA_CHROMA_URL"]
    empty_models = tmp_path / "models"
    empty_models.mkdir()
    api_env |= {
        "LLAMARADA_OLLAMA_URLS": f"http://127.0.0.1:{upstream_port}",
        "LLAMARADA_REDIS_URL": redis_server.url,
        "LLAMARADA_DATA_DIR": str(tmp_path / "api-data"),
        "LLAMARADA_DEFAULT_MODEL": MODEL,
        "LLAMARADA_MODELS_DIR": str(empty_models),  # the upstream has no /api/create
        "OLLAMA_WAIT_TIMEOUT": "60",
        "PORT": str(api_port),
    }
    logs = {"api": tmp_path / "api.log", "upstream": tmp_path / "upstream.log"}
    api = spawn(["sh", str(REPO / "start.sh")], base_env | api_env, logs["api"])
    upstream_env = base_env | {
        "LLAMARADA_LLM_BACKEND": "embedded",
        "LLAMARADA_DATA_DIR": str(tmp_path / "upstream-data"),
    }
    upstream = spawn(
        [
            sys.executable,
            "-m",
            "app.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(upstream_port),
        ],
        upstream_env,
        logs["upstream"],
    )
    try:
        api_url = f"http://127.0.0.1:{api_port}"
        wait_ready(f"{api_url}/health/ready", api, logs["api"], timeout=90)
        yield Stack(api_url, logs)
    finally:
        stop(api)
        stop(upstream)


def chat(url: str, content: str) -> httpx.Response:
    return httpx.post(
        f"{url}/api/chat",
        headers={"Authorization": f"Bearer {API_KEY}"},
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": content}],
            "stream": False,
            "options": {"num_predict": 8, "temperature": 0},
        },
        timeout=60,
    )


def test_compose_stack_api_waits_for_ollama_and_serves_chat(stack: Stack) -> None:
    messages = [
        json.loads(line)["message"]
        for line in stack.logs["api"].read_text().splitlines()
        if line.startswith("{")
    ]
    assert "ollama is up" in messages
    for n in range(3):
        response = chat(stack.api_url, f"Di el número {n}.")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["done"] is True
        assert isinstance(body["message"]["content"], str)
    # Two uvicorn workers (compose's WEB_CONCURRENCY) answered; /metrics adds them up.
    metrics = httpx.get(f"{stack.api_url}/metrics", timeout=10).text
    counted = re.search(
        rf'^llama_requests_total\{{model="{re.escape(MODEL)}",status="success"\}} (\S+)$',
        metrics,
        re.MULTILINE,
    )
    assert counted, metrics
    assert float(counted.group(1)) == 3


@pytest.mark.skipif(
    not NGINX_TEMPLATE.is_file(), reason="nginx/nginx.conf.template not written yet"
)
@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_compose_stack_chat_through_nginx(stack: Stack, tmp_path: Path) -> None:
    nginx_port = free_port()
    service = compose_file.load()["services"]["nginx"]
    variables = {k: str(v) for k, v in service.get("environment", {}).items()}
    variables["API_UPSTREAM"] = stack.api_url.removeprefix("http://")
    # What the official image does with templates: substitute only the variables it was given.
    rendered = re.sub(
        r"\$\{(\w+)\}",
        lambda m: variables.get(m.group(1), m.group(0)),
        NGINX_TEMPLATE.read_text(),
    )
    rendered = re.sub(r"listen\s+80\b[^;]*;", f"listen 127.0.0.1:{nginx_port};", rendered)
    rendered = rendered.replace("/usr/share/nginx/html", str(REPO / "frontend"))
    (tmp_path / "default.conf").write_text(rendered)
    temp = tmp_path / "nginx-temp"
    temp.mkdir()
    (tmp_path / "nginx.conf").write_text(
        f"""
        user root;
        daemon off;
        pid {tmp_path}/nginx.pid;
        error_log {tmp_path}/nginx-error.log;
        events {{}}
        http {{
            include /etc/nginx/mime.types;
            access_log off;
            client_body_temp_path {temp}/body;
            proxy_temp_path {temp}/proxy;
            fastcgi_temp_path {temp}/fastcgi;
            uwsgi_temp_path {temp}/uwsgi;
            scgi_temp_path {temp}/scgi;
            include {tmp_path}/default.conf;
        }}
        """
    )
    nginx = spawn(
        ["nginx", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
        dict(os.environ),
        tmp_path / "nginx.log",
    )
    try:
        url = f"http://127.0.0.1:{nginx_port}"
        wait_ready(f"{url}/", nginx, tmp_path / "nginx.log", timeout=10)
        response = chat(url, "¿Qué es una sociedad anónima?")
        assert response.status_code == 200, response.text
        assert response.json()["done"] is True
    finally:
        stop(nginx)
