"""The OpenAI-compatible backend against a real server (`llama_cpp.server` with SmolLM2) and a
scripted one for what the real one cannot show (faults, usage, tool calls, embeddings)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from app.core.config import Settings
from app.core.errors import (
    InvalidRequest,
    LlamaradaError,
    ModelNotFound,
    Overloaded,
    UpstreamError,
    UpstreamUnavailable,
)
from app.core.upstreams import parse_upstreams
from app.llm.base import ChatRequest, Chunk, GenerateRequest
from app.llm.openai_upstream import OpenAIBackend
from app.main import create_app
from tests.conftest import app_client, free_port
from tests.llm.openai_script import MODEL, OpenAIScript, llama_cpp_server, scripted_openai
from tests.servers import serve_in_thread

KEY = "sk-test-never-logged-4242"


def chat(content: str = "hi", num_predict: int = 6, **extra: Any) -> ChatRequest:
    """A deterministic chat request."""
    return ChatRequest.model_validate(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": content}],
            "options": {"temperature": 0, "num_predict": num_predict},
            **extra,
        }
    )


async def collect(backend: OpenAIBackend, request: ChatRequest) -> list[Chunk]:
    """Every chunk of a chat answer."""
    return [chunk async for chunk in backend.chat(request)]


@pytest.fixture(scope="module")
def real() -> Iterator[str]:
    """A real OpenAI-compatible server with SmolLM2; its `/v1` URL."""
    with llama_cpp_server() as (url, _):
        yield url


@pytest.fixture
def script() -> OpenAIScript:
    """The scripted server's behaviour, changed by each test."""
    return OpenAIScript()


@pytest.fixture
def scripted(script: OpenAIScript) -> Iterator[str]:
    """The scripted OpenAI server's `/v1` URL."""
    with serve_in_thread(scripted_openai(script)) as url:
        yield f"{url}/v1"


async def test_openai_backend_lists_and_streams_from_a_real_server(real: str) -> None:
    backend = OpenAIBackend(real)
    try:
        assert [info.name for info in await backend.list_models()] == [MODEL]
        await backend.check()
        first = await collect(backend, chat("Tell me a joke."))
        second = await collect(backend, chat("Tell me a joke."))
    finally:
        await backend.aclose()
    text = [chunk.content for chunk in first[:-1]]
    assert "".join(text).strip()
    assert text == [chunk.content for chunk in second[:-1]]  # temperature 0 went upstream
    last = first[-1]
    assert last.done
    assert last.done_reason == "length"  # num_predict became max_tokens
    assert last.eval_count == len(text) == 6  # no usage from this server: one per piece
    assert last.eval_duration > 0


async def test_openai_backend_raw_generate_goes_to_completions(real: str) -> None:
    backend = OpenAIBackend(real)
    request = GenerateRequest.model_validate(
        {
            "model": MODEL,
            "prompt": "1, 2, 3, 4,",
            "raw": True,
            "options": {"temperature": 0, "num_predict": 3},
        }
    )
    try:
        chunks = [chunk async for chunk in backend.generate(request)]
    finally:
        await backend.aclose()
    assert "5" in "".join(chunk.content for chunk in chunks)
    assert chunks[-1].done_reason == "length"


async def test_openai_backend_unreachable_is_unavailable() -> None:
    backend = OpenAIBackend(f"http://127.0.0.1:{free_port()}/v1", connect_timeout=0.5)
    try:
        with pytest.raises(UpstreamUnavailable, match="cannot connect"):
            await collect(backend, chat())
        with pytest.raises(UpstreamUnavailable):
            await backend.check()
    finally:
        await backend.aclose()


async def test_openai_backend_maps_ollama_options_and_reads_usage(
    scripted: str, script: OpenAIScript
) -> None:
    backend = OpenAIBackend(scripted)
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    request = chat(
        num_predict=5,
        format=schema,
        options={"temperature": 0.3, "top_k": 7, "num_predict": 5, "stop": ["\n"], "num_ctx": 9},
    )
    try:
        chunks = await collect(backend, request)
    finally:
        await backend.aclose()
    body = script.bodies[0]
    assert body["max_tokens"] == 5
    assert body["temperature"] == 0.3
    assert body["top_k"] == 7
    assert body["stop"] == ["\n"]
    assert "num_ctx" not in body  # a server-side setting there
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["response_format"]["json_schema"]["schema"] == schema
    assert [c.content for c in chunks] == ["Hi", " there", ""]
    assert (chunks[-1].prompt_eval_count, chunks[-1].eval_count) == (9, 2)


async def test_openai_backend_joins_streamed_tool_calls(
    scripted: str, script: OpenAIScript
) -> None:
    script.pieces = []
    script.finish_reason = "tool_calls"
    script.tool_fragments = [
        {"index": 0, "id": "call_1", "function": {"name": "get_weather", "arguments": ""}},
        {"index": 0, "function": {"arguments": '{"city": '}},
        {"index": 0, "function": {"arguments": '"Lima"}'}},
    ]
    backend = OpenAIBackend(scripted)
    try:
        chunks = await collect(backend, chat())
    finally:
        await backend.aclose()
    assert chunks[-1].tool_calls == [
        {"id": "call_1", "function": {"name": "get_weather", "arguments": {"city": "Lima"}}}
    ]
    assert chunks[-1].done_reason == "stop"  # as Ollama ends a tool call


async def test_openai_backend_bad_tool_arguments_are_an_upstream_error(
    scripted: str, script: OpenAIScript
) -> None:
    script.tool_fragments = [{"index": 0, "function": {"name": "f", "arguments": "{oops"}}]
    backend = OpenAIBackend(scripted)
    try:
        with pytest.raises(UpstreamError, match="bad arguments"):
            await collect(backend, chat())
    finally:
        await backend.aclose()


async def test_openai_backend_sends_tool_results_with_the_call_ids(
    scripted: str, script: OpenAIScript
) -> None:
    request = ChatRequest.model_validate(
        {
            "model": MODEL,
            "messages": [
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"function": {"name": "clock", "arguments": {}}},
                        {"function": {"name": "get_weather", "arguments": {"city": "Lima"}}},
                    ],
                },
                {"role": "tool", "tool_name": "get_weather", "content": "sunny"},
                {"role": "tool", "tool_name": "clock", "content": "noon"},
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather"}}],
        }
    )
    backend = OpenAIBackend(scripted)
    try:
        await collect(backend, request)
    finally:
        await backend.aclose()
    messages = script.bodies[0]["messages"]
    calls = messages[1]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["clock", "get_weather"]
    assert json.loads(calls[1]["function"]["arguments"]) == {"city": "Lima"}
    assert messages[2]["tool_call_id"] == calls[1]["id"]
    assert messages[3]["tool_call_id"] == calls[0]["id"]
    assert script.bodies[0]["tools"] == request.tools


@pytest.mark.parametrize(
    ("status", "error", "retry_after"),
    [
        (429, Overloaded, 7),
        (503, UpstreamUnavailable, 7),
        (500, UpstreamError, None),
        (400, InvalidRequest, None),
    ],
)
async def test_openai_backend_maps_status_codes_as_the_ollama_backend(
    scripted: str,
    script: OpenAIScript,
    status: int,
    error: type[LlamaradaError],
    retry_after: int | None,
) -> None:
    script.status = status
    backend = OpenAIBackend(scripted)
    try:
        with pytest.raises(error) as raised:
            await collect(backend, chat())
    finally:
        await backend.aclose()
    assert type(raised.value) is error
    assert f"scripted {status}" in raised.value.message
    if retry_after is not None:
        assert raised.value.retry_after == retry_after


async def test_openai_backend_unknown_model_lists_the_servers(scripted: str) -> None:
    backend = OpenAIBackend(scripted)
    try:
        with pytest.raises(ModelNotFound, match=MODEL):
            await collect(backend, chat().model_copy(update={"model": "other"}))
    finally:
        await backend.aclose()


@pytest.mark.parametrize(
    ("cut_after", "error"),
    [(0, UpstreamUnavailable), (1, UpstreamUnavailable), (3, UpstreamError)],
)
async def test_openai_backend_cut_before_an_answer_is_unavailable_after_it_an_error(
    scripted: str, script: OpenAIScript, cut_after: int, error: type[LlamaradaError]
) -> None:
    script.cut_after = cut_after  # events: a comment, the role, then the pieces
    backend = OpenAIBackend(scripted)
    try:
        with pytest.raises(error) as raised:
            await collect(backend, chat())
    finally:
        await backend.aclose()
    assert type(raised.value) is error


async def test_openai_backend_error_event_is_an_upstream_error(
    scripted: str, script: OpenAIScript
) -> None:
    script.error_event = True
    backend = OpenAIBackend(scripted)
    try:
        with pytest.raises(UpstreamError, match="scripted failure"):
            await collect(backend, chat())
    finally:
        await backend.aclose()


async def test_openai_backend_embeddings_in_input_order(
    scripted: str, script: OpenAIScript
) -> None:
    backend = OpenAIBackend(scripted)
    try:
        embedded = await backend.embed(MODEL, ["a", "b", "c"])
        script.embeddings = [[[0.1, 0.2], [0.3, 0.4]]]  # one vector per token: not usable
        with pytest.raises(UpstreamError, match="embeddings"):
            await backend.embed(MODEL, ["a"])
    finally:
        await backend.aclose()
    assert embedded.vectors == [[0.0, 0.5], [1.0, 0.5], [2.0, 0.5]]
    assert embedded.prompt_eval_count == 3


async def test_openai_upstream_key_comes_from_the_settings_and_is_never_logged(
    scripted: str, script: OpenAIScript, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = Settings(
        _env_file=None,
        upstreams=parse_upstreams(f"openai={scripted};key={KEY}"),
        data_dir=tmp_path,
        cache_ttl=0,
    )
    assert settings.llm_backend == "ollama"  # the pool
    assert KEY not in repr(settings)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": False}
    async with app_client(create_app(settings)) as client:
        answer = await client.post(
            "/v1/chat/completions", json=body, headers={"Authorization": "Bearer sk-caller"}
        )
        tags = await client.get("/api/tags")
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "Hi there"
    assert [m["name"] for m in tags.json()["models"]] == [MODEL]
    assert set(script.authorizations) == {f"Bearer {KEY}"}  # the caller's own never goes on
    assert KEY not in caplog.text


async def test_openai_upstream_tool_calls_reach_both_surfaces(
    scripted: str, script: OpenAIScript, tmp_path: Any
) -> None:
    script.pieces = []
    script.finish_reason = "tool_calls"
    script.tool_fragments = [
        {"index": 0, "id": "call_9", "function": {"name": "f", "arguments": '{"x": 1}'}}
    ]
    settings = Settings(
        _env_file=None, upstreams=parse_upstreams(f"openai={scripted}"), data_dir=tmp_path
    )
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    messages = [{"role": "user", "content": "call f"}]
    async with app_client(create_app(settings)) as client:
        ollama = await client.post(
            "/api/chat",
            json={"model": MODEL, "messages": messages, "tools": tools, "stream": False},
        )
        openai = await client.post(
            "/v1/chat/completions", json={"model": MODEL, "messages": messages, "tools": tools}
        )
    assert ollama.json()["message"]["tool_calls"][0]["function"] == {
        "name": "f",
        "arguments": {"x": 1},
    }
    choice = openai.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["id"] == "call_9"
    assert json.loads(choice["message"]["tool_calls"][0]["function"]["arguments"]) == {"x": 1}


def test_openai_backend_key_setting_is_a_secret() -> None:
    (upstream,) = parse_upstreams(f"openai=https://api.example.com/v1;key={KEY}")
    assert upstream.api_key == SecretStr(KEY)
    assert KEY not in repr(upstream)
