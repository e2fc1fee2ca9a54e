"""The embedded llama.cpp backend with the real SmolLM2 model."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.core.config import EmbeddedSettings, Settings
from app.core.errors import InvalidRequest, ModelNotFound, Overloaded
from app.llm.base import ChatRequest, Chunk
from app.llm.embedded import EmbeddedBackend, default_model_path
from app.main import create_app
from tests.conftest import app_client

MODEL = "smollm2:135m"


def chat(content: str, num_predict: int = 8, **extra: Any) -> ChatRequest:
    """A deterministic chat request for the embedded model."""
    return ChatRequest.model_validate(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": content}],
            "options": {"temperature": 0, "num_predict": num_predict},
            **extra,
        }
    )


@pytest.fixture
async def backend() -> AsyncIterator[EmbeddedBackend]:
    """A started embedded backend with a waiting line of one."""
    model = EmbeddedBackend(EmbeddedSettings(max_queue=1, retry_after=3))
    await model.start()
    yield model
    await model.aclose()


async def collect(stream: AsyncIterator[Chunk]) -> list[Chunk]:
    """Every chunk of a stream."""
    return [chunk async for chunk in stream]


def test_default_model_path_is_the_packaged_gguf() -> None:
    path = default_model_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.is_file()


async def test_embedded_same_seed_same_answer(backend: EmbeddedBackend) -> None:
    first = await collect(backend.chat(chat("Tell me a joke.", 12)))
    second = await collect(backend.chat(chat("Tell me a joke.", 12)))
    assert [c.content for c in first] == [c.content for c in second]
    assert first[-1].done_reason == "length"
    assert first[-1].eval_count == 12


async def test_embedded_stop_sequence_ends_the_answer(backend: EmbeddedBackend) -> None:
    request = chat("Count from 1 to 10, separated by commas.", 40)
    assert request.options is not None
    request.options.stop = ["5"]
    chunks = await collect(backend.chat(request))
    text = "".join(c.content for c in chunks)
    assert "5" not in text
    assert chunks[-1].done_reason == "stop"


async def test_embedded_full_queue_answers_overloaded(backend: EmbeddedBackend) -> None:
    # One request runs, one waits (max_queue=1): a third is turned away at once.
    running = backend.chat(chat("Write a long story.", 200))
    await anext(running)
    waiting = asyncio.ensure_future(collect(backend.chat(chat("Hi", 2))))
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    with pytest.raises(Overloaded) as caught:
        await collect(backend.chat(chat("Hello", 2)))
    assert time.perf_counter() - started < 0.5
    assert caught.value.retry_after == 3
    await running.aclose()
    assert (await waiting)[-1].done


async def test_embedded_reader_leaving_stops_generation(backend: EmbeddedBackend) -> None:
    stream = backend.chat(chat("Write a very long story about the sea.", 2000))
    await anext(stream)
    assert backend.busy
    await stream.aclose()
    # 2000 tokens take well over 20 s here; a stopped generation frees the model in a token.
    for _ in range(100):
        if not backend.busy:
            break
        await asyncio.sleep(0.1)
    assert not backend.busy


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"think": True}, "think"),
    ],
)
async def test_embedded_rejects_what_the_model_cannot_do(
    backend: EmbeddedBackend, extra: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidRequest, match=field):
        await collect(backend.chat(chat("hi", **extra)))


async def test_embedded_rejects_images(backend: EmbeddedBackend) -> None:
    request = ChatRequest.model_validate(
        {"model": MODEL, "messages": [{"role": "user", "content": "?", "images": ["aGk="]}]}
    )
    with pytest.raises(InvalidRequest, match="images"):
        await collect(backend.chat(request))


async def test_embedded_unknown_model(backend: EmbeddedBackend) -> None:
    with pytest.raises(ModelNotFound, match=MODEL):
        await collect(backend.chat(chat("hi").model_copy(update={"model": "other:1b"})))


async def test_embedded_prompt_over_the_context_is_a_clear_error() -> None:
    model = EmbeddedBackend(EmbeddedSettings(n_ctx=256))
    await model.start()
    try:
        with pytest.raises(InvalidRequest, match="context holds 256"):
            await collect(model.chat(chat("word " * 400)))
    finally:
        await model.aclose()


async def test_embedded_embeddings_are_normalized_and_meaningful(
    backend: EmbeddedBackend,
) -> None:
    result = await backend.embed(MODEL, ["The cat sleeps.", "A cat is sleeping.", "Tax law."])
    assert len(result.vectors) == 3
    assert result.prompt_eval_count > 0
    for vector in result.vectors:
        assert math.isclose(sum(v * v for v in vector), 1.0, rel_tol=1e-3)

    def cosine(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    cats, other = result.vectors[:2], result.vectors[2]
    assert cosine(cats[0], cats[1]) > cosine(cats[0], other)


async def test_embedded_full_queue_is_503_with_retry_after(settings: Settings) -> None:
    config = settings.model_copy(
        update={"embedded": EmbeddedSettings(max_queue=0, retry_after=4), "cache_ttl": 0}
    )

    def body(topic: str) -> dict[str, object]:
        content = f"Write a long poem about {topic}."
        return {
            "model": MODEL,
            "messages": [{"role": "user", "content": content}],
            "options": {"num_predict": 150},
        }

    topics = ("the sea", "the sky", "the moon")  # different requests: no single flight
    async with app_client(create_app(config)) as client:
        responses = await asyncio.gather(
            *(client.post("/api/chat", json=body(topic)) for topic in topics)
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses[0] == 200
    assert 503 in statuses
    busy = next(r for r in responses if r.status_code == 503)
    assert busy.headers["retry-after"] == "4"
    assert busy.json()["error"]["type"] == "overloaded_error"


async def test_embedded_show_names_the_model_file_without_its_place(
    backend: EmbeddedBackend,
) -> None:
    shown = await backend.show("smollm2:135m")
    path = default_model_path()
    assert shown["modelfile"].startswith(f"FROM {path.name}\n")
    assert str(path.parent) not in json.dumps(shown)


async def test_embedded_same_request_same_answer_whatever_came_before(
    backend: EmbeddedBackend,
) -> None:
    # With the repeat penalty on (Ollama's default), reusing the last prompt's cached prefix
    # gave a different (and garbled) answer to the same request the second time.
    first = await collect(backend.chat(chat("Name a color.", 8)))
    await collect(backend.chat(chat("Write about the sea.", 8)))
    again = await collect(backend.chat(chat("Name a color.", 8)))
    twice = await collect(backend.chat(chat("Name a color.", 8)))
    text = ["".join(chunk.content for chunk in answer) for answer in (first, again, twice)]
    assert text[0] == text[1] == text[2]
