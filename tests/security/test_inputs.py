"""Hostile inputs: HTML payloads, file names that are paths or hold NUL, calculator bombs."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from tests.agent.scripted import AgentScript, react
from tests.conftest import app_client
from tests.security.conftest import ALICE, auth, secured

XSS = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "<svg/onload=alert(1)>",
    "javascript:alert(1)",
]


@pytest.mark.parametrize("payload", XSS)
async def test_xss_payloads_never_come_back_as_html(
    client: httpx.AsyncClient, payload: str
) -> None:
    # The browser app renders model output as text (tests/e2e/test_chat_safety.py); here the
    # API itself: every answer that echoes a payload is JSON, and no browser may sniff it.
    attempts = [
        ("POST", "/api/chat", {"model": payload, "messages": [{"role": "user", "content": "x"}]}),
        ("POST", "/api/rag/collections", {"name": payload}),
        ("GET", f"/api/rag/collections/{payload}", None),
        ("GET", f"/api/batch/jobs/{payload}", None),
        ("GET", f"/v1/files/{payload}", None),
        ("GET", f"/v1/models/{payload}", None),
        ("POST", "/api/agent", {"input": "hi", "tools": [payload]}),
        ("GET", f"/api/{payload}", None),
    ]
    for method, path, body in attempts:
        response = await client.request(method, path, json=body, headers=auth(ALICE))
        assert 400 <= response.status_code < 500, (path, response.status_code)
        assert response.headers["content-type"].startswith("application/json"), path
        assert response.headers["x-content-type-options"] == "nosniff"
        response.json()  # a JSON body, whatever it quotes
    echoed = await client.get("/health/live", headers={"X-Request-ID": payload})
    assert payload not in echoed.headers["x-request-id"]  # replaced, never reflected


async def test_only_the_browser_app_is_html(client: httpx.AsyncClient) -> None:
    assert (await client.get("/")).headers["content-type"].startswith("text/html")
    for path in ("/api/tags", "/nowhere", "/v1/nowhere", "/health/nowhere"):
        response = await client.get(path, headers=auth(ALICE))
        assert not response.headers["content-type"].startswith("text/html"), path


def multipart(
    field: str, filename: bytes, content: bytes, extra: dict[str, str]
) -> tuple[bytes, str]:
    """A multipart body written by hand, so the file name's bytes go as they are (NUL too)."""
    boundary = "llamarada-test-boundary"
    parts = [
        f"--{boundary}\r\n".encode()
        + f'Content-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in extra.items()
    ]
    parts.append(
        f"--{boundary}\r\n".encode()
        + f'Content-Disposition: form-data; name="{field}"; filename="'.encode()
        + filename
        + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
        + content
        + b"\r\n"
    )
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


NAMES = [
    b"../../etc/passwd",
    b"..\\..\\windows\\win.ini",
    b"/etc/passwd",
    b"docs/../../secret.txt",
    b"evil\x00.txt",
    b"..",
    b"line\nbreak.txt",
]


@pytest.mark.parametrize("name", NAMES, ids=repr)
async def test_path_traversal_and_nul_in_file_names_are_refused(
    client: httpx.AsyncClient, tmp_path: Path, name: bytes
) -> None:
    created = await client.post("/api/rag/collections", json={"name": "docs"}, headers=auth(ALICE))
    assert created.status_code == 201
    body, kind = multipart("files", name, b"Some plain text about llamas.", {})
    rag = await client.post(
        "/api/rag/collections/docs/documents",
        content=body,
        headers={"Content-Type": kind, **auth(ALICE)},
    )
    assert rag.status_code == 422, rag.text
    listed = await client.get("/api/rag/collections/docs/documents", headers=auth(ALICE))
    assert listed.json()["documents"] == []
    line = b'{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n'
    body, kind = multipart("file", name, line, {"purpose": "batch"})
    files = await client.post(
        "/v1/files", content=body, headers={"Content-Type": kind, **auth(ALICE)}
    )
    assert files.status_code == 422, files.text
    assert (await client.get("/v1/files", headers=auth(ALICE))).json()["data"] == []
    # Nothing was written outside the data dir.
    assert not (tmp_path / "etc").exists()
    assert not (tmp_path.parent / "secret.txt").exists()


BOMBS = [
    "9**9**9**9",
    "10**10000000",
    "2**99999999999",
    "(" * 300 + "1" + ")" * 300,
    "factorial(100000)",
    "factorial(factorial(20))",
    "1" + "*9" * 200,
    "__import__('os').system('id')",
    "().__class__.__bases__[0].__subclasses__()",
]


@pytest.mark.parametrize("bomb", BOMBS)
async def test_calculator_bombs_through_the_agent_api_fail_fast(tmp_path: Path, bomb: str) -> None:
    script = AgentScript([react("calculator", bomb), "Final Answer: no."], native_tools=False)
    settings = secured(tmp_path, default_model=script.model)
    async with app_client(create_app(settings, backend=script)) as client:
        started = time.perf_counter()
        response = await client.post(
            "/api/agent", json={"input": "compute", "tools": ["calculator"]}, headers=auth(ALICE)
        )
        elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    (step,) = response.json()["steps"]
    assert step["error"], step
    assert "result" not in step
    assert elapsed < 2.0
