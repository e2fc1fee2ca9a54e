"""Ownership: key A can neither read, change, delete nor query key B's objects (404 everywhere)."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from app.main import create_app
from tests.agent.scripted import AgentScript, react
from tests.conftest import RedisProcess, app_client
from tests.fakes import ScriptedBackend
from tests.security.conftest import ADMIN, ALICE, BOB, MODEL, auth, secured

TEXT = "Llamas live in the Andes. They eat grass and hay, and they hum to each other."
QUESTION = "What do llamas eat?"


@pytest.fixture
async def rag_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """An app whose model plays an agent searching the knowledge base, then answering."""
    script = AgentScript(
        [react("knowledge_search", '{"query": "llamas", "collection": "alice-docs"}'), "Done."],
        native_tools=False,
        model=MODEL,
    )
    async with app_client(create_app(secured(tmp_path), backend=script)) as client:
        yield client


async def alice_collection(client: httpx.AsyncClient) -> None:
    """Alice's collection `alice-docs` with one document."""
    created = await client.post(
        "/api/rag/collections", json={"name": "alice-docs"}, headers=auth(ALICE)
    )
    assert created.status_code == 201, created.text
    body = {"documents": [{"text": TEXT, "source": "llamas.txt"}]}
    uploaded = await client.post(
        "/api/rag/collections/alice-docs/documents", json=body, headers=auth(ALICE)
    )
    assert uploaded.status_code == 201, uploaded.text


async def test_ownership_collections_and_documents_are_404_to_another_key(
    rag_client: httpx.AsyncClient,
) -> None:
    client = rag_client
    await alice_collection(client)
    docs = await client.get("/api/rag/collections/alice-docs/documents", headers=auth(ALICE))
    document_id = docs.json()["documents"][0]["id"]
    base = "/api/rag/collections/alice-docs"
    attempts = [
        ("GET", base, None),
        ("GET", f"{base}/documents", None),
        ("GET", f"{base}/documents/{document_id}", None),
        ("POST", f"{base}/search", {"query": "llamas"}),
        ("POST", f"{base}/documents", {"documents": [{"text": "bob was here"}]}),
        ("DELETE", f"{base}/documents/{document_id}", None),
        ("DELETE", base, None),
        ("POST", "/api/rag/query", {"collection": "alice-docs", "question": QUESTION}),
    ]
    for method, path, body in attempts:
        response = await client.request(method, path, json=body, headers=auth(BOB))
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["message"] == "collection 'alice-docs' not found"
    upload = await client.post(
        f"{base}/documents", files={"files": ("x.txt", b"bob")}, headers=auth(BOB)
    )
    assert upload.status_code == 404
    listed = (await client.get("/api/rag/collections", headers=auth(BOB))).json()
    assert listed["collections"] == []
    # Nothing changed: Alice still has her collection and its one document.
    mine = (await client.get(f"{base}/documents", headers=auth(ALICE))).json()["documents"]
    assert [d["id"] for d in mine] == [document_id]
    everyone = (await client.get("/api/rag/collections", headers=auth(ADMIN))).json()
    assert [c["name"] for c in everyone["collections"]] == ["alice-docs"]


async def test_ownership_kb_models_resolve_and_list_only_for_the_owner(
    rag_client: httpx.AsyncClient,
) -> None:
    client = rag_client
    await alice_collection(client)
    ask = {"model": "kb:alice-docs", "messages": [{"role": "user", "content": QUESTION}]}
    for path in ("/api/chat", "/v1/chat/completions"):
        refused = await client.post(path, json={**ask, "stream": False}, headers=auth(BOB))
        assert refused.status_code == 404, (path, refused.text)
        answered = await client.post(path, json={**ask, "stream": False}, headers=auth(ALICE))
        assert answered.status_code == 200, (path, answered.text)
    for key, expected in ((BOB, False), (ALICE, True), (ADMIN, True)):
        tags = (await client.get("/api/tags", headers=auth(key))).json()["models"]
        assert ("kb:alice-docs" in [m["name"] for m in tags]) is expected
        models = (await client.get("/v1/models", headers=auth(key))).json()["data"]
        assert ("kb:alice-docs" in [m["id"] for m in models]) is expected
        one = await client.get("/v1/models/kb:alice-docs", headers=auth(key))
        assert one.status_code == (200 if expected else 404)


async def test_ownership_agent_knowledge_search_finds_only_the_callers_collections(
    rag_client: httpx.AsyncClient,
) -> None:
    client = rag_client
    await alice_collection(client)
    body = {"input": "What do llamas eat?", "tools": ["knowledge_search"]}
    bob = (await client.post("/api/agent", json=body, headers=auth(BOB))).json()
    assert bob["steps"][0]["error"] == "knowledge_search: collection 'alice-docs' not found"
    alice = (await client.post("/api/agent", json=body, headers=auth(ALICE))).json()
    assert "Llamas live in the Andes" in alice["steps"][0]["result"]


async def test_ownership_collection_names_are_per_owner_and_reveal_nothing(
    rag_client: httpx.AsyncClient,
) -> None:
    await alice_collection(rag_client)
    mine = await rag_client.post(
        "/api/rag/collections", json={"name": "alice-docs"}, headers=auth(BOB)
    )
    assert mine.status_code == 201  # as if the name were free: it is, in Bob's namespace
    assert mine.json()["documents"] == 0
    assert TEXT not in mine.text


async def batch_attempts(client: httpx.AsyncClient, job_id: str) -> None:
    """Bob's every move on Alice's job is a 404; the admin's are not."""
    base = f"/api/batch/jobs/{job_id}"
    for method, path in (("GET", base), ("GET", f"{base}/results"), ("DELETE", base)):
        response = await client.request(method, path, headers=auth(BOB))
        assert response.status_code == 404, (method, path, response.text)
    listed = (await client.get("/api/batch/jobs?limit=1000", headers=auth(BOB))).json()
    assert job_id not in [job["id"] for job in listed["jobs"]]
    mine = (await client.get("/api/batch/jobs", headers=auth(ALICE))).json()
    assert [job["id"] for job in mine["jobs"]] == [job_id]
    everyone = (await client.get("/api/batch/jobs", headers=auth(ADMIN))).json()
    assert job_id in [job["id"] for job in everyone["jobs"]]
    assert (await client.get(base, headers=auth(ADMIN))).status_code == 200


async def test_ownership_batch_jobs_are_404_to_another_key(client: httpx.AsyncClient) -> None:
    body = {"model": MODEL, "prompts": ["one", "two"]}
    submitted = await client.post("/api/batch/jobs", json=body, headers=auth(ALICE))
    assert submitted.status_code == 202, submitted.text
    await batch_attempts(client, submitted.json()["id"])
    assert (await client.get("/api/batch/jobs", headers=auth(BOB))).json()["jobs"] == []


async def test_ownership_batch_jobs_on_redis_are_404_to_another_key(
    tmp_path: Path, redis_server: RedisProcess
) -> None:
    from tests.fakes import ScriptedBackend

    settings = secured(tmp_path, redis_url=SecretStr(redis_server.url))
    async with app_client(create_app(settings, backend=ScriptedBackend(model=MODEL))) as client:
        body = {"model": MODEL, "prompts": ["one"]}
        for _ in range(3):  # Bob's jobs come first in the index: Alice's listing skips them
            bobs = await client.post("/api/batch/jobs", json=body, headers=auth(BOB))
            assert bobs.status_code == 202
        submitted = await client.post("/api/batch/jobs", json=body, headers=auth(ALICE))
        assert submitted.status_code == 202, submitted.text
        for _ in range(3):
            await client.post("/api/batch/jobs", json=body, headers=auth(BOB))
        await batch_attempts(client, submitted.json()["id"])
        page = (await client.get("/api/batch/jobs?limit=2", headers=auth(BOB))).json()
        assert len(page["jobs"]) == 2
        assert page["has_more"] is True


async def test_ownership_openai_files_and_batches_are_404_to_another_key(
    client: httpx.AsyncClient,
) -> None:
    line = {
        "custom_id": "a",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
    }
    content = (json.dumps(line) + "\n").encode()
    uploaded = await client.post(
        "/v1/files",
        files={"file": ("in.jsonl", io.BytesIO(content))},
        data={"purpose": "batch"},
        headers=auth(ALICE),
    )
    assert uploaded.status_code == 200, uploaded.text
    file_id = uploaded.json()["id"]
    for method, path in (
        ("GET", f"/v1/files/{file_id}"),
        ("GET", f"/v1/files/{file_id}/content"),
        ("DELETE", f"/v1/files/{file_id}"),
    ):
        response = await client.request(method, path, headers=auth(BOB))
        assert response.status_code == 404, (method, path, response.text)
    create = {"input_file_id": file_id, "endpoint": "/v1/chat/completions"}
    assert (await client.post("/v1/batches", json=create, headers=auth(BOB))).status_code == 404
    started = await client.post("/v1/batches", json=create, headers=auth(ALICE))
    assert started.status_code == 200, started.text
    batch_id = started.json()["id"]
    for method, path in (
        ("GET", f"/v1/batches/{batch_id}"),
        ("POST", f"/v1/batches/{batch_id}/cancel"),
    ):
        response = await client.request(method, path, headers=auth(BOB))
        assert response.status_code == 404, (method, path, response.text)
    assert (await client.get("/v1/batches", headers=auth(BOB))).json()["data"] == []
    assert (await client.get("/v1/files", headers=auth(BOB))).json()["data"] == []
    done = await _finished(client, batch_id)
    output = done["output_file_id"]
    assert output
    assert (await client.get(f"/v1/files/{output}/content", headers=auth(BOB))).status_code == 404
    assert (await client.get(f"/v1/files/{output}", headers=auth(BOB))).status_code == 404
    assert (await client.delete(f"/v1/files/{output}", headers=auth(BOB))).status_code == 404
    mine = await client.get(f"/v1/files/{output}/content", headers=auth(ALICE))
    assert mine.status_code == 200
    assert json.loads(mine.text.splitlines()[0])["custom_id"] == "a"
    listed = (await client.get("/v1/files", headers=auth(ALICE))).json()["data"]
    assert {f["id"] for f in listed} == {file_id, output}


async def _finished(client: httpx.AsyncClient, batch_id: str) -> dict[str, object]:
    import asyncio

    for _ in range(200):
        batch = (await client.get(f"/v1/batches/{batch_id}", headers=auth(ALICE))).json()
        if batch["status"] == "completed":
            return dict(batch)
        await asyncio.sleep(0.05)
    raise AssertionError(f"batch not completed: {batch}")


async def test_ownership_kb_model_answers_only_with_a_model_the_key_may_use(
    tmp_path: Path,
) -> None:
    # A key allowed `kb:*` but not the model that writes the answers gets no answer from it,
    # through chat on either surface, as `/api/rag/query` already refused.
    kb_only = "kbonly-key-9d8c7b6a5f4e3d2c"
    keys = f"alice:{ALICE},alice:{kb_only};models=kb:*"
    settings = secured(tmp_path, api_keys=SecretStr(keys))
    async with app_client(create_app(settings, backend=ScriptedBackend(model=MODEL))) as client:
        await alice_collection(client)
        ask = {"model": "kb:alice-docs", "messages": [{"role": "user", "content": QUESTION}]}
        for path in ("/api/chat", "/v1/chat/completions"):
            refused = await client.post(path, json={**ask, "stream": False}, headers=auth(kb_only))
            assert refused.status_code == 403, (path, refused.text)
            assert MODEL in refused.json()["error"]["message"]
            answered = await client.post(path, json={**ask, "stream": False}, headers=auth(ALICE))
            assert answered.status_code == 200, (path, answered.text)
        query = {"collection": "alice-docs", "question": QUESTION}
        assert (
            await client.post("/api/rag/query", json=query, headers=auth(kb_only))
        ).status_code == 403
