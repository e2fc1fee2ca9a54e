"""Against a real `chroma run` server: the same API works, and an outage is a 503, not a crash."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi import FastAPI

from app.core.auth import ANONYMOUS
from app.core.config import Settings
from app.main import create_app
from app.rag.build import Rag
from tests.conftest import app_client, free_port
from tests.fakes import ScriptedBackend
from tests.rag.conftest import MODEL, ChromaServer, upload


def server_app(settings: Settings, url: str) -> FastAPI:
    """An app that keeps its vectors in the Chroma server at `url`."""
    settings = settings.model_copy(update={"chroma_url": url, "default_model": MODEL})
    return create_app(settings, backend=ScriptedBackend(model=MODEL))


async def test_chroma_server_stores_and_survives_an_outage(
    settings: Settings, chroma_server: ChromaServer
) -> None:
    app = server_app(settings, chroma_server.url)
    async with app_client(app) as client:
        assert (
            await client.post("/api/rag/collections", json={"name": "remote"})
        ).status_code == 201
        response = await upload(client, "remote", ("llamas.txt", b"Llamas hum to talk."))
        assert response.status_code == 201
        search = {"query": "how do llamas talk"}
        found = await client.post("/api/rag/collections/remote/search", json=search)
        assert found.json()["results"][0]["source"] == "llamas.txt"
        assert not (settings.data_dir / "chroma").exists()  # nothing stored locally

        chroma_server.stop()
        for failed in (
            await client.get("/api/rag/collections"),
            await client.post("/api/rag/collections/remote/search", json=search),
            await upload(client, "remote", ("more.txt", b"More llama facts.")),
            await client.post("/api/rag/query", json={"collection": "remote", "question": "x"}),
        ):
            assert failed.status_code == 503, failed.text
            assert failed.headers["retry-after"] == "5"
            assert failed.json()["error"]["type"] == "upstream_unavailable"
            assert "Traceback" not in failed.text
        rag: Rag = app.state.rag
        assert await rag.answers.list_kb_models(caller=ANONYMOUS) == []  # /api/tags keeps working

        chroma_server.start()
        back = await client.post("/api/rag/collections/remote/search", json=search)
        assert back.status_code == 200
        assert back.json()["results"][0]["source"] == "llamas.txt"


async def test_chroma_server_down_at_start_up_is_503_not_a_crash(
    settings: Settings, tmp_path: Path
) -> None:
    app = server_app(settings, f"http://127.0.0.1:{free_port()}")
    async with app_client(app) as client:
        response = await client.get("/api/rag/collections")
        assert response.status_code == 503
        assert "Chroma" in response.json()["error"]["message"]
        assert (await client.get("/health/live")).status_code == 200


async def test_chroma_server_collections_persist_across_app_restarts(
    settings: Settings, chroma_server: ChromaServer
) -> None:
    async with app_client(server_app(settings, chroma_server.url)) as client:
        await client.post("/api/rag/collections", json={"name": "kept"})
        await upload(client, "kept", ("a.txt", b"Alpacas."))
    async with app_client(server_app(settings, chroma_server.url)) as client:
        listed = (await client.get("/api/rag/collections")).json()["collections"]
        assert [(c["name"], c["documents"]) for c in listed] == [("kept", 1)]
    assert isinstance(httpx.get(f"{chroma_server.url}/api/v2/heartbeat").json(), dict)
