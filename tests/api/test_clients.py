"""The official clients, unchanged, against a running Llamarada with the real model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import ollama
import openai
import pytest
from langchain_ollama import ChatOllama, OllamaEmbeddings
from langchain_openai import ChatOpenAI

from app.core.config import Settings
from app.llm.base import ChatRequest
from app.main import create_app
from tests.fakes import ToolCallingBackend
from tests.servers import serve_in_thread

MODEL = "smollm2:135m"
SHORT = {"temperature": 0, "num_predict": 8}


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    """A Llamarada on the real embedded model, over real HTTP."""
    settings = Settings(_env_file=None)
    with serve_in_thread(create_app(settings)) as base:
        yield base


def test_ollama_client_chat_and_stream(url: str) -> None:
    with ollama.Client(host=url) as client:
        messages = [{"role": "user", "content": "Name a fruit."}]
        whole = client.chat(model=MODEL, messages=messages, options=SHORT)
        parts = list(client.chat(model=MODEL, messages=messages, options=SHORT, stream=True))
    assert whole.message.role == "assistant"
    assert whole.message.content
    assert whole.done
    assert whole.eval_count
    assert len(parts) > 2
    assert "".join(p.message.content or "" for p in parts) == whole.message.content


def test_ollama_client_generate_embed_list_show_ps(url: str) -> None:
    with ollama.Client(host=url) as client:
        generated = client.generate(model=MODEL, prompt="The sky is", options=SHORT)
        embedded = client.embed(model=MODEL, input=["hello", "world"])
        legacy = client.embeddings(model=MODEL, prompt="hello")
        listed = client.list()
        shown = client.show(MODEL)
        running = client.ps()
    assert generated.response
    assert len(embedded.embeddings) == 2
    assert len(embedded.embeddings[0]) > 100
    assert list(legacy.embedding) == pytest.approx(embedded.embeddings[0], rel=1e-4)
    # The repository's models/asistente Modelfile is built on the embedded model.
    assert [m.model for m in listed.models] == [MODEL, "asistente:latest"]
    assert shown.details is not None
    assert shown.details.format == "gguf"
    assert shown.capabilities == ["completion", "tools"]  # tools emulated under a grammar
    assert [m.model for m in running.models] == [MODEL]


def test_ollama_client_sees_errors(url: str) -> None:
    with ollama.Client(host=url) as client:
        with pytest.raises(ollama.ResponseError) as caught:
            client.chat(model="missing:1b", messages=[{"role": "user", "content": "x"}])
        with pytest.raises(ollama.ResponseError) as refused:
            client.pull("llama3.2")
    assert caught.value.status_code == 404
    assert refused.value.status_code == 403


def test_openai_sdk_chat_stream_models_embeddings(url: str, request: pytest.FixtureRequest) -> None:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused")
    request.addfinalizer(client.close)
    messages: Any = [{"role": "user", "content": "Name a color."}]
    completion = client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=8, temperature=0
    )
    choice = completion.choices[0]
    assert choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0
    stream = client.chat.completions.create(
        model=MODEL,
        messages=messages,
        max_tokens=8,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == choice.message.content
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == completion.usage.total_tokens
    assert [m.id for m in client.models.list()] == [MODEL, "asistente:latest"]
    vectors = client.embeddings.create(model=MODEL, input=["a cat", "a dog"])  # base64 on the wire
    assert len(vectors.data) == 2
    assert len(vectors.data[0].embedding) > 100


def test_openai_sdk_sees_openai_errors(url: str, request: pytest.FixtureRequest) -> None:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    request.addfinalizer(client.close)
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(
            model="missing:1b", messages=[{"role": "user", "content": "x"}]
        )
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.UnprocessableEntityError) as bad:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "x"}], n=3
        )
    assert bad.value.body is not None
    assert "n" in str(bad.value.body)


def test_openai_and_ollama_share_the_cache(url: str) -> None:
    import httpx

    question = "Say 'yes' and nothing else."
    native = httpx.post(
        f"{url}/api/chat",
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": question}],
            "options": {"temperature": 0, "num_predict": 300},
            "stream": False,
        },
        timeout=60,
    )
    assert native.json()["done_reason"] == "stop"
    compatible = httpx.post(
        f"{url}/v1/chat/completions",
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": question}],
            "temperature": 0,
            "max_tokens": 300,
        },
        timeout=60,
    )
    assert compatible.headers["x-cache"] == "HIT"
    assert (
        compatible.json()["choices"][0]["message"]["content"] == native.json()["message"]["content"]
    )


# LangChain's integrations keep their HTTP clients open; this test closes them itself.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_langchain_chat_ollama_embeddings_and_chat_openai(url: str) -> None:
    chat = ChatOllama(model=MODEL, base_url=url, temperature=0, num_predict=8)
    embeddings = OllamaEmbeddings(model=MODEL, base_url=url)
    compatible = ChatOpenAI(
        model=MODEL, base_url=f"{url}/v1", api_key="unused", temperature=0, max_tokens=8
    )
    try:
        answer = chat.invoke("Name an animal.")
        streamed = "".join(str(part.content) for part in chat.stream("Name an animal."))
        vectors = embeddings.embed_documents(["one", "two"])
        assert compatible.invoke("Name an animal.").content
    finally:
        for client in (chat._client, embeddings._client, compatible.root_client):
            if client is not None:
                client.close()
    assert isinstance(answer.content, str)
    assert answer.content
    assert streamed == answer.content
    assert len(vectors) == 2
    assert len(vectors[0]) > 100


def test_openai_sdk_tools_round_trip(settings: Settings, request: pytest.FixtureRequest) -> None:
    backend = ToolCallingBackend()
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather in a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    with serve_in_thread(create_app(settings, backend=backend)) as base:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused")
        request.addfinalizer(client.close)
        messages: Any = [{"role": "user", "content": "Weather in Monterrey?"}]
        first = client.chat.completions.create(model=backend.model, messages=messages, tools=tools)
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.tool_calls
        call: Any = choice.message.tool_calls[0]
        assert call.function.name == "get_weather"
        assert json.loads(call.function.arguments) == {"city": "Monterrey"}
        messages += [
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": "sunny, 31 °C"},
        ]
        second = client.chat.completions.create(model=backend.model, messages=messages, tools=tools)
        assert second.choices[0].message.content == "It is sunny, 31 °C in Monterrey."
        streamed = list(
            client.chat.completions.create(
                model=backend.model,
                messages=[{"role": "user", "content": "Weather?"}],
                tools=tools,
                stream=True,
            )
        )
        deltas = [c.choices[0].delta for c in streamed if c.choices]
        assert any(d.tool_calls for d in deltas)
        assert streamed[-1].choices[0].finish_reason == "tool_calls"
    # The tool result reached the backend named, as Ollama expects it.
    last = backend.requests[1]
    assert isinstance(last, ChatRequest)
    assert last.messages[-1].role == "tool"
    assert last.messages[-1].tool_name == "get_weather"
    assert last.messages[1].tool_calls == [
        {"function": {"name": "get_weather", "arguments": {"city": "Monterrey"}}}
    ]
