"""One pool over both upstream types: a real Llamarada (Ollama protocol) and a real
`llama_cpp.server` (OpenAI protocol), both surfaces to both, failover when one is killed."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from app.core.config import PoolSettings, Settings
from app.core.metrics import Metrics
from app.core.upstreams import parse_upstreams
from app.llm.base import Backend, ChatRequest
from app.llm.openai_upstream import OpenAIBackend
from app.llm.pool import OllamaPool
from app.main import create_app
from tests.conftest import app_client, free_port
from tests.llm.ollama_script import Script, scripted_ollama
from tests.llm.openai_script import MODEL, OpenAIScript, llama_cpp_server, scripted_openai
from tests.llm.test_pool_failover import llamarada_upstream
from tests.servers import serve_in_thread


async def ask_both_surfaces(client: httpx.AsyncClient, word: str) -> list[str]:
    """The same short question through `/api/chat` and `/v1/chat/completions`; the answers."""
    messages = [{"role": "user", "content": f"Say {word}."}]
    ollama = await client.post(
        "/api/chat",
        json={
            "model": MODEL,
            "messages": messages,
            "options": {"temperature": 0, "num_predict": 4},
            "stream": True,
        },
        timeout=240,
    )
    # The answer's task releases its server just after the last chunk: until then the pool
    # would send the next request to the other, idle server.
    await idle(client)
    openai = await client.post(
        "/v1/chat/completions",
        json={"model": MODEL, "messages": messages, "temperature": 0, "max_tokens": 4},
        timeout=240,
    )
    assert ollama.status_code == 200, ollama.text
    assert openai.status_code == 200, openai.text
    lines = [json.loads(line) for line in ollama.text.splitlines()]
    assert lines[-1]["done"] is True
    assert "error" not in lines[-1]
    assert lines[-1]["eval_count"] == 4
    assert openai.json()["choices"][0]["finish_reason"] == "length"
    assert openai.json()["usage"]["completion_tokens"] == 4
    return [
        "".join(line["message"]["content"] for line in lines),
        openai.json()["choices"][0]["message"]["content"],
    ]


async def idle(client: httpx.AsyncClient, wait: float = 10.0) -> None:
    """Return once the gateway has no request in flight to any server (or after `wait` s)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        text = (await client.get("/metrics")).text
        busy = [
            line
            for line in text.splitlines()
            if line.startswith("llama_backend_in_flight{") and float(line.rsplit(" ", 1)[1])
        ]
        if not busy:
            return
        await asyncio.sleep(0.05)


def served(url: str) -> float:
    """How many chat answers a Llamarada upstream has finished, from its own metrics."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("llama_requests_total{") and 'status="success"' in line
    )


async def counted(url: str, expected: float, wait: float = 10.0) -> float:
    """`served(url)` once it reaches `expected`, or what it is after `wait` seconds."""
    deadline = time.monotonic() + wait
    while (found := served(url)) < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    return found


@pytest.mark.timeout(600)
async def test_pool_serves_both_surfaces_from_both_upstream_types_and_fails_over(
    tmp_path: Path,
) -> None:
    with ExitStack() as stack:
        ollama_url, ollama_child = stack.enter_context(llamarada_upstream(tmp_path / "up"))
        openai_url, _ = stack.enter_context(llama_cpp_server())
        settings = Settings(
            _env_file=None,
            upstreams=parse_upstreams(f"ollama={ollama_url},openai={openai_url}"),
            data_dir=tmp_path / "gateway",
            cache_ttl=0,
            pool=PoolSettings(health_interval=60),
        )
        async with app_client(create_app(settings)) as client:
            tags = (await client.get("/api/tags")).json()["models"]
            assert [model["name"] for model in tags].count(MODEL) == 1  # one name, two servers
            before = served(ollama_url)
            from_ollama = await ask_both_surfaces(client, "one")
            # Both went to it (listed first, the model loaded); its counter is written just
            # after the answer's last byte, so give it a moment.
            assert await counted(ollama_url, before + 2) == before + 2
            ollama_child.kill()  # SIGKILL: the Ollama-protocol server is gone
            ollama_child.wait()
            from_openai = await ask_both_surfaces(client, "two")
            again = await ask_both_surfaces(client, "three")
            health = await client.get("/health/ready")
    # Four tokens each (llama-cpp-python's server reuses its prompt cache, so the words of a
    # repeated prompt may differ; the count may not).
    assert all(isinstance(answer, str) for answer in [*from_ollama, *from_openai, *again])
    assert health.status_code == 200  # one server still answers


@pytest.fixture
def openai_script() -> OpenAIScript:
    """A scripted OpenAI-compatible server's behaviour."""
    return OpenAIScript(models=["m:1b"], pieces=["from", " openai"])


@pytest.fixture
def openai_upstream(openai_script: OpenAIScript) -> Iterator[str]:
    """Its `/v1` URL."""
    with serve_in_thread(scripted_openai(openai_script)) as url:
        yield f"{url}/v1"


@pytest.fixture
def ollama_upstream() -> Iterator[str]:
    """A scripted Ollama server with the same model."""
    with serve_in_thread(scripted_ollama(Script(models=["m:1b"], pieces=["from ollama"]))) as url:
        yield url


def chat() -> ChatRequest:
    """A small chat request."""
    return ChatRequest.model_validate(
        {"model": "m:1b", "messages": [{"role": "user", "content": "hi"}]}
    )


@pytest.mark.parametrize("status", [503, 429])
async def test_pool_fails_over_from_an_openai_upstream_before_the_first_byte(
    openai_upstream: str, openai_script: OpenAIScript, ollama_upstream: str, status: int
) -> None:
    openai_script.status = status
    members: list[str | Backend] = [OpenAIBackend(openai_upstream), ollama_upstream]
    pool = OllamaPool(members, PoolSettings(health_interval=60), Metrics())
    await pool.start()
    pool.members[0].loaded = {"m:1b"}  # tried first
    try:
        answer = "".join([chunk.content async for chunk in pool.chat(chat())])
    finally:
        await pool.aclose()
    assert answer == "from ollama"
    assert len(openai_script.bodies) == 1  # it had the request first


async def test_pool_fails_over_to_an_openai_upstream(openai_upstream: str) -> None:
    script = Script(models=["m:1b"], status=503)
    with serve_in_thread(scripted_ollama(script)) as failing:
        pool = OllamaPool(
            [failing, OpenAIBackend(openai_upstream)], PoolSettings(health_interval=60), Metrics()
        )
        await pool.start()
        pool.members[0].loaded = {"m:1b"}
        try:
            answer = "".join([chunk.content async for chunk in pool.chat(chat())])
            vectors = (await pool.embed("m:1b", ["a"])).vectors
        finally:
            await pool.aclose()
    assert answer == "from openai"
    assert len(script.bodies) == 1
    assert len(vectors) == 1


async def test_pool_fails_over_from_a_dead_openai_upstream(ollama_upstream: str) -> None:
    dead = OpenAIBackend(f"http://127.0.0.1:{free_port()}/v1", connect_timeout=0.5)
    pool = OllamaPool([dead, ollama_upstream], PoolSettings(health_interval=60), Metrics())
    await pool.start()
    pool.members[0].models = dict(pool.members[1].models or {})  # as if it had answered before
    pool.members[0].loaded = {"m:1b"}
    try:
        answer = "".join([chunk.content async for chunk in pool.chat(chat())])
    finally:
        await pool.aclose()
    assert answer == "from ollama"


async def test_pool_cancelled_openai_stream_closes_the_upstream_request(
    openai_upstream: str, openai_script: OpenAIScript
) -> None:
    openai_script.pieces = [f"w{i} " for i in range(50)]
    openai_script.delay = 0.05
    pool = OllamaPool([OpenAIBackend(openai_upstream)], PoolSettings(health_interval=60), Metrics())
    await pool.start()
    try:
        stream = pool.chat(chat())
        first = await anext(stream)
        assert pool.members[0].in_flight == 1
        await stream.aclose()  # the client went away
        for _ in range(100):
            if openai_script.closed_early:
                break
            await asyncio.sleep(0.05)
    finally:
        await pool.aclose()
    assert first.content == "w0 "
    assert openai_script.closed_early == 1  # the server stopped: nothing generates for nobody
    assert pool.members[0].in_flight == 0  # its slot is free again
