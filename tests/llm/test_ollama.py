"""The Ollama backend against a real upstream (a second Llamarada) and a scripted faulty one."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from app.core.config import Settings
from app.core.errors import (
    InvalidRequest,
    ModelNotFound,
    Overloaded,
    UpstreamError,
    UpstreamUnavailable,
)
from app.llm.base import ChatRequest, Chunk, GenerateRequest, Options
from app.llm.ollama import OllamaBackend
from app.main import create_app
from tests.conftest import app_client, free_port
from tests.llm.ollama_script import Script, scripted_ollama
from tests.servers import serve_in_thread


def chat(model: str = "llama3.2:1b", content: str = "hi") -> ChatRequest:
    """A small chat request."""
    return ChatRequest.model_validate(
        {"model": model, "messages": [{"role": "user", "content": content}]}
    )


async def collect(backend: OllamaBackend, request: ChatRequest) -> list[Chunk]:
    """Every chunk of a chat answer."""
    return [chunk async for chunk in backend.chat(request)]


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    """A second Llamarada in embedded mode: a real Ollama-protocol server with a real model."""
    settings = Settings(_env_file=None, cache_ttl=0)
    with serve_in_thread(create_app(settings)) as url:
        yield url


@pytest.fixture
def script() -> Script:
    """The scripted server's behaviour, changed by each test."""
    return Script()


@pytest.fixture
def scripted(script: Script) -> Iterator[str]:
    """The scripted Ollama server's URL."""
    with serve_in_thread(scripted_ollama(script)) as url:
        yield url


async def test_ollama_backend_streams_from_a_real_upstream(upstream: str) -> None:
    backend = OllamaBackend(upstream)
    request = chat("smollm2:135m", "Name a planet.")
    chunks = await collect(
        backend,
        ChatRequest.model_validate(
            {**request.model_dump(), "options": {"num_predict": 8, "temperature": 0}}
        ),
    )
    await backend.aclose()
    assert len(chunks) > 2
    assert chunks[-1].done
    assert chunks[-1].eval_count == len([c for c in chunks if c.content])
    assert "".join(c.content for c in chunks).strip()


async def test_ollama_backend_lists_embeds_and_checks_a_real_upstream(upstream: str) -> None:
    backend = OllamaBackend(upstream)
    try:
        # The upstream serves the repository's models/asistente alias too.
        assert [m.name for m in await backend.list_models()] == ["smollm2:135m", "asistente:latest"]
        await backend.check()
        generated = [
            chunk
            async for chunk in backend.generate(
                GenerateRequest(
                    model="smollm2:135m", prompt="Hello", options=Options(num_predict=4)
                )
            )
        ]
        assert generated[-1].done
    finally:
        await backend.aclose()


async def test_gateway_in_ollama_mode_caches_upstream_answers(upstream: str) -> None:
    settings = Settings(_env_file=None, llm_backend="ollama", ollama_urls=upstream)
    body = {
        "model": "smollm2:135m",
        "messages": [{"role": "user", "content": "Say yes."}],
        "options": {"temperature": 0, "num_predict": 300},
    }
    async with app_client(create_app(settings)) as client:
        first = await client.post("/api/chat", json=body)
        assert first.status_code == 200
        assert first.headers["x-cache"] == "MISS"
        second = await client.post("/api/chat", json=body)
        assert second.headers["x-cache"] == "HIT"
        assert second.text.count("\n") == first.text.count("\n")
        assert (await client.get("/health/ready")).json()["status"] == "ready"


async def test_ollama_backend_sends_the_request_fields_upstream(
    scripted: str, script: Script
) -> None:
    backend = OllamaBackend(scripted)
    request = ChatRequest.model_validate(
        {
            "model": "llama3.2:1b",
            "messages": [{"role": "user", "content": "hi"}],
            "options": {"temperature": 0.1, "num_ctx": 4096},
            "format": "json",
            "stream": False,
            "keep_alive": "5m",
        }
    )
    chunks = await collect(backend, request)
    await backend.aclose()
    assert "".join(c.content for c in chunks) == "Hi there!"
    sent = script.bodies[-1]
    assert sent["stream"] is True  # always streamed upstream, whatever the client asked
    assert sent["options"] == {"temperature": 0.1, "num_ctx": 4096}
    assert sent["format"] == "json"
    assert sent["keep_alive"] == "5m"


@pytest.mark.parametrize(
    ("status", "error", "retry_after"),
    [
        (400, InvalidRequest, None),
        (429, Overloaded, 7),
        (500, UpstreamError, None),
        (503, UpstreamUnavailable, 7),
    ],
)
async def test_ollama_backend_maps_error_statuses(
    scripted: str,
    script: Script,
    status: int,
    error: type[Exception],
    retry_after: int | None,
) -> None:
    script.status = status
    backend = OllamaBackend(scripted)
    with pytest.raises(error) as caught:
        await collect(backend, chat())
    await backend.aclose()
    assert getattr(caught.value, "retry_after", None) == retry_after
    assert f"scripted {status}" in str(caught.value)


async def test_ollama_backend_unknown_model_lists_the_available(scripted: str) -> None:
    backend = OllamaBackend(scripted)
    with pytest.raises(ModelNotFound, match=r"llama3\.2:1b"):
        await collect(backend, chat("nope:1b"))
    await backend.aclose()


async def test_ollama_backend_error_line_in_a_200_stream(scripted: str, script: Script) -> None:
    script.error_line_after = 1
    backend = OllamaBackend(scripted)
    stream = backend.chat(chat())
    assert (await anext(stream)).content == "Hi"
    with pytest.raises(UpstreamError, match="scripted failure"):
        await anext(stream)
    await backend.aclose()


async def test_ollama_backend_connection_cut_mid_stream(scripted: str, script: Script) -> None:
    script.cut_after = 2
    backend = OllamaBackend(scripted)
    with pytest.raises(UpstreamError):
        await collect(backend, chat())
    await backend.aclose()


async def test_ollama_backend_read_timeout(scripted: str, script: Script) -> None:
    script.delay = 2.0
    backend = OllamaBackend(scripted, read_timeout=0.3)
    with pytest.raises(UpstreamUnavailable, match=r"timed out|stopped sending"):
        await collect(backend, chat())
    await backend.aclose()


async def test_ollama_backend_unreachable_server() -> None:
    backend = OllamaBackend(f"http://127.0.0.1:{free_port()}", connect_timeout=0.5)
    with pytest.raises(UpstreamUnavailable, match="cannot connect"):
        await collect(backend, chat())
    with pytest.raises(UpstreamUnavailable):
        await backend.check()
    await backend.aclose()


async def test_ollama_backend_closes_upstream_when_reader_leaves(
    scripted: str, script: Script
) -> None:
    script.pieces = ["x"] * 50
    script.delay = 0.05
    backend = OllamaBackend(scripted)
    stream = backend.chat(chat())
    assert (await anext(stream)).content == "x"
    await stream.aclose()
    await backend.aclose()
    for _ in range(50):
        if script.closed_early:
            break
        await asyncio.sleep(0.05)
    assert script.closed_early == 1


async def test_gateway_reports_upstream_faults_to_clients(scripted: str, script: Script) -> None:
    settings = Settings(_env_file=None, llm_backend="ollama", ollama_urls=scripted)
    body = {"model": "llama3.2:1b", "messages": [{"role": "user", "content": "hi"}]}
    async with app_client(create_app(settings)) as client:
        script.status = 503
        response = await client.post("/api/chat", json=body)
        assert response.status_code == 503
        assert response.headers["retry-after"] == "7"
        assert response.json()["error"]["type"] == "upstream_unavailable"

        script.status = 200
        script.error_line_after = 1
        again = {**body, "messages": [{"role": "user", "content": "again"}]}
        streamed = await client.post("/api/chat", json=again)
        assert streamed.status_code == 200
        assert "scripted failure" in streamed.text.splitlines()[-1]

        metrics = (await client.get("/metrics")).text
        for reason in ("upstream_unavailable", "upstream_error"):
            sample = f'llama_upstream_errors_total{{backend="{scripted}",reason="{reason}"}} 1.0'
            assert sample in metrics


async def test_gateway_not_ready_when_ollama_is_unreachable() -> None:
    settings = Settings(
        _env_file=None,
        llm_backend="ollama",
        ollama_urls=f"http://127.0.0.1:{free_port()}",
        ollama_connect_timeout=0.5,
    )
    async with app_client(create_app(settings)) as client:
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.headers["retry-after"]
        assert ready.json()["checks"]["backend"]["status"] == "down"
        assert (await client.get("/health/live")).status_code == 200
        response = await client.post(
            "/api/chat", json={"model": "x", "messages": [{"role": "user", "content": "hi"}]}
        )
        assert response.status_code == 503
        assert "no Ollama server answers" in response.json()["error"]["message"]
        metrics = (await client.get("/metrics")).text
        assert 'llama_backend_up{backend="http://127.0.0.1' in metrics


async def test_ollama_backend_rejects_malformed_tool_calls(scripted: str, script: Script) -> None:
    script.tool_calls = ["not an object"]
    backend = OllamaBackend(scripted)
    with pytest.raises(UpstreamError, match="tool_calls"):
        await collect(backend, chat())
    await backend.aclose()
