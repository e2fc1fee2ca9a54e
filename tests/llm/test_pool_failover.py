"""Failover before the first byte: a server that drops, resets, or cuts a request before any of
its answer went out loses nothing, whether a scripted fault or a real upstream SIGKILLed."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import pytest

from app.core.config import PoolSettings, Settings
from app.core.errors import UpstreamUnavailable
from app.core.metrics import Metrics
from app.llm.base import ChatRequest, ModelInfo
from app.llm.pool import OllamaPool
from app.main import create_app
from tests.conftest import app_client, free_port
from tests.llm.ollama_script import Script, scripted_ollama
from tests.servers import serve_in_thread

ROOT = Path(__file__).resolve().parents[2]
Writer = asyncio.StreamWriter
Fault = Callable[[Writer], Awaitable[None]]


async def _close(writer: Writer) -> None:
    """No answer at all: "Server disconnected without sending a response"."""


async def _reset(writer: Writer) -> None:
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST


async def _truncated_head(writer: Writer) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: applica")


async def _garbage_head(writer: Writer) -> None:
    writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")


async def _head_then_close(writer: Writer) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")


async def _empty_answer(writer: Writer) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")


FAULTS = {
    "close": _close,
    "reset": _reset,
    "truncated-head": _truncated_head,
    "garbage-head": _garbage_head,
    "head-then-close": _head_then_close,
    "empty-answer": _empty_answer,
}


@asynccontextmanager
async def faulty_server(fault: Fault, hits: list[str]) -> AsyncIterator[str]:
    """An HTTP server that reads each request, then fails it with `fault`; yields its URL."""

    async def handle(reader: asyncio.StreamReader, writer: Writer) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
        await reader.readexactly(length)
        hits.append(head.split(b" ")[1].decode())
        await fault(writer)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


@pytest.fixture
def good() -> Iterator[str]:
    """A scripted Ollama server that answers `one`."""
    with serve_in_thread(scripted_ollama(Script(models=["m:1b"], pieces=["one"]))) as url:
        yield url


def chat(model: str = "m:1b") -> ChatRequest:
    """A small chat request."""
    return ChatRequest.model_validate(
        {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    )


async def pool_over(urls: list[str]) -> OllamaPool:
    """A started pool whose first server (faulty: its lists unread) is the one tried first."""
    pool = OllamaPool(urls, PoolSettings(health_interval=60), Metrics(), connect_timeout=1)
    await pool.start()
    known = next(m.models for m in pool.members if m.models is not None)
    pool.members[0].models = dict(known or {})
    pool.members[0].loaded = {"m:1b"}
    return pool


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_pool_fails_over_on_any_failure_before_the_first_chunk(good: str, fault: str) -> None:
    hits: list[str] = []
    async with faulty_server(FAULTS[fault], hits) as bad:
        pool = await pool_over([bad, good])
        try:
            hits.clear()  # the start-up probes
            answer = "".join([chunk.content async for chunk in pool.chat(chat())])
            embedded = await pool.embed("m:1b", ["hello"])
        finally:
            await pool.aclose()
    assert answer == "one"
    assert embedded.vectors == [[0.5, 0.5]]
    assert hits[0] == "/api/chat"  # the faulty server had the request first
    assert "/api/embed" in hits


@pytest.mark.parametrize("fault", ["close", "head-then-close"])
async def test_pool_with_every_server_failing_before_the_first_chunk_is_unavailable(
    fault: str,
) -> None:
    hits: list[str] = []
    async with faulty_server(FAULTS[fault], hits) as one, faulty_server(FAULTS[fault], hits) as two:
        pool = OllamaPool([one, two], PoolSettings(health_interval=60), Metrics())
        await pool.start()
        for member in pool.members:
            member.models = {"m:1b": ModelInfo("m:1b")}
        try:
            hits.clear()  # the start-up probes
            with pytest.raises(UpstreamUnavailable):
                async for _ in pool.chat(chat()):
                    pass
        finally:
            await pool.aclose()
    assert hits == ["/api/chat", "/api/chat"]


@contextmanager
def llamarada_upstream(data: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A Llamarada instance in embedded mode in its own process, killable; yields URL, child."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMARADA_")}
    env |= {
        "LLAMARADA_CACHE_TTL": "0",
        "LLAMARADA_DATA_DIR": str(data),
        "LLAMARADA_LOG_LEVEL": "WARNING",
        "LLAMARADA_EMBEDDED__N_THREADS": "1",  # two of them share the machine
    }
    command = [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    child = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the Llamarada upstream did not start")
            time.sleep(0.2)
        yield url, child
    finally:
        child.kill()
        child.wait()


@pytest.mark.timeout(600)
async def test_gateway_loses_no_request_when_a_real_upstream_is_killed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.llm.pool")
    total, kill_after = 30, 10  # the 60 take minutes when the 2 cores are busy
    with ExitStack() as stack:
        upstreams = [stack.enter_context(llamarada_upstream(tmp_path / f"up{i}")) for i in (0, 1)]
        pool = PoolSettings(max_concurrency=4, max_queue=total, health_interval=60)
        settings = Settings(
            _env_file=None,
            llm_backend="ollama",
            ollama_urls=[url for url, _ in upstreams],
            data_dir=tmp_path / "gateway",
            cache_ttl=0,
            pool=pool,
        )
        finished = 0
        enough = asyncio.Event()

        async with app_client(create_app(settings)) as client:

            async def ask(index: int) -> httpx.Response:
                nonlocal finished
                body = {  # a raw prompt of a few tokens: the answers stay short on 2 cores
                    "model": "smollm2:135m",
                    "prompt": f"{index}, {index + 1},",
                    "raw": True,
                    "options": {"num_predict": 4, "temperature": 0},
                    "stream": True,
                }
                response = await client.post("/api/generate", json=body, timeout=240)
                finished += 1
                if finished == kill_after:
                    enough.set()
                return response

            asks = asyncio.gather(*(ask(i) for i in range(total)))
            await enough.wait()
            upstreams[0][1].kill()  # SIGKILL, a third of the way through
            responses = await asks

    completed, cut, lost = 0, 0, []
    for response in responses:
        last = json.loads(response.text.strip().splitlines()[-1]) if response.text else {}
        if response.status_code != 200:
            lost.append(f"{response.status_code}: {response.text[:200]}")
        elif last.get("done") and "error" not in last:
            completed += 1
        elif "error" in last:
            cut += 1  # it had started streaming from the killed server: reported, not retried
        else:
            lost.append(f"unfinished: {response.text[-200:]}")
    assert lost == []
    assert cut <= pool.max_concurrency
    assert completed + cut == total
    failovers = [
        r for r in caplog.records if r.getMessage() == "failing over before the first byte"
    ]
    assert failovers, "the killed server had requests in flight or queued"
