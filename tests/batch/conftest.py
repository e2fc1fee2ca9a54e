"""Batch fixtures: apps in both modes, a scripted Ollama upstream, real worker processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from app.core.config import BatchSettings, Settings
from app.main import create_app
from tests.conftest import RedisProcess, app_client, free_port
from tests.fakes import ScriptedBackend
from tests.llm.ollama_script import Script, scripted_ollama
from tests.servers import serve_in_thread

MODEL = "llama3.2:1b"  # what the scripted Ollama server serves
SCRIPTED = "scripted:1b"  # what ScriptedBackend serves
REPO = Path(__file__).resolve().parents[2]
# Fast failure detection for the tests: a silent worker's items move after about 4 s.
FAST_RECOVERY = {"heartbeat": 2, "sweep_interval": 1}


@pytest.fixture
def script() -> Script:
    """What the scripted Ollama server answers: three pieces, 50 ms apart."""
    return Script(pieces=["Hola", " mundo", "."], delay=0.05)


@pytest.fixture
def ollama_url(script: Script) -> Iterator[str]:
    """The scripted Ollama-protocol server, over real HTTP."""
    with serve_in_thread(scripted_ollama(script)) as url:
        yield url


@pytest.fixture
def redis_settings(tmp_path: Path, redis_server: RedisProcess, ollama_url: str) -> Settings:
    """An API on Redis (jobs go to workers) and the scripted Ollama server, cache off."""
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        llm_backend="ollama",
        ollama_urls=[ollama_url],
        redis_url=SecretStr(redis_server.url),
        default_model=MODEL,
        cache_ttl=0,
        batch=BatchSettings(**FAST_RECOVERY),
    )


def embedded_settings(tmp_path: Path, **batch: Any) -> Settings:
    """An API without Redis (jobs run in process) on the scripted backend, cache on."""
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        default_model=SCRIPTED,
        batch=BatchSettings(**batch),
    )


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process app without Redis on a scripted backend."""
    app = create_app(embedded_settings(tmp_path), backend=ScriptedBackend(model=SCRIPTED))
    async with app_client(app) as client:
        yield client


class WorkerProcess:
    """`python -m app.cli worker` in its own process, as in production."""

    def __init__(self, env: dict[str, str], concurrency: int) -> None:
        self.metrics_port = free_port()
        command = [sys.executable, "-m", "app.cli", "worker", "--concurrency", str(concurrency)]
        command += ["--metrics-port", str(self.metrics_port), "--metrics-host", "127.0.0.1"]
        self.process = subprocess.Popen(
            command, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    @property
    def pid(self) -> int:
        """The process id (part of its saq worker id)."""
        return self.process.pid

    @property
    def metrics_url(self) -> str:
        """Its /metrics endpoint."""
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def wait_ready(self, timeout: float = 30) -> None:
        """Block until its /metrics answers (it serves them once its queue is set up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited: {self.process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                if httpx.get(self.metrics_url, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("worker did not start")

    def kill(self) -> None:
        """SIGKILL: no clean-up, no goodbye, its items in mid-flight."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it takes too long."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.process.stderr is not None:
            self.process.stderr.close()


StartWorkers = Callable[..., list[WorkerProcess]]


@pytest.fixture
def start_workers(redis_settings: Settings) -> Iterator[StartWorkers]:
    """Start N worker processes on the test's Redis and scripted Ollama; all stopped after."""
    started: list[WorkerProcess] = []
    assert redis_settings.redis_url is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMARADA_")}
    env.update(
        LLAMARADA_REDIS_URL=redis_settings.redis_url.get_secret_value(),
        LLAMARADA_LLM_BACKEND="ollama",
        LLAMARADA_OLLAMA_URLS=",".join(redis_settings.ollama_urls),
        LLAMARADA_DEFAULT_MODEL=MODEL,
        LLAMARADA_CACHE_TTL="0",
        LLAMARADA_LOG_LEVEL="WARNING",
        LLAMARADA_DATA_DIR=str(redis_settings.data_dir),
        LLAMARADA_SERVER__DRAIN_TIMEOUT="2",  # a stopped worker hands its items back soon
        **{f"LLAMARADA_BATCH__{k.upper()}": str(v) for k, v in FAST_RECOVERY.items()},
    )

    def start(count: int = 1, concurrency: int = 2) -> list[WorkerProcess]:
        workers = [WorkerProcess(env, concurrency) for _ in range(count)]
        started.extend(workers)
        for worker in workers:
            worker.wait_ready()
        return workers

    yield start
    for worker in started:
        worker.stop()


async def wait_for(
    check: Callable[[], Awaitable[Any]], timeout: float = 30, every: float = 0.05
) -> Any:
    """Poll `check` until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(every)


async def finished(client: httpx.AsyncClient, job_id: str, timeout: float = 30) -> dict[str, Any]:
    """The job once every item has its result."""

    async def check() -> dict[str, Any] | None:
        job: dict[str, Any] = (await client.get(f"/api/batch/jobs/{job_id}")).json()
        return job if job["finished_at"] is not None else None

    result: dict[str, Any] = await wait_for(check, timeout)
    return result


async def result_lines(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    """The job's results as parsed JSONL."""
    response = await client.get(f"/api/batch/jobs/{job_id}/results")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in response.text.splitlines()]
