"""Collections over the HTTP API: create, list with counts, get, delete, names checked."""

from __future__ import annotations

import httpx
import pytest

from tests.rag.conftest import upload


async def test_collection_create_list_get_delete(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/rag/collections", json={"name": "manuals"})
    assert created.status_code == 201
    assert created.json()["embedding_model"] == "use-multilingual-v3"
    assert (created.json()["chunk_size"], created.json()["chunk_overlap"]) == (1000, 200)
    await upload(client, "manuals", ("a.txt", b"Alpha text."), ("b.md", b"# B\n\nBeta text."))

    listed = (await client.get("/api/rag/collections")).json()["collections"]
    assert [(c["name"], c["documents"], c["chunks"]) for c in listed] == [("manuals", 2, 2)]
    got = (await client.get("/api/rag/collections/manuals")).json()
    assert (got["documents"], got["chunks"]) == (2, 2)

    assert (await client.delete("/api/rag/collections/manuals")).status_code == 204
    assert (await client.get("/api/rag/collections/manuals")).status_code == 404
    assert (await client.get("/api/rag/collections")).json() == {"collections": []}


async def test_collection_chunking_is_set_per_collection(client: httpx.AsyncClient) -> None:
    body = {"name": "small-chunks", "chunk_size": 200, "chunk_overlap": 20}
    assert (await client.post("/api/rag/collections", json=body)).status_code == 201
    response = await upload(client, "small-chunks", ("long.txt", b"Llamas hum softly. " * 100))
    assert response.json()["documents"][0]["chunks"] >= 9


@pytest.mark.parametrize(
    "name", ["ab", "-starts-with-dash", "ends.", "has space", "emoji-😀-x", "x" * 513, "a/b/c"]
)
async def test_collection_invalid_name_is_422_with_the_rule(
    client: httpx.AsyncClient, name: str
) -> None:
    response = await client.post("/api/rag/collections", json={"name": name})
    assert response.status_code == 422
    assert "name" in response.json()["error"]["message"]


async def test_collection_name_rule_message_says_the_rule(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/rag/collections", json={"name": "a"})
    message = response.json()["error"]["message"]
    assert "3-512 characters" in message
    assert "starting and ending with a letter or digit" in message


async def test_collection_duplicate_name_is_409(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/rag/collections", json={"name": "docs"})).status_code == 201
    again = await client.post("/api/rag/collections", json={"name": "docs"})
    assert again.status_code == 409
    assert again.json()["error"]["type"] == "conflict_error"


async def test_collection_overlap_must_be_below_size(client: httpx.AsyncClient) -> None:
    body = {"name": "bad-overlap", "chunk_size": 200, "chunk_overlap": 200}
    response = await client.post("/api/rag/collections", json=body)
    assert response.status_code == 422
    assert "chunk_overlap" in response.json()["error"]["message"]


async def test_collection_other_embedding_model_is_a_clear_error(
    client: httpx.AsyncClient,
) -> None:
    body = {"name": "nomic", "embedding_model": "nomic-embed-text"}
    response = await client.post("/api/rag/collections", json=body)
    assert response.status_code == 409
    assert "use-multilingual-v3" in response.json()["error"]["message"]

    await client.post("/api/rag/collections", json={"name": "mini"})
    search = {"query": "anything", "embedding_model": "nomic-embed-text"}
    response = await client.post("/api/rag/collections/mini/search", json=search)
    assert response.status_code == 409
    assert "unrelated vectors" in response.json()["error"]["message"]


async def test_collection_missing_is_404_everywhere(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get("/api/rag/collections/nowhere"),
        await client.delete("/api/rag/collections/nowhere"),
        await client.get("/api/rag/collections/nowhere/documents"),
        await upload(client, "nowhere", ("a.txt", b"text")),
        await client.post("/api/rag/collections/nowhere/search", json={"query": "x"}),
        await client.post("/api/rag/query", json={"collection": "nowhere", "question": "x"}),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["error"]["type"] == "not_found_error"
