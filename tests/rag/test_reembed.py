"""A change of embedder over HTTP, and the lexical index following uploads and deletions."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from app.rag.index import IndexCache
from app.rag.store import ChromaStore, Row
from tests.rag.conftest import upload

MINILM = "all-minilm-l6-v2-int8"
MULTILINGUAL = "use-multilingual-v3"
SPANISH = "shred sobreescribe el archivo 3 veces por defecto para dificultar la recuperación."
ENGLISH = "The tmpfs filesystem keeps its files in virtual memory; unmounting discards them."


async def test_a_collection_moves_to_another_embedder_and_keeps_its_documents(
    client: httpx.AsyncClient,
) -> None:
    body = {"name": "legacy", "embedding_model": MINILM}
    assert (await client.post("/api/rag/collections", json=body)).status_code == 201
    await upload(client, "legacy", ("shred.txt", SPANISH.encode()), ("tmpfs.txt", ENGLISH.encode()))
    question = {"query": "How many times does shred overwrite a file?", "k": 1}
    before = await client.post("/api/rag/collections/legacy/search", json=question)
    assert before.status_code == 200  # the MiniLM collection still answers

    change = {"embedding_model": MULTILINGUAL}
    response = await client.put("/api/rag/collections/legacy/embedding?stream=true", json=change)
    assert response.status_code == 200
    events = [json.loads(line) for line in response.text.splitlines()]
    assert events[0] == {"event": "embedding", "done": 2, "total": 2}
    assert events[-1]["event"] == "done"
    assert events[-1]["collection"]["embedding_model"] == MULTILINGUAL
    assert events[-1]["collection"]["documents"] == 2

    listed = (await client.get("/api/rag/collections")).json()["collections"]
    assert [(c["name"], c["embedding_model"], c["chunks"]) for c in listed] == [
        ("legacy", MULTILINGUAL, 2)
    ]
    after = await client.post("/api/rag/collections/legacy/search", json=question)
    assert after.json()["results"][0]["source"] == "shred.txt"  # found across languages


async def test_an_embedder_change_checks_the_model_and_the_collection(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/api/rag/collections", json={"name": "docs"})
    unknown = {"embedding_model": "nomic-embed-text"}
    response = await client.put("/api/rag/collections/docs/embedding", json=unknown)
    assert response.status_code == 409
    assert "nomic-embed-text" in response.json()["error"]["message"]
    missing = await client.put(
        "/api/rag/collections/nowhere/embedding", json={"embedding_model": MINILM}
    )
    assert missing.status_code == 404
    same = await client.put("/api/rag/collections/docs/embedding", json={"embedding_model": ""})
    assert same.status_code == 422


async def test_the_index_follows_changes_in_place(tmp_path: Path) -> None:
    store = ChromaStore.persistent(tmp_path / "chroma")
    await store.create_collection("notes", {"revision": "r1"})
    await store.upsert(
        "notes", ["a:0"], [[1.0, 0.0]], [ENGLISH], [{"document_id": "a", "source": "a.txt"}]
    )
    cache = IndexCache()
    index = await cache.get(store, "notes", "r1")
    added = Row("b:0", SPANISH, {"document_id": "b", "source": "b.txt"})
    await cache.update("notes", "r1", "r2", added=[added])
    assert await cache.get(store, "notes", "r2") is index  # not rebuilt from Chroma
    assert [index.row(h.position).id for h in index.lexical.search("sobreescribe", 5)] == ["b:0"]

    await cache.update("notes", "r2", "r3", removed_document="a")
    assert index.lexical.search("tmpfs", 5) == []
    assert [row.id for row in index.live_rows] == ["b:0"]

    # A change made elsewhere (another revision than the one held) drops the index instead.
    await cache.update("notes", "r1", "r4")
    rebuilt = await cache.get(store, "notes", "r4")
    assert rebuilt is not index
    assert [row.id for row in rebuilt.live_rows] == ["a:0"]  # what Chroma holds
    await store.aclose()
