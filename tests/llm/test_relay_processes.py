"""One generation across two real `llamarada serve` processes sharing a redis-server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

import app
from tests.conftest import RedisProcess, free_port
from tests.llm.ollama_script import Script, scripted_ollama
from tests.servers import serve_in_thread

MODEL = "llama3.2:1b"
PIECES = ["One", " answer", " shared", " by", " every", " client", "."]


@contextmanager
def serve(
    workdir: Path, upstream: str, redis_url: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`llamarada serve` on this checkout's code, ready to answer; killed after the block."""
    workdir.mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMARADA_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        PYTHONPATH=str(Path(app.__file__).parents[1]),
        LLAMARADA_DATA_DIR=str(workdir / "data"),
        LLAMARADA_LLM_BACKEND="ollama",
        LLAMARADA_OLLAMA_URLS=upstream,
        LLAMARADA_DEFAULT_MODEL=MODEL,
        LLAMARADA_REDIS_URL=redis_url,
        LLAMARADA_FLIGHT_LEASE="1.5",
    )
    with (workdir / "out.log").open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (workdir / "out.log").read_text()
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        yield process, url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)


@pytest.fixture
def script() -> Script:
    """A paced upstream: each piece comes 0.25 s after the one before."""
    return Script(pieces=list(PIECES), delay=0.25, models=[MODEL])


@pytest.fixture
def upstream(script: Script) -> Iterator[str]:
    """The scripted Ollama server's URL."""
    with serve_in_thread(scripted_ollama(script)) as url:
        yield url


def body(question: str) -> dict[str, object]:
    """A streamed chat request."""
    return {"model": MODEL, "messages": [{"role": "user", "content": question}], "stream": True}


async def streamed_text(client: httpx.AsyncClient, url: str, question: str) -> str:
    """The whole answer a client reads from a streamed chat."""
    text = []
    async with client.stream("POST", f"{url}/api/chat", json=body(question)) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.strip():
                data = json.loads(line)
                assert "error" not in data, data
                text.append(data["message"]["content"])
    assert data["done"] is True
    return "".join(text)


@pytest.mark.timeout(240)
async def test_identical_requests_across_two_processes_make_one_upstream_call(
    tmp_path: Path, redis_server: RedisProcess, script: Script, upstream: str
) -> None:
    with (
        serve(tmp_path / "a", upstream, redis_server.url) as (_, first),
        serve(tmp_path / "b", upstream, redis_server.url) as (_, second),
    ):
        urls = [first, second] * 4
        async with httpx.AsyncClient(timeout=60) as client:
            answers = await asyncio.gather(
                *(streamed_text(client, url, "Who shares?") for url in urls)
            )
    assert answers == ["".join(PIECES)] * len(urls)
    assert len(script.bodies) == 1


@pytest.mark.timeout(240)
async def test_a_dead_leaders_generation_is_taken_over(
    tmp_path: Path, redis_server: RedisProcess, script: Script, upstream: str
) -> None:
    script.delay = 2.0  # the leader dies before its first piece
    with (
        serve(tmp_path / "a", upstream, redis_server.url) as (leader, leader_url),
        serve(tmp_path / "b", upstream, redis_server.url) as (_, other_url),
    ):
        async with httpx.AsyncClient(timeout=60) as client:
            doomed = asyncio.create_task(streamed_text(client, leader_url, "Who leads?"))
            while not script.bodies:
                await asyncio.sleep(0.05)
            follower = asyncio.create_task(streamed_text(client, other_url, "Who leads?"))
            await asyncio.sleep(0.5)  # the follower is reading the leader's stream
            assert len(script.bodies) == 1
            leader.kill()
            script.delay = 0.05
            assert await follower == "".join(PIECES)
            with pytest.raises(httpx.HTTPError):
                await doomed
    assert len(script.bodies) == 2  # the leader's call, then the one that took over
