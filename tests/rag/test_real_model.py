"""The real SmolLM2 answering from a collection: reported, not asserted (a 135M model)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.core.config import Settings
from app.llm.embedded import EmbeddedBackend
from app.main import create_app
from tests.conftest import app_client
from tests.rag.conftest import upload
from tests.rag.corpus import DATA

QUESTIONS = [
    "Which ship recovered the Apollo 11 astronauts?",
    "¿Cómo se llama el caballo de don Quijote?",
    "Who won the football World Cup in 1998?",
]


async def test_real_model_answers_are_reported(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    rag = settings.rag.model_copy(update={"answer_tokens": 80})
    settings = settings.model_copy(update={"rag": rag})
    backend = EmbeddedBackend(settings.embedded)
    await backend.start()
    try:
        async with app_client(create_app(settings, backend=backend)) as client:
            await client.post("/api/rag/collections", json={"name": "corpus"})
            files = [
                (name, (DATA / "corpus" / name).read_bytes())
                for name in ("apollo11.md", "don_quijote.md")
            ]
            assert (await upload(client, "corpus", *files)).status_code == 201
            for question in QUESTIONS:
                body = await ask(client, question)
                with capsys.disabled():
                    sources = [s["source"] for s in body["sources"]]
                    print(f"\n[rag] {question}\n  -> {body['answer']!r}\n  sources {sources}")
                assert body["answer"]
                assert body["found"] == bool(body["sources"])
    finally:
        await backend.aclose()


async def ask(client: httpx.AsyncClient, question: str) -> dict[str, Any]:
    """The JSON answer to a question about the corpus."""
    response = await client.post(
        "/api/rag/query", json={"collection": "corpus", "question": question}
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body
