"""The Chroma server down: knowledge-base routes answer 503 with Retry-After, chat keeps working,
and everything stored is there when Chroma is back.

Chroma down at start-up is tests/rag/test_chroma_server.py's; this is an outage mid-run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.config import Settings
from app.main import create_app
from tests.conftest import app_client
from tests.fakes import ScriptedBackend
from tests.rag.conftest import ChromaServer

MODEL = "scripted:1b"
TEXT = "Llamas live in the Andes. They eat grass and hay."


@pytest.fixture
def chroma(tmp_path: Path) -> Iterator[ChromaServer]:
    """A real `chroma run` server that the test kills and starts again."""
    server = ChromaServer(tmp_path / "chroma")
    server.start()
    yield server
    server.stop()


async def test_chroma_down_gives_503_on_rag_routes_and_chat_keeps_working(
    tmp_path: Path, chroma: ChromaServer
) -> None:
    settings = Settings(
        _env_file=None, data_dir=tmp_path / "data", chroma_url=chroma.url, default_model=MODEL
    )
    async with app_client(create_app(settings, backend=ScriptedBackend(model=MODEL))) as client:
        assert (await client.post("/api/rag/collections", json={"name": "zoo"})).status_code == 201
        body = {"documents": [{"text": TEXT, "source": "llamas.txt"}]}
        added = await client.post("/api/rag/collections/zoo/documents", json=body)
        assert added.status_code == 201

        chroma.stop()
        question = {"model": "kb:zoo", "messages": [{"role": "user", "content": "food?"}]}
        for method, path, payload in (
            ("GET", "/api/rag/collections", None),
            ("POST", "/api/rag/collections", {"name": "new-one"}),
            ("GET", "/api/rag/collections/zoo", None),
            ("POST", "/api/rag/collections/zoo/documents", body),
            ("POST", "/api/rag/collections/zoo/search", {"query": "food"}),
            ("POST", "/api/rag/query", {"collection": "zoo", "question": "food?"}),
            ("POST", "/api/chat", {**question, "stream": False}),
        ):
            response = await client.request(method, path, json=payload)
            assert response.status_code == 503, (path, response.text)
            assert int(response.headers["retry-after"]) >= 1
            assert "vector store" in response.json()["error"]["message"]
        plain = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": False}
        assert (await client.post("/api/chat", json=plain)).status_code == 200
        tags = (await client.get("/api/tags")).json()["models"]
        assert [m["name"] for m in tags] == [MODEL]  # knowledge bases left out, no error
        ready = await client.get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"]["vectors"]["status"] == "down"

        chroma.start()
        found = await client.post("/api/rag/collections/zoo/search", json={"query": "eat"})
        assert found.status_code == 200, found.text
        assert found.json()["results"][0]["source"] == "llamas.txt"
