"""Response shapes against the samples in Ollama's and OpenAI's published API documentation.

Each sample below carries the documented field names and JSON types (values are ours). A
response passes when it has every documented field with the documented type.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from app.main import create_app
from tests.conftest import app_client
from tests.fakes import ScriptedBackend

MODEL = "scripted:1b"
FINAL_STATS = {
    "total_duration": 1,
    "load_duration": 1,
    "prompt_eval_count": 1,
    "prompt_eval_duration": 1,
    "eval_count": 1,
    "eval_duration": 1,
}
OLLAMA_CHAT_FINAL = {
    "model": "llama3.2",
    "created_at": "2023-08-04T19:22:45.499127Z",
    "message": {"role": "assistant", "content": ""},
    "done_reason": "stop",
    "done": True,
    **FINAL_STATS,
}
OLLAMA_CHAT_PART = {
    "model": "llama3.2",
    "created_at": "2023-08-04T08:52:19.385406455-07:00",
    "message": {"role": "assistant", "content": "The"},
    "done": False,
}
OLLAMA_GENERATE_FINAL = {
    "model": "llama3.2",
    "created_at": "2023-08-04T19:22:45.499127Z",
    "response": "",
    "done": True,
    "done_reason": "stop",
    **FINAL_STATS,
}
OLLAMA_TAGS = {
    "models": [
        {
            "name": "codellama:13b",
            "modified_at": "2023-11-04T14:56:49.277302595-07:00",
            "size": 1,
            "digest": "9f43",
            "details": {},
        }
    ]
}
OLLAMA_EMBED = {
    "model": "all-minilm",
    "embeddings": [[0.01, -0.02]],
    "total_duration": 1,
    "load_duration": 1,
    "prompt_eval_count": 8,
}
OLLAMA_LOAD = {
    "model": "llama3.2",
    "created_at": "2024-09-12T21:17:29.110811Z",
    "message": {"role": "assistant", "content": ""},
    "done_reason": "load",
    "done": True,
}
OPENAI_COMPLETION = {
    "id": "chatcmpl-123",
    "object": "chat.completion",
    "created": 1677652288,
    "model": "gpt-4o-mini",
    "system_fingerprint": "fp_44709d6fcb",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello there"},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21},
}
OPENAI_CHUNK = {
    "id": "chatcmpl-123",
    "object": "chat.completion.chunk",
    "created": 1694268190,
    "model": "gpt-4o-mini",
    "system_fingerprint": "fp_44709d6fcb",
    "choices": [
        {"index": 0, "delta": {"content": "Hello"}, "logprobs": None, "finish_reason": None}
    ],
}
OPENAI_EMBEDDINGS = {
    "object": "list",
    "data": [{"object": "embedding", "embedding": [0.0023, -0.0093], "index": 0}],
    "model": "text-embedding-ada-002",
    "usage": {"prompt_tokens": 8, "total_tokens": 8},
}
OPENAI_MODELS = {
    "object": "list",
    "data": [{"id": "model-id-0", "object": "model", "created": 1686935002, "owned_by": "me"}],
}
OPENAI_ERROR = {
    "error": {"message": "x", "type": "invalid_request_error", "param": None, "code": None}
}


def conforms(sample: Any, actual: Any, path: str = "") -> None:
    """Every field of the sample is in the response, with the same JSON type."""
    if sample is None:
        return  # documented as null: any value (or null) is accepted
    if isinstance(sample, bool):
        assert isinstance(actual, bool), path
    elif isinstance(sample, int | float):
        assert isinstance(actual, int | float), path
        assert not isinstance(actual, bool), path
    elif isinstance(sample, str):
        assert isinstance(actual, str), path
    elif isinstance(sample, list):
        assert isinstance(actual, list), path
        if not sample:
            return  # documented empty here (the first event of a stream): a list is enough
        assert actual, f"{path} is empty"
        for item in actual:
            conforms(sample[0], item, f"{path}[]")
    else:
        assert isinstance(actual, dict), path
        for key, value in sample.items():
            assert key in actual, f"{path}.{key} is missing"
            conforms(value, actual[key], f"{path}.{key}")


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An app on the scripted backend."""
    async with app_client(create_app(settings, backend=ScriptedBackend())) as client:
        yield client


def chat(**extra: Any) -> dict[str, Any]:
    """A chat request for the scripted model."""
    return {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **extra}


async def test_contract_ollama_chat(client: httpx.AsyncClient) -> None:
    lines = [
        json.loads(x) for x in (await client.post("/api/chat", json=chat())).text.split("\n") if x
    ]
    for line in lines[:-1]:
        conforms(OLLAMA_CHAT_PART, line)
    conforms(OLLAMA_CHAT_FINAL, lines[-1])
    whole = (await client.post("/api/chat", json=chat(stream=False))).json()
    conforms(OLLAMA_CHAT_FINAL, whole)


async def test_contract_ollama_generate_tags_embed(client: httpx.AsyncClient) -> None:
    body = {"model": MODEL, "prompt": "hi", "stream": False}
    conforms(OLLAMA_GENERATE_FINAL, (await client.post("/api/generate", json=body)).json())
    conforms(OLLAMA_TAGS, (await client.get("/api/tags")).json())
    embedded = await client.post("/api/embed", json={"model": MODEL, "input": "hi"})
    conforms(OLLAMA_EMBED, embedded.json())


async def test_contract_ollama_empty_messages_load_the_model(client: httpx.AsyncClient) -> None:
    loaded = (await client.post("/api/chat", json=chat(messages=[], stream=False))).json()
    conforms(OLLAMA_LOAD, loaded)
    assert loaded["done_reason"] == "load"
    unloaded = await client.post("/api/chat", json=chat(messages=[], keep_alive=0, stream=False))
    assert unloaded.json()["done_reason"] == "unload"
    generate = await client.post("/api/generate", json={"model": MODEL, "stream": False})
    assert generate.json()["done_reason"] == "load"
    missing = await client.post("/api/chat", json={"model": "nope:1b", "messages": []})
    assert missing.status_code == 404


async def test_contract_ollama_accepts_every_documented_option(client: httpx.AsyncClient) -> None:
    options = {
        "num_keep": 5, "seed": 42, "num_predict": 100, "top_k": 20, "top_p": 0.9, "min_p": 0.0,
        "typical_p": 0.7, "repeat_last_n": 33, "temperature": 0.8, "repeat_penalty": 1.2,
        "presence_penalty": 1.5, "frequency_penalty": 1.0, "mirostat": 1, "mirostat_tau": 0.8,
        "mirostat_eta": 0.6, "penalize_newline": True, "stop": ["\n", "user:"], "numa": False,
        "num_ctx": 1024, "num_batch": 2, "num_gpu": 1, "main_gpu": 0, "low_vram": False,
        "vocab_only": False, "use_mmap": True, "use_mlock": False, "num_thread": 8,
    }  # fmt: skip
    body = {"model": MODEL, "prompt": "Why?", "stream": False, "options": options}
    assert (await client.post("/api/generate", json=body)).status_code == 200


async def test_contract_openai_completion_and_chunks(client: httpx.AsyncClient) -> None:
    whole = await client.post("/v1/chat/completions", json=chat())
    conforms(OPENAI_COMPLETION, whole.json())
    streamed = await client.post("/v1/chat/completions", json=chat(stream=True))
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = [line[6:] for line in streamed.text.split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    for event in events[:-1]:
        conforms(OPENAI_CHUNK | {"choices": [{"index": 0, "delta": {}}]}, json.loads(event))
    assert json.loads(events[-2])["choices"][0]["finish_reason"] == "stop"


async def test_contract_openai_embeddings_models_errors(client: httpx.AsyncClient) -> None:
    embedded = await client.post("/v1/embeddings", json={"model": MODEL, "input": ["a", "b"]})
    conforms(OPENAI_EMBEDDINGS, embedded.json())
    conforms(OPENAI_MODELS, (await client.get("/v1/models")).json())
    bad = await client.post("/v1/chat/completions", json={"model": MODEL, "messages": "x"})
    assert bad.status_code == 422
    conforms(OPENAI_ERROR, bad.json())
    assert bad.json()["error"]["param"] == "messages"
    missing = await client.post("/v1/chat/completions", json=chat(model="nope:1b"))
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"
