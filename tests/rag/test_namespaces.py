"""Collection names are per owner: two keys may both have `docs`; neither learns of the other."""

from __future__ import annotations

from pathlib import Path

import httpx

from app.main import create_app
from app.rag.embeddings import MINILM_MODEL
from app.rag.namespace import storage_name
from app.rag.store import ChromaStore, Metadata
from tests.conftest import app_client
from tests.fakes import ScriptedBackend
from tests.security.conftest import ADMIN, ALICE, BOB, MODEL, auth, secured

ALICE_TEXT = "Alice's notes: the llamas graze on the high plateau every morning."
BOB_TEXT = "Bob's notes: the alpacas sleep in the barn beside the river."


async def fill(client: httpx.AsyncClient, key: str, name: str, text: str) -> httpx.Response:
    """Create `name` with one document as `key`; the creation's response."""
    created = await client.post("/api/rag/collections", json={"name": name}, headers=auth(key))
    body = {"documents": [{"text": text, "source": "notes.txt"}]}
    uploaded = await client.post(
        f"/api/rag/collections/{name}/documents", json=body, headers=auth(key)
    )
    assert uploaded.status_code == 201, uploaded.text
    return created


async def test_namespaces_two_keys_each_have_their_own_docs(tmp_path: Path) -> None:
    app = create_app(secured(tmp_path), backend=ScriptedBackend(model=MODEL))
    async with app_client(app) as client:
        alice = await fill(client, ALICE, "docs", ALICE_TEXT)
        bob = await fill(client, BOB, "docs", BOB_TEXT)
        # Bob's creation is answered exactly as if no one had the name.
        assert (alice.status_code, bob.status_code) == (201, 201)
        assert alice.json().keys() == bob.json().keys()
        assert bob.json()["documents"] == 0
        again = await client.post("/api/rag/collections", json={"name": "docs"}, headers=auth(BOB))
        assert again.status_code == 409  # a name is taken only within one's own namespace
        for key, mine, theirs in ((ALICE, ALICE_TEXT, BOB_TEXT), (BOB, BOB_TEXT, ALICE_TEXT)):
            listed = (await client.get("/api/rag/collections", headers=auth(key))).json()
            assert [(c["name"], c["documents"]) for c in listed["collections"]] == [("docs", 1)]
            search = await client.post(
                "/api/rag/collections/docs/search",
                json={"query": "notes", "k": 5},
                headers=auth(key),
            )
            texts = [r["text"] for r in search.json()["results"]]
            assert texts == [mine], texts
            assert theirs not in search.text
            query = {"collection": "docs", "question": "What do the notes say?", "min_score": 0.0}
            answer = await client.post("/api/rag/query", json=query, headers=auth(key))
            assert answer.status_code == 200, answer.text
            assert [s["text"] for s in answer.json()["sources"]] == [mine]
        # Deleting one leaves the other whole.
        deleted = await client.delete("/api/rag/collections/docs", headers=auth(BOB))
        assert deleted.status_code == 204
        gone = await client.get("/api/rag/collections/docs", headers=auth(BOB))
        assert gone.status_code == 404
        kept = await client.get("/api/rag/collections/docs", headers=auth(ALICE))
        assert kept.json()["documents"] == 1
        # An admin lists every collection and reaches one that only one owner has.
        everyone = (await client.get("/api/rag/collections", headers=auth(ADMIN))).json()
        assert [c["name"] for c in everyone["collections"]] == ["docs"]
        seen = await client.get("/api/rag/collections/docs/documents", headers=auth(ADMIN))
        assert seen.status_code == 200


async def test_namespaces_re_embedding_keeps_the_collection_in_its_namespace(
    tmp_path: Path,
) -> None:
    app = create_app(secured(tmp_path), backend=ScriptedBackend(model=MODEL))
    async with app_client(app) as client:
        await fill(client, ALICE, "docs", ALICE_TEXT)
        await fill(client, BOB, "docs", BOB_TEXT)
        change = {"embedding_model": MINILM_MODEL}  # the default embedder is USE
        swapped = await client.put(
            "/api/rag/collections/docs/embedding", json=change, headers=auth(ALICE)
        )
        assert swapped.status_code == 200, swapped.text
        assert swapped.json()["embedding_model"] == change["embedding_model"]
        for key, mine in ((ALICE, ALICE_TEXT), (BOB, BOB_TEXT)):
            search = await client.post(
                "/api/rag/collections/docs/search", json={"query": "notes"}, headers=auth(key)
            )
            assert [r["text"] for r in search.json()["results"]] == [mine]
            listed = (await client.get("/api/rag/collections", headers=auth(key))).json()
            assert [c["name"] for c in listed["collections"]] == ["docs"]


async def test_namespaces_collections_from_before_move_into_their_owners(
    tmp_path: Path,
) -> None:
    # Two collections stored under plain names, as before: Alice's, and one from before owners.
    settings = secured(tmp_path)
    store = ChromaStore.persistent(settings.data_dir / "chroma")
    meta: Metadata = {"embedding_model": MINILM_MODEL, "chunk_size": 1000, "chunk_overlap": 100}
    await store.create_collection("docs", {**meta, "revision": "r1", "owner": "alice"})
    await store.create_collection("old-notes", {**meta, "revision": "r2"})
    await store.aclose()

    app = create_app(settings, backend=ScriptedBackend(model=MODEL))
    async with app_client(app) as client:
        alice = (await client.get("/api/rag/collections", headers=auth(ALICE))).json()
        assert [c["name"] for c in alice["collections"]] == ["docs"]
        bob = (await client.get("/api/rag/collections", headers=auth(BOB))).json()
        assert bob["collections"] == []
        assert (await client.get("/api/rag/collections/docs", headers=auth(BOB))).status_code == 404
        mine = await fill(client, BOB, "docs", BOB_TEXT)
        assert mine.status_code == 201
        await fill(client, ALICE, "more", ALICE_TEXT)
        alice_docs = await client.get("/api/rag/collections/docs", headers=auth(ALICE))
        assert alice_docs.json()["revision"] == "r1"  # the same collection, moved
        everyone = (await client.get("/api/rag/collections", headers=auth(ADMIN))).json()
        assert sorted(c["name"] for c in everyone["collections"]) == [
            "docs",
            "docs",
            "more",
            "old-notes",
        ]
        ownerless = await client.get("/api/rag/collections/old-notes", headers=auth(ADMIN))
        assert ownerless.json()["revision"] == "r2"
        # Two owners have `docs`: the admin, who has none, must use an owner's key.
        both = await client.get("/api/rag/collections/docs", headers=auth(ADMIN))
        assert both.status_code == 409

    store = ChromaStore.persistent(settings.data_dir / "chroma")
    stored = {c.name for c in await store.collections()}
    await store.aclose()
    assert "docs" not in stored
    assert "old-notes" not in stored
    assert storage_name("alice", "docs") in stored
    assert storage_name("", "old-notes") in stored
