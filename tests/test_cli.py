"""`llamarada serve` as a user runs it: a real process, JSON logs, metrics across workers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.llm.ollama_script import Script, scripted_ollama
from tests.servers import recording, serve_in_thread

PROMTOOL = shutil.which("promtool")


@contextmanager
def llamarada(tmp_path: Path, *args: str, **env: str) -> Iterator[tuple[str, list[str]]]:
    """Run `llamarada serve` until ready; yields its URL and, after the block, its stdout lines."""
    port = free_port()
    log = tmp_path / "stdout.log"
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("LLAMARADA_")
    }
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    environment.update({"LLAMARADA_DATA_DIR": str(tmp_path / "data"), **env})
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=tmp_path,
        )
    url = f"http://127.0.0.1:{port}"
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.2)
        yield url, lines
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        lines.extend(log.read_text().splitlines())


def chat(url: str, topic: str) -> httpx.Response:
    """A tiny chat request."""
    body = {
        "model": "smollm2:135m",
        "messages": [{"role": "user", "content": f"One word about {topic}."}],
        "options": {"num_predict": 2},
        "stream": False,
    }
    return httpx.post(f"{url}/api/chat", json=body, timeout=60)


def test_serve_answers_and_every_log_line_is_json(tmp_path: Path) -> None:
    with llamarada(tmp_path) as (url, lines):
        response = chat(url, "rain")
        assert response.status_code == 200
        assert response.json()["done"] is True
        request_id = response.headers["x-request-id"]
    entries = [json.loads(line) for line in lines]  # fails on any line that is not JSON
    assert any(e["logger"] == "uvicorn.error" for e in entries)  # uvicorn's own logs too
    access = [e for e in entries if e.get("path") == "/api/chat"]
    assert access[0]["request_id"] == request_id
    assert access[0]["status"] == 200
    for entry in entries:
        for field in ("timestamp", "level", "message", "logger", "module", "function"):
            assert field in entry


def test_serve_logs_no_upstream_url_even_at_debug(tmp_path: Path) -> None:
    password = "pool-pass-5e6f7a"
    seen: list[dict[str, str]] = []
    with serve_in_thread(recording(scripted_ollama(Script(models=["m:1b"])), seen)) as upstream:
        server = upstream.replace("http://", f"http://pool:{password}@")
        env = {
            "LLAMARADA_LLM_BACKEND": "ollama",
            "LLAMARADA_OLLAMA_URLS": server,
            "LLAMARADA_LOG_LEVEL": "DEBUG",
        }
        with llamarada(tmp_path, **env) as (url, lines):
            body = {"model": "m:1b", "messages": [{"role": "user", "content": "hi"}]}
            answer = httpx.post(f"{url}/api/chat", json={**body, "stream": False}, timeout=30)
            assert answer.status_code == 200, answer.text
    # The password did reach the server, as the URL asked...
    assert any(r["path"] == "/api/chat" and "authorization" in r for r in seen)
    # ...and no log line holds it, or the upstream's address: one access line says it all.
    assert lines
    assert not [line for line in lines if password in line or upstream in line]
    entries = [json.loads(line) for line in lines]
    assert not [e for e in entries if e["logger"].startswith(("httpx", "httpcore"))]
    assert [e["status"] for e in entries if e.get("path") == "/api/chat"] == [200]


def test_serve_bad_setting_exits_with_the_variable_named(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve"],
        env={**os.environ, "LLAMARADA_CACHE_TTL": "soon"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "LLAMARADA_CACHE_TTL" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_metrics_add_up_across_workers(tmp_path: Path) -> None:
    if PROMTOOL is None:
        pytest.fail("promtool is missing: install Debian's prometheus package (make system-deps)")
    topics = ["sun", "moon", "sea", "wind", "snow", "fire"]
    with llamarada(tmp_path, "--workers", "2") as (url, _):
        for topic in topics:
            assert chat(url, topic).status_code == 200
        # Whichever worker answers a scrape, it reports every worker's requests.
        scrapes = [httpx.get(f"{url}/metrics", timeout=10).text for _ in range(6)]
    for text in scrapes:
        assert 'llama_requests_total{model="smollm2:135m",status="success"} 6.0' in text
        assert "llama_time_to_first_token_seconds_count" in text
    check = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=scrapes[-1], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
