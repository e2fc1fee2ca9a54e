"""Cited answers on the scripted model: prompt, refusal, streaming, window, cache, kb: models."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.core.auth import ANONYMOUS
from app.core.cache import CachePolicy
from app.core.config import Settings
from app.llm.base import ChatRequest, Message
from app.main import create_app
from app.rag.build import Rag
from tests.conftest import app_client
from tests.fakes import ScriptedBackend
from tests.rag.conftest import MODEL, upload

LLAMAS = b"# Llamas\n\n## Food\n\nLlamas eat grass and hay, about two percent of their body weight a day.\n\n## Home\n\nLlamas come from the Andes mountains of South America.\n"  # noqa: E501
TORTILLA = b"La tortilla de patatas se hace con huevos, patatas y aceite de oliva."


@pytest.fixture
async def app(settings: Settings, backend: ScriptedBackend) -> AsyncIterator[FastAPI]:
    """An app on the scripted model with a `zoo` collection holding two documents."""
    settings = settings.model_copy(update={"default_model": MODEL})
    app = create_app(settings, backend=backend)
    async with app_client(app) as client:
        app.state.test_client = client
        await client.post("/api/rag/collections", json={"name": "zoo"})
        response = await upload(client, "zoo", ("llamas.md", LLAMAS), ("tortilla.txt", TORTILLA))
        assert response.status_code == 201
        yield app


@pytest.fixture
def client(app: FastAPI) -> httpx.AsyncClient:
    """The app's client."""
    client: httpx.AsyncClient = app.state.test_client
    return client


async def ask(client: httpx.AsyncClient, question: str, **extra: Any) -> httpx.Response:
    """POST /api/rag/query on the zoo collection."""
    return await client.post(
        "/api/rag/query", json={"collection": "zoo", "question": question, **extra}
    )


async def test_query_answers_with_numbered_sources(
    client: httpx.AsyncClient, backend: ScriptedBackend
) -> None:
    response = await ask(client, "What do llamas eat?")
    assert response.status_code == 200
    body = response.json()
    assert body["answer"] == "The answer is in the documents [1]."
    assert body["found"] is True
    assert body["cited"] == [1]
    first = body["sources"][0]
    assert first["n"] == 1
    assert (first["source"], first["heading"]) == ("llamas.md", "Llamas > Food")
    assert "grass and hay" in first["snippet"]
    assert set(first) >= {"document_id", "chunk_id", "chunk_index", "score", "page"}
    prompt = backend.requests[-1]
    assert isinstance(prompt, ChatRequest)
    assert "don't make anything up" in prompt.messages[0].content
    assert "[1] (source: llamas.md, Llamas > Food)" in prompt.messages[-1].content


async def test_query_in_spanish_uses_the_seeds_spanish_rule(
    client: httpx.AsyncClient, backend: ScriptedBackend
) -> None:
    body = (await ask(client, "¿Con qué se hace la tortilla de patatas?")).json()
    assert body["language"] == "es"
    assert body["sources"][0]["source"] == "tortilla.txt"
    prompt = backend.requests[-1]
    assert isinstance(prompt, ChatRequest)
    assert "di que no lo sabes, no inventes información" in prompt.messages[0].content
    assert "Respuesta útil en español:" in prompt.messages[-1].content


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Who won the football World Cup in 1998?", "don't contain the answer"),
        ("¿Quién pintó La Gioconda?", "No encuentro la respuesta"),
    ],
)
async def test_query_not_in_documents_refuses_without_calling_the_model(
    client: httpx.AsyncClient, backend: ScriptedBackend, question: str, expected: str
) -> None:
    calls = backend.calls
    body = (await ask(client, question)).json()
    assert body["found"] is False
    assert expected in body["answer"]
    assert body["sources"] == []
    assert backend.calls == calls


async def test_query_stream_sends_sources_first_then_tokens(client: httpx.AsyncClient) -> None:
    response = await ask(client, "Where do llamas come from?", stream=True)
    assert response.headers["content-type"].startswith("application/x-ndjson")
    events = [json.loads(line) for line in response.text.splitlines()]
    assert events[0]["event"] == "sources"
    assert events[0]["sources"][0]["source"] == "llamas.md"
    assert [e["event"] for e in events[1:]] == ["token", "token", "token", "done"]
    assert "".join(e["content"] for e in events[1:-1]) == events[-1]["answer"]


async def test_query_drops_chunks_that_do_not_fit_the_window_visibly(
    settings: Settings, backend: ScriptedBackend
) -> None:
    rag = settings.rag.model_copy(update={"context_tokens": 700, "answer_tokens": 100})
    settings = settings.model_copy(update={"default_model": MODEL, "rag": rag})
    async with app_client(create_app(settings, backend=backend)) as client:
        await client.post("/api/rag/collections", json={"name": "zoo"})
        long = [
            (f"part{i}.txt", f"Llama fact {i}: ".encode() + b"llamas hum. " * 60) for i in range(3)
        ]
        await upload(client, "zoo", *long)
        body = (await ask(client, "What do llamas do?", k=3, min_score=0)).json()
    assert len(body["sources"]) == 1
    assert len(body["dropped"]) == 2
    prompt = backend.requests[-1]
    assert isinstance(prompt, ChatRequest)
    assert sum(len(m.content) for m in prompt.messages) <= (700 - 100) * 3


async def test_query_cache_misses_after_an_ingest_that_changes_the_answer(
    client: httpx.AsyncClient, backend: ScriptedBackend
) -> None:
    question = "How much do llamas eat per day?"
    assert (await ask(client, question)).headers["x-cache"] == "MISS"
    assert (await ask(client, question)).headers["x-cache"] == "HIT"
    calls = backend.calls
    update = b"Update: adult llamas eat about 4 kilograms of hay per day."
    assert (await upload(client, "zoo", ("update.txt", update))).status_code == 201
    again = await ask(client, question)
    assert again.headers["x-cache"] == "MISS"
    assert backend.calls == calls + 1
    assert "update.txt" in {s["source"] for s in again.json()["sources"]}


async def test_search_filters_by_source_and_threshold(client: httpx.AsyncClient) -> None:
    search = {"query": "llamas eat", "k": 5, "sources": ["tortilla.txt"]}
    results = (await client.post("/api/rag/collections/zoo/search", json=search)).json()
    assert {r["source"] for r in results["results"]} == {"tortilla.txt"}
    strict = {"query": "llamas eat grass", "k": 5, "min_score": 0.99}
    results = (await client.post("/api/rag/collections/zoo/search", json=strict)).json()
    assert all(r["score"] >= 0.99 for r in results["results"])


async def test_rag_chat_answers_kb_model_with_sources(app: FastAPI) -> None:
    rag: Rag = app.state.rag
    request = ChatRequest(
        model="kb:zoo", messages=[Message(role="user", content="What do llamas eat?")]
    )
    reply = await rag.answers.rag_chat(request, CachePolicy(), caller=ANONYMOUS)
    assert reply.sources is not None
    chunks = [chunk async for chunk in reply.chunks]
    text = "".join(chunk.content for chunk in chunks)
    assert reply.model == "kb:zoo"
    assert chunks[-1].done
    assert text.startswith("The answer is in the documents [1].")
    assert "Sources:\n[1] llamas.md" in text
    assert reply.sources[0]["source"] == "llamas.md"


async def test_rag_chat_refuses_without_the_model(app: FastAPI, backend: ScriptedBackend) -> None:
    rag: Rag = app.state.rag
    calls = backend.calls
    request = ChatRequest(
        model="kb:zoo", messages=[Message(role="user", content="¿Quién pintó La Gioconda?")]
    )
    reply = await rag.answers.rag_chat(request, CachePolicy(), caller=ANONYMOUS)
    text = "".join([chunk.content async for chunk in reply.chunks])
    assert "No encuentro la respuesta" in text
    assert backend.calls == calls


async def test_list_kb_models_names_each_collection(app: FastAPI) -> None:
    rag: Rag = app.state.rag
    models = await rag.answers.list_kb_models(caller=ANONYMOUS)
    assert [m.name for m in models] == ["kb:zoo"]
    assert models[0].details["documents"] == 2


async def test_rag_metrics_are_exported(client: httpx.AsyncClient) -> None:
    await ask(client, "What do llamas eat?")
    text = (await client.get("/metrics")).text
    assert 'llama_rag_documents_total{status="indexed"} 2.0' in text
    assert 'llama_rag_queries_total{outcome="answered"} 1.0' in text
    assert "llama_rag_retrieval_duration_seconds_count" in text
