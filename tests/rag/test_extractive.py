"""Extractive answers: the sources' own sentences with their numbers, no model, same refusals."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from app.main import create_app
from app.rag.extract import best_quotes, extractive_answer, sentences
from tests.conftest import app_client
from tests.fakes import ScriptedBackend
from tests.rag.conftest import MODEL, upload

LLAMAS = (
    b"# Llamas\n\n## Food\n\nLlamas eat grass and hay. An adult eats about two percent of its "
    b"body weight a day. They drink little water.\n\n## Home\n\nLlamas come from the Andes "
    b"mountains of South America. They were domesticated thousands of years ago.\n"
)
TORTILLA = (
    "La tortilla de patatas se hace con huevos, patatas y aceite de oliva. Muchos le añaden "
    "cebolla. Se sirve caliente o fría."
).encode()


@pytest.fixture
async def client(settings: Settings, backend: ScriptedBackend) -> AsyncIterator[httpx.AsyncClient]:
    """An app on the scripted model with a `zoo` collection holding two documents."""
    settings = settings.model_copy(update={"default_model": MODEL})
    async with app_client(create_app(settings, backend=backend)) as client:
        await client.post("/api/rag/collections", json={"name": "zoo"})
        response = await upload(client, "zoo", ("llamas.md", LLAMAS), ("tortilla.txt", TORTILLA))
        assert response.status_code == 201
        yield client


async def ask(client: httpx.AsyncClient, question: str, **extra: Any) -> httpx.Response:
    """POST /api/rag/query on the zoo collection."""
    return await client.post(
        "/api/rag/query", json={"collection": "zoo", "question": question, **extra}
    )


async def test_extractive_answer_quotes_the_sources_without_a_model(
    client: httpx.AsyncClient, backend: ScriptedBackend
) -> None:
    calls = backend.calls
    response = await ask(client, "How much do llamas eat a day?", answer_mode="extractive")
    assert response.status_code == 200
    assert response.headers["x-cache"] == "BYPASS"
    body = response.json()
    assert backend.calls == calls
    assert body["found"] is True
    assert body["answer_mode"] == "extractive"
    assert body["model"] is None
    assert body["answer"].startswith("According to [1]:")
    assert "“An adult eats about two percent of its body weight a day.”" in body["answer"]
    assert body["cited"][0] == 1
    # Every quote is a sentence of the source it names.
    for number in body["cited"]:
        assert f"[{number}]" in body["answer"]
    source = body["sources"][0]
    assert source["n"] == 1
    assert "two percent" in source["text"]


async def test_extractive_answer_in_spanish_frames_in_spanish(client: httpx.AsyncClient) -> None:
    body = (
        await ask(client, "¿Con qué se hace la tortilla de patatas?", answer_mode="extractive")
    ).json()
    assert body["language"] == "es"
    assert body["answer"].startswith("Según [1]: «La tortilla de patatas se hace con huevos")
    assert body["sources"][0]["source"] == "tortilla.txt"


@pytest.mark.parametrize(
    "question",
    [
        "What do llamas eat?",
        "Where do llamas come from?",
        "¿Con qué se hace la tortilla?",
        "Who won the football World Cup in 1998?",
        "¿Quién pintó La Gioconda?",
    ],
)
async def test_extractive_refuses_exactly_when_generative_does(
    client: httpx.AsyncClient, backend: ScriptedBackend, question: str
) -> None:
    generative = (await ask(client, question)).json()
    calls = backend.calls
    extractive = (await ask(client, question, answer_mode="extractive")).json()
    assert backend.calls == calls
    assert extractive["found"] == generative["found"]
    assert [s["chunk_id"] for s in extractive["sources"]] == [
        s["chunk_id"] for s in generative["sources"]
    ]
    if not generative["found"]:
        assert extractive["answer"] == generative["answer"]
        assert extractive["cited"] == []


async def test_extractive_stream_sends_sources_then_the_quotes(client: httpx.AsyncClient) -> None:
    response = await ask(
        client, "Where do llamas come from?", answer_mode="extractive", stream=True
    )
    events = [json.loads(line) for line in response.text.splitlines()]
    assert [e["event"] for e in events] == ["sources", "token", "done"]
    assert events[0]["answer_mode"] == "extractive"
    assert events[1]["content"] == events[2]["answer"]
    assert "“Llamas come from the Andes mountains of South America.”" in events[2]["answer"]
    assert events[2]["cited"] == [1]


async def test_query_answer_mode_must_be_known(client: httpx.AsyncClient) -> None:
    response = await ask(client, "What do llamas eat?", answer_mode="creative")
    assert response.status_code == 422
    assert "answer_mode" in response.json()["error"]["message"]


def test_sentences_join_wrapped_lines_and_split_at_sentence_ends() -> None:
    passage = "First sentence is\nwrapped here. Second one\nfollows it.\n\nA new paragraph starts."
    assert sentences(passage) == [
        "First sentence is wrapped here.",
        "Second one follows it.",
        "A new paragraph starts.",
    ]


def test_best_quotes_prefer_the_sentence_sharing_the_rare_words() -> None:
    passages = [
        "Llamas are animals. Llamas eat grass and hay every day.",
        "Alpacas are animals too. Their wool is fine.",
    ]
    quotes = best_quotes("What do llamas eat?", passages, 3)
    assert quotes[0].text == "Llamas eat grass and hay every day."
    assert quotes[0].n == 1
    assert all(quote.score >= quotes[0].score / 2 for quote in quotes)


def test_extractive_answer_without_matching_words_quotes_the_top_passage() -> None:
    answer, cited = extractive_answer("zzz?", ["Nothing in common here at all."], "en", 3)
    assert answer == "According to [1]: “Nothing in common here at all.”"
    assert cited == [1]
