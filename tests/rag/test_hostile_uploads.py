"""Hostile uploads are parsed in a bounded child: a clear 413/422 naming the file, a live server."""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
import signal
from collections.abc import AsyncIterator

import httpx
import pytest

from app.core.config import Settings
from app.main import create_app
from tests.conftest import app_client
from tests.fakes import ScriptedBackend
from tests.rag.conftest import MODEL, upload
from tests.rag.files import make_pdf, make_zip_bomb
from tests.rag.hostile import (
    binary_junk,
    deeply_nested_pdf,
    huge_xml_docx,
    malformed_docx,
    many_pages_pdf,
    truncated_pdf,
)

# Tight bounds, so that each limit is reached in about a second.
LIMITS = {
    "parse_cpu_seconds": 2,
    "parse_wall_seconds": 20.0,
    "parse_memory_mb": 400,
    "max_pages": 2000,
}


@functools.cache
def huge_docx() -> bytes:
    """A valid docx of 24 MB of XML (built once: it takes seconds)."""
    return huge_xml_docx(200_000)


@pytest.fixture
async def client(settings: Settings, backend: ScriptedBackend) -> AsyncIterator[httpx.AsyncClient]:
    """An app with tight parse limits and an empty `hostile` collection."""
    rag = settings.rag.model_copy(update=LIMITS)
    settings = settings.model_copy(update={"default_model": MODEL, "rag": rag})
    async with app_client(create_app(settings, backend=backend)) as client:
        assert (await client.post("/api/rag/collections", json={"name": "hostile"})).is_success
        yield client


async def upload_while_live(
    client: httpx.AsyncClient, name: str, data: bytes
) -> tuple[httpx.Response, int]:
    """Upload one file, asking `/health/live` over and over until the upload is answered."""
    sending = asyncio.create_task(upload(client, "hostile", (name, data)))
    answered = 0
    while not sending.done():
        live = await client.get("/health/live")
        assert live.status_code == 200
        answered += 1
        await asyncio.sleep(0.05)
    return await sending, answered


@pytest.mark.parametrize(
    ("name", "make", "status", "needle"),
    [
        ("bomb.docx", lambda: make_zip_bomb(50_000_000), 413, "zip bomb"),
        ("huge.docx", lambda: huge_docx(), 413, "too large or too complex"),
        ("pages.pdf", lambda: many_pages_pdf(20_000), 413, "20000 pages, at most 2000"),
        ("broken.docx", malformed_docx, 422, "not a readable Word document"),
        ("cut.pdf", truncated_pdf, 422, "truncated"),
        ("deep.pdf", lambda: deeply_nested_pdf(100_000), 422, "deep.pdf"),
        ("notes.txt", lambda: binary_junk(200_000), 415, "looks binary"),
    ],
    ids=["zip-bomb", "huge-xml", "many-pages", "malformed-xml", "truncated", "nested", "junk"],
)
async def test_upload_refuses_hostile_files_clearly_while_the_server_stays_live(
    client: httpx.AsyncClient, name: str, make: object, status: int, needle: str
) -> None:
    data = make()  # type: ignore[operator]
    assert len(data) < 8_000_000  # small on disk, large or broken inside
    response, answered = await upload_while_live(client, name, data)
    assert response.status_code == status, response.text
    message = response.json()["error"]["message"]
    assert name in message
    assert needle in message
    assert answered >= 1
    # Nothing of a refused file is stored.
    listed = await client.get("/api/rag/collections/hostile/documents")
    assert listed.json()["documents"] == []


async def test_upload_slow_parse_leaves_health_answering_throughout(
    client: httpx.AsyncClient,
) -> None:
    """A parse that runs into its CPU bound takes seconds; /health/live answers all along."""
    response, answered = await upload_while_live(client, "huge.docx", huge_docx())
    assert response.status_code == 413
    assert answered >= 5  # asked every 50 ms while the child worked for a second or more


async def test_upload_crash_of_the_parser_is_a_422(client: httpx.AsyncClient) -> None:
    """The child dies of a signal mid-parse (as a crash in a C parser would): 422, no 500."""
    sending = asyncio.create_task(upload(client, "hostile", ("pages.pdf", many_pages_pdf(1900))))
    for _ in range(400):
        children = [c for c in multiprocessing.active_children() if c.name == "llamarada-parse"]
        if children and children[0].pid is not None:
            os.kill(children[0].pid, signal.SIGSEGV)
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("no parser child was seen")
    response = await sending
    assert response.status_code == 422
    assert "pages.pdf" in response.json()["error"]["message"]
    assert "parser failed" in response.json()["error"]["message"]


async def test_upload_over_the_text_limit_is_413(
    settings: Settings, backend: ScriptedBackend
) -> None:
    rag = settings.rag.model_copy(update={"max_document_chars": 1000})
    settings = settings.model_copy(update={"default_model": MODEL, "rag": rag})
    async with app_client(create_app(settings, backend=backend)) as client:
        await client.post("/api/rag/collections", json={"name": "small"})
        pdf = make_pdf(["Many words on many pages. " * 30] * 5)
        response = await upload(client, "small", ("long.pdf", pdf))
    assert response.status_code == 413
    assert "long.pdf" in response.json()["error"]["message"]
    assert "at most 1000 allowed" in response.json()["error"]["message"]


async def test_upload_good_files_still_parse_in_the_child(client: httpx.AsyncClient) -> None:
    pdf = make_pdf(["Llamas live in the Andes.", "Alpacas give fine wool."])
    response = await upload(client, "hostile", ("animals.pdf", pdf), ("a.txt", b"Plain words."))
    assert response.status_code == 201, response.text
    documents = response.json()["documents"]
    assert [(d["source"], d["status"]) for d in documents] == [
        ("animals.pdf", "indexed"),
        ("a.txt", "indexed"),
    ]
