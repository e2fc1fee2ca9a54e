"""/api/chat and /api/generate on the real embedded model, through the cache."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from app.main import create_app
from tests.conftest import app_client
from tests.fakes import CountingBackend

MODEL = "smollm2:135m"


def chat_body(content: str = "Name a color.", **extra: Any) -> dict[str, Any]:
    """A short, deterministic chat request."""
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "options": {"temperature": 0, "seed": 7, "num_predict": 12},
    }
    body.update(extra)
    return body


def ndjson(response: httpx.Response) -> list[dict[str, Any]]:
    """The NDJSON lines of a streamed answer."""
    return [json.loads(line) for line in response.text.splitlines() if line]


def text_of(lines: list[dict[str, Any]]) -> str:
    """The answer's text, joined from its chat chunks."""
    return "".join(line["message"]["content"] for line in lines)


async def test_chat_streams_several_chunks_with_final_counters(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/api/chat", json=chat_body())
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = ndjson(response)
    assert len(lines) > 3
    assert all(not line["done"] for line in lines[:-1])
    final = lines[-1]
    assert final["done"] is True
    assert final["done_reason"] in ("stop", "length")
    assert final["prompt_eval_count"] > 0
    assert 0 < final["eval_count"] <= 12
    for name in ("total_duration", "prompt_eval_duration", "eval_duration"):
        assert isinstance(final[name], int)
        assert final[name] > 0
    assert final["model"] == MODEL
    assert final["created_at"].endswith("Z")
    assert text_of(lines).strip()


async def test_chat_repeat_is_a_cache_hit_without_a_model_call(
    client: httpx.AsyncClient, model: CountingBackend
) -> None:
    body = chat_body(options={"temperature": 0, "seed": 7, "num_predict": 200})
    first = await client.post("/api/chat", json=body)
    assert first.headers["x-cache"] == "MISS"
    assert ndjson(first)[-1]["done_reason"] == "stop"
    assert model.calls == 1

    again = await client.post("/api/chat", json=body)
    assert again.headers["x-cache"] == "HIT"
    assert model.calls == 1
    # The replayed stream has the same pieces in the same order.
    assert [line["message"] for line in ndjson(again)] == [
        line["message"] for line in ndjson(first)
    ]

    whole = await client.post("/api/chat", json={**body, "stream": False})
    assert whole.headers["x-cache"] == "HIT"
    assert whole.json()["message"]["content"] == text_of(ndjson(first))
    assert whole.json()["eval_count"] == ndjson(first)[-1]["eval_count"]
    assert model.calls == 1


async def test_chat_cut_by_the_clients_limit_is_stored(
    client: httpx.AsyncClient, model: CountingBackend
) -> None:
    body = chat_body("Say hello in Spanish.", options={"temperature": 0, "num_predict": 24})
    first = await client.post("/api/chat", json=body)
    last = ndjson(first)[-1]
    assert last["done_reason"] == "length"
    assert last["eval_count"] == 24  # tokens, not streamed pieces
    again = await client.post("/api/chat", json=body)
    assert again.headers["x-cache"] == "HIT"
    assert text_of(ndjson(again)) == text_of(ndjson(first))
    assert model.calls == 1


async def test_chat_cut_by_the_server_cap_is_not_stored(
    settings: Settings, model: CountingBackend
) -> None:
    capped = settings.model_copy(
        update={"limits": settings.limits.model_copy(update={"max_num_predict": 4})}
    )
    body = chat_body(options={"temperature": 0})
    async with app_client(create_app(capped, backend=model)) as client:
        first = await client.post("/api/chat", json=body)
        assert ndjson(first)[-1]["done_reason"] == "length"
        again = await client.post("/api/chat", json=body)
    assert again.headers["x-cache"] == "MISS"
    assert model.calls == 2


@pytest.mark.parametrize(
    ("header", "second_status", "third_status", "calls"),
    [
        ("no-cache", "BYPASS", "HIT", 2),  # skips the read, still refreshes the entry
        ("no-store", "HIT", "HIT", 1),  # reads, but a miss would not be written
    ],
)
async def test_chat_cache_control_header(
    client: httpx.AsyncClient,
    model: CountingBackend,
    header: str,
    second_status: str,
    third_status: str,
    calls: int,
) -> None:
    body = chat_body(options={"temperature": 0, "seed": 1, "num_predict": 200})
    await client.post("/api/chat", json=body)
    second = await client.post("/api/chat", json=body, headers={"Cache-Control": header})
    assert second.headers["x-cache"] == second_status
    third = await client.post("/api/chat", json=body)
    assert third.headers["x-cache"] == third_status
    assert model.calls == calls


async def test_chat_no_store_miss_is_not_written(
    client: httpx.AsyncClient, model: CountingBackend
) -> None:
    body = chat_body("Name a fruit.", options={"temperature": 0, "num_predict": 200})
    first = await client.post("/api/chat", json=body, headers={"Cache-Control": "no-store"})
    assert first.headers["x-cache"] == "MISS"
    second = await client.post("/api/chat", json=body)
    assert second.headers["x-cache"] == "MISS"
    assert model.calls == 2


async def test_chat_identical_concurrent_requests_make_one_model_call(
    client: httpx.AsyncClient, model: CountingBackend
) -> None:
    body = chat_body("Count to five.", options={"temperature": 0, "num_predict": 24})
    responses = await asyncio.gather(*(client.post("/api/chat", json=body) for _ in range(20)))
    assert model.calls == 1
    texts = {text_of(ndjson(response)) for response in responses}
    assert len(texts) == 1
    assert all(response.status_code == 200 for response in responses)


async def test_generate_streams_and_answers_whole(client: httpx.AsyncClient) -> None:
    body = {
        "model": MODEL,
        "prompt": "Why is the sky blue?",
        "system": "Answer in one sentence.",
        "options": {"temperature": 0, "num_predict": 10},
    }
    streamed = await client.post("/api/generate", json=body)
    lines = ndjson(streamed)
    assert len(lines) > 3
    assert lines[-1]["done"] is True
    whole = await client.post("/api/generate", json={**body, "stream": False})
    data = whole.json()
    assert data["response"] == "".join(line["response"] for line in lines)
    assert data["done"] is True
    assert data["eval_count"] == lines[-1]["eval_count"]


async def test_generate_raw_prompt_is_sent_as_is(client: httpx.AsyncClient) -> None:
    body = {
        "model": MODEL,
        "prompt": "1, 2, 3, 4,",
        "raw": True,
        "stream": False,
        "options": {"temperature": 0, "num_predict": 4},
    }
    data = (await client.post("/api/generate", json=body)).json()
    assert data["prompt_eval_count"] < 12  # no chat template around it
    assert data["response"]


async def test_chat_json_format_returns_json(client: httpx.AsyncClient) -> None:
    schema = {
        "type": "object",
        "properties": {"color": {"type": "string", "enum": ["red", "green", "blue"]}},
        "required": ["color"],
    }
    body = chat_body("Pick a color.", format=schema, stream=False)
    body["options"]["num_predict"] = 40
    data = (await client.post("/api/chat", json=body)).json()
    assert json.loads(data["message"]["content"])["color"] in ("red", "green", "blue")


async def test_tags_lists_the_embedded_model(client: httpx.AsyncClient) -> None:
    data = (await client.get("/api/tags")).json()
    (entry,) = data["models"]
    assert entry["name"] == entry["model"] == MODEL
    assert entry["size"] > 50_000_000
    assert len(entry["digest"]) == 64
    assert entry["details"]["format"] == "gguf"
    assert entry["details"]["quantization_level"] == "Q4_1"


async def test_chat_default_model_when_none_named(client: httpx.AsyncClient) -> None:
    body = chat_body(stream=False)
    del body["model"]
    response = await client.post("/api/chat", json=body)
    assert response.status_code == 200
    assert response.json()["model"] == MODEL
