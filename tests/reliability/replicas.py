"""Real `llamarada serve` processes in front of a paced Ollama-protocol upstream that counts
how many answers it streams at once."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
MODEL = "paced:1b"


@dataclass
class Pace:
    """How the upstream answers, and what it saw."""

    pieces: int = 5
    delay: float = 0.1  # seconds before each piece
    now: int = 0
    peak: int = 0
    served: int = 0


def paced_ollama(pace: Pace) -> FastAPI:
    """An Ollama-protocol server whose chat streams `pace.pieces` pieces, slowly."""
    app = FastAPI()

    @app.get("/api/version")
    async def version() -> dict[str, str]:
        return {"version": "0.12.0"}

    @app.get("/api/tags")
    async def tags() -> dict[str, Any]:
        return {"models": [{"name": MODEL, "model": MODEL, "size": 1, "digest": "d"}]}

    @app.get("/api/ps")
    async def ps() -> dict[str, Any]:
        return {"models": [{"name": MODEL, "model": MODEL}]}

    @app.post("/api/chat")
    async def chat(request: Request) -> StreamingResponse:
        await request.json()
        pace.now += 1
        pace.peak = max(pace.peak, pace.now)

        async def lines() -> AsyncIterator[bytes]:
            try:
                for index in range(pace.pieces):
                    await asyncio.sleep(pace.delay)
                    piece = {"role": "assistant", "content": f"p{index} "}
                    yield json.dumps({"model": MODEL, "message": piece, "done": False}).encode()
                    yield b"\n"
                done = {"model": MODEL, "message": {"role": "assistant", "content": ""}}
                yield json.dumps({**done, "done": True, "done_reason": "stop"}).encode() + b"\n"
                pace.served += 1
            finally:
                pace.now -= 1

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    return app


@dataclass
class Replica:
    """One running `llamarada serve`."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path
    lines: list[str] = field(default_factory=list)

    def logs(self) -> list[dict[str, Any]]:
        """Its JSON log lines so far."""
        found = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                found.append(json.loads(line))
        return found


def replica_env(workdir: Path, upstream: str, **settings: str) -> dict[str, str]:
    """The environment of a replica: this checkout's code, the upstream, no cache."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LLAMARADA_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        PYTHONPATH=str(ROOT),
        LLAMARADA_LLM_BACKEND="ollama",
        LLAMARADA_OLLAMA_URLS=upstream,
        LLAMARADA_DEFAULT_MODEL=MODEL,
        LLAMARADA_CACHE_TTL="0",
        LLAMARADA_DATA_DIR=str(workdir / "data"),
        **settings,
    )
    return env


@contextmanager
def replicas(
    workdir: Path, count: int, upstream: str, *args: str, **settings: str
) -> Iterator[list[Replica]]:
    """`count` replicas (`serve` with `args`) started at once, each ready before the block
    runs; stopped after."""
    started: list[Replica] = []
    with ExitStack() as stack:
        for number in range(count):
            home = workdir / f"replica{number}"
            home.mkdir()
            port = free_port()
            log = home / "stdout.log"
            out = stack.enter_context(log.open("wb"))
            process = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve", "--port", str(port), *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=replica_env(home, upstream, **settings),
                cwd=home,
            )
            started.append(Replica(process, f"http://127.0.0.1:{port}", log))
        try:
            for replica in started:
                wait_ready(replica)
            yield started
        finally:
            for replica in started:
                if replica.process.poll() is None:
                    replica.process.send_signal(signal.SIGKILL)
                replica.process.wait(timeout=30)


def wait_ready(replica: Replica, timeout: float = 90) -> None:
    """Until `/health/ready` answers 200."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{replica.url}/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert replica.process.poll() is None, replica.log.read_text()[-3000:]
        assert time.monotonic() < deadline, "replica did not become ready"
        time.sleep(0.2)


def chat_body(number: int) -> dict[str, Any]:
    """A streamed chat request, each one different (nothing is shared or coalesced)."""
    content = f"Question number {number}?"
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], "stream": True}


@dataclass
class Outcome:
    """What one client got."""

    status: int
    retry_after: str | None
    done: bool
    pieces: int


async def stream_chat(client: httpx.AsyncClient, url: str, number: int) -> Outcome:
    """One streamed chat, read to the end."""
    async with client.stream("POST", f"{url}/api/chat", json=chat_body(number)) as response:
        done, pieces = False, 0
        async for line in response.aiter_lines():
            if response.status_code != 200 or not line:
                continue
            message = json.loads(line)
            pieces += 0 if message.get("done") else 1
            done = done or bool(message.get("done"))
        return Outcome(response.status_code, response.headers.get("retry-after"), done, pieces)
