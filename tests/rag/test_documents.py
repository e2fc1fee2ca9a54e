"""Documents over the HTTP API: real files in, metadata right, duplicates and bad files handled."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from app.main import create_app
from tests.conftest import app_client
from tests.fakes import ScriptedBackend
from tests.rag.conftest import upload
from tests.rag.files import encrypt_pdf, make_docx, make_pdf, make_zip_bomb

HTML = b"<html><head><script>var x = 'hidden';</script></head><body><h1>Care</h1><p>Brush llamas weekly.</p></body></html>"  # noqa: E501


@pytest.fixture
async def docs(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """The client, with an empty collection `docs`."""
    assert (await client.post("/api/rag/collections", json={"name": "docs"})).status_code == 201
    return client


async def chunks_of(client: httpx.AsyncClient, document_id: str) -> list[dict[str, Any]]:
    """A document's chunk positions."""
    response = await client.get(f"/api/rag/collections/docs/documents/{document_id}")
    chunk_list: list[dict[str, Any]] = response.json()["chunk_list"]
    return chunk_list


async def test_upload_every_type_with_page_and_heading_metadata(docs: httpx.AsyncClient) -> None:
    files = [
        ("animals.pdf", make_pdf(["Llamas live in the Andes.", "Alpacas give wool."])),
        ("manual.docx", make_docx([(1, "Manual"), (None, "Hello."), (2, "Setup"), (None, "Go.")])),
        ("care.html", HTML),
        ("guide.md", b"# Guide\n\nIntro.\n\n## Feeding\n\nHay and grass.\n"),
        ("notes.txt", b"Plain notes about camelids."),
    ]
    response = await upload(docs, "docs", *files)
    assert response.status_code == 201
    documents = response.json()["documents"]
    assert [(d["source"], d["type"], d["status"]) for d in documents] == [
        ("animals.pdf", "pdf", "indexed"),
        ("manual.docx", "docx", "indexed"),
        ("care.html", "html", "indexed"),
        ("guide.md", "md", "indexed"),
        ("notes.txt", "txt", "indexed"),
    ]
    by_name = {d["source"]: d["id"] for d in documents}
    assert [c["page"] for c in await chunks_of(docs, by_name["animals.pdf"])] == [1, 2]
    assert [c["heading"] for c in await chunks_of(docs, by_name["manual.docx"])] == [
        "Manual",
        "Manual > Setup",
    ]
    assert [c["heading"] for c in await chunks_of(docs, by_name["guide.md"])] == [
        "Guide",
        "Guide > Feeding",
    ]
    search = await docs.post("/api/rag/collections/docs/search", json={"query": "alpaca wool"})
    top = search.json()["results"][0]
    assert (top["source"], top["page"]) == ("animals.pdf", 2)
    hidden = await docs.post("/api/rag/collections/docs/search", json={"query": "hidden", "k": 9})
    assert all("hidden" not in r["text"] for r in hidden.json()["results"])


async def test_upload_same_content_twice_is_not_indexed_twice(docs: httpx.AsyncClient) -> None:
    first = await upload(docs, "docs", ("a.txt", b"Same words."))
    second = await upload(docs, "docs", ("renamed.txt", b"Same words."))
    assert second.json()["documents"][0]["status"] == "duplicate"
    assert second.json()["documents"][0]["id"] == first.json()["documents"][0]["id"]
    collection = (await docs.get("/api/rag/collections/docs")).json()
    assert (collection["documents"], collection["chunks"]) == (1, 1)


async def test_document_list_get_delete_removes_its_chunks(docs: httpx.AsyncClient) -> None:
    response = await upload(
        docs, "docs", ("keep.txt", b"Keep me. " * 300), ("drop.txt", b"Drop me. " * 300)
    )
    keep, drop = response.json()["documents"]
    listed = (await docs.get("/api/rag/collections/docs/documents")).json()["documents"]
    assert {d["id"] for d in listed} == {keep["id"], drop["id"]}
    assert (await docs.get(f"/api/rag/collections/docs/documents/{drop['id']}")).status_code == 200

    deleted = await docs.delete(f"/api/rag/collections/docs/documents/{drop['id']}")
    assert deleted.status_code == 204
    missing = await docs.get(f"/api/rag/collections/docs/documents/{drop['id']}")
    assert missing.status_code == 404
    assert (await docs.get("/api/rag/collections/docs")).json()["chunks"] == keep["chunks"]
    results = (
        await docs.post("/api/rag/collections/docs/search", json={"query": "drop me", "k": 10})
    ).json()["results"]
    assert {r["document_id"] for r in results} == {keep["id"]}


async def test_upload_json_text_documents(docs: httpx.AsyncClient) -> None:
    body = {
        "documents": [
            {"text": "# FAQ\n\n## Prices\n\nIt is free.", "source": "faq.md"},
            {"text": "No source name given."},
        ]
    }
    response = await docs.post("/api/rag/collections/docs/documents", json=body)
    assert response.status_code == 201
    documents = response.json()["documents"]
    assert documents[0]["type"] == "md"
    assert documents[1]["source"].startswith("text-")
    bad = await docs.post("/api/rag/collections/docs/documents", json={"documents": []})
    assert bad.status_code == 422
    assert "documents" in bad.json()["error"]["message"]


async def test_upload_streams_progress_events(docs: httpx.AsyncClient) -> None:
    body = {"name": "tiny", "chunk_size": 100, "chunk_overlap": 0}
    await docs.post("/api/rag/collections", json=body)
    text = "".join(f"Llama number {i} lives in the Andes. " for i in range(300)).encode()
    response = await docs.post(
        "/api/rag/collections/tiny/documents?stream=true", files=[("files", ("many.txt", text))]
    )
    assert response.headers["content-type"].startswith("application/x-ndjson")
    events = [json.loads(line) for line in response.text.splitlines()]
    kinds = [event["event"] for event in events]
    assert kinds[0] == "parsed"
    assert kinds.count("embedding") >= 3
    assert kinds[-2:] == ["document", "done"]
    progress = [event["done"] for event in events if event["event"] == "embedding"]
    assert progress == sorted(progress)
    assert progress[-1] == events[0]["total"] == events[-1]["result"]["documents"][0]["chunks"]


@pytest.mark.parametrize(
    ("name", "data", "status", "needle"),
    [
        ("empty.txt", b"", 422, "is empty"),
        ("broken.pdf", b"%PDF-1.4\n%%garbage with no objects", 422, "not a readable PDF"),
        ("locked.pdf", encrypt_pdf(make_pdf(["secret plans"]), "pw"), 422, "encrypted"),
        ("bomb.docx", make_zip_bomb(20_000_000), 413, "zip bomb"),
        ("image.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64), 415, "supported"),
        ("../../escape.txt", b"text", 422, "not be a path"),
    ],
)
async def test_upload_bad_file_is_4xx_and_nothing_is_ingested(
    docs: httpx.AsyncClient, tmp_path: Path, name: str, data: bytes, status: int, needle: str
) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    good = ("good.txt", b"A good document that must not be stored either.")
    response = await upload(docs, "docs", good, (name, data))
    assert response.status_code == status, response.text
    assert needle in response.json()["error"]["message"]
    assert "Traceback" not in response.text
    collection = (await docs.get("/api/rag/collections/docs")).json()
    assert (collection["documents"], collection["chunks"]) == (0, 0)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # only the data dir, as before
    assert not list(tmp_path.rglob("*escape*"))


async def test_upload_file_name_with_nul_is_422(docs: httpx.AsyncClient) -> None:
    body = (
        b"--b\r\n"
        b'Content-Disposition: form-data; name="files"; filename="nul\x00name.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\n"
        b"some text\r\n"
        b"--b--\r\n"
    )
    response = await docs.post(
        "/api/rag/collections/docs/documents",
        content=body,
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert response.status_code == 422
    assert "control characters" in response.json()["error"]["message"]
    assert (await docs.get("/api/rag/collections/docs")).json()["chunks"] == 0


async def test_upload_without_files_is_422(docs: httpx.AsyncClient) -> None:
    parts = [("other", ("x.txt", b"x"))]
    response = await docs.post("/api/rag/collections/docs/documents", files=parts)
    assert response.status_code == 422
    assert "files" in response.json()["error"]["message"]


async def test_upload_limit_is_separate_from_the_json_limit(docs: httpx.AsyncClient) -> None:
    binary = b"\x89PNG\r\n\x1a\n" + bytes(1_500_000)  # over the 1 MiB JSON limit
    response = await upload(docs, "docs", ("big.png", binary))
    assert response.status_code == 415  # read whole and judged by content, not refused by size
    chat = {"model": "scripted:1b", "messages": [{"role": "user", "content": "x" * 1_100_000}]}
    assert (await docs.post("/api/chat", json=chat)).status_code == 413


async def test_upload_over_the_upload_limit_is_413(settings: Settings) -> None:
    settings = settings.model_copy(
        update={"rag": settings.rag.model_copy(update={"max_upload_bytes": 200_000})}
    )
    async with app_client(create_app(settings, backend=ScriptedBackend())) as client:
        await client.post("/api/rag/collections", json={"name": "docs"})
        over = await upload(client, "docs", ("big.txt", b"x" * 300_000))
        assert over.status_code == 413
        assert over.json()["error"]["type"] == "payload_too_large"
        assert (await client.get("/api/rag/collections/docs")).json()["chunks"] == 0
