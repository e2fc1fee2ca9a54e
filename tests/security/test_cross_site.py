"""Cross-site writes and body types, on every route that changes state (found, not listed).

With no keys set (the default `make run`), a page on another site could make a visitor's
browser post `text/plain`, form or multipart bodies (`mode: "no-cors"`, no CORS preflight).
Browsers name the page's site on such requests (`Sec-Fetch-Site`, `Origin`); curl and the
SDKs do not, and send bodies with no type or a form type, which stay readable as JSON.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from app.api.origin import CHANGES, WITH_BODY, cross_site
from app.core.config import Settings
from app.main import create_app
from tests.conftest import app_client
from tests.fakes import ScriptedBackend

MODEL = "scripted:1b"
SAME = "http://localhost"  # app_client's origin
ALLOWED = "https://app.example.com"
BODY = b'{"name": "planted", "model": "scripted:1b", "prompts": ["hi"]}'
MULTIPART = "multipart/form-data; boundary=xyz"
MULTIPART_BODY = (
    b'--xyz\r\nContent-Disposition: form-data; name="files"; filename="a.txt"\r\n'
    b"Content-Type: text/plain\r\n\r\nhello\r\n--xyz--\r\n"
)


def build(tmp_path: Path) -> FastAPI:
    """The default app (no keys) with one trusted browser origin, on the scripted model."""
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        default_model=MODEL,
        cors_origins=[ALLOWED],
    )
    return create_app(settings, backend=ScriptedBackend(model=MODEL))


def routes(app: FastAPI) -> Iterator[tuple[str, str, str]]:
    """(method, concrete path, path template) for every route of the app that changes state."""
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute):
            template = route.path_format or ""
            path = re.sub(r"\{[^}]+\}", "x", template)
            for method in sorted((route.methods or set()) & CHANGES):
                yield method, path, template


def documents(app: FastAPI, method: str, template: str, kind: str) -> bool:
    """Whether the OpenAPI schema documents `kind` as a body of this route."""
    operation = app.openapi()["paths"].get(template, {}).get(method.lower(), {})
    return kind in operation.get("requestBody", {}).get("content", {})


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    """The app under test."""
    return build(tmp_path)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the default app, sending no key."""
    async with app_client(app) as client:
        yield client


async def send(
    client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str], body: bytes = BODY
) -> httpx.Response:
    """One request; DELETE carries no body."""
    content = body if method in WITH_BODY else None
    return await client.request(method, path, content=content, headers=headers)


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The project's error object, or {} for any other answer."""
    try:
        found: Any = response.json()
    except ValueError:
        return {}
    error = found.get("error") if isinstance(found, dict) else None
    return error if isinstance(error, dict) else {}


def refused(response: httpx.Response) -> bool:
    """Whether the origin check refused the request (not the route, which may 415 a file)."""
    error = error_of(response)
    if response.status_code == 403:
        return error.get("type") == "cross_site_request"
    message = str(error.get("message", ""))
    return response.status_code == 415 and message.startswith("the request body must be sent")


def test_routes_are_found(tmp_path: Path) -> None:
    found = {(method, template) for method, _, template in routes(build(tmp_path))}
    for expected in [
        ("POST", "/api/chat"),
        ("POST", "/v1/chat/completions"),
        ("POST", "/api/rag/collections"),
        ("POST", "/api/rag/collections/{name}/documents"),
        ("DELETE", "/api/rag/collections/{name}"),
        ("POST", "/api/batch/jobs"),
        ("POST", "/v1/files"),
    ]:
        assert expected in found


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example", "Content-Type": "text/plain"},
        {"Origin": "https://evil.example", "Content-Type": "application/x-www-form-urlencoded"},
        {"Origin": "https://evil.example", "Content-Type": "application/json"},
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://other.localhost"},
        {"Origin": "null", "Content-Type": "text/plain"},
        {"Origin": "http://localhost:9999", "Host": "localhost:8000"},  # another port
        {"Origin": "https://evil.example", "Content-Type": MULTIPART},
    ],
    ids=lambda headers: ",".join(f"{k}={v}" for k, v in headers.items()),
)
async def test_cross_site_writes_are_refused_on_every_route(
    app: FastAPI, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    for method, path, _ in routes(app):
        body = MULTIPART_BODY if "multipart" in headers.get("Content-Type", "") else BODY
        response = await send(client, method, path, headers, body)
        assert response.status_code == 403, (method, path, response.text)
        # Anthropic's routes answer in its dialect, whose type for a 403 is permission_error.
        anthropic = path.startswith("/v1/messages")
        expected = "permission_error" if anthropic else "cross_site_request"
        assert error_of(response)["type"] == expected
        assert "LLAMARADA_CORS_ORIGINS" in error_of(response)["message"]
    # Nothing was made: no collection, no job.
    assert (await client.get("/api/rag/collections")).json()["collections"] == []
    assert (await client.get("/api/batch/jobs")).json()["jobs"] == []


async def test_the_no_cors_attack_changes_nothing(client: httpx.AsyncClient) -> None:
    attack = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    plain = {**attack, "Content-Type": "text/plain;charset=UTF-8"}
    assert (await send(client, "POST", "/api/rag/collections", plain)).status_code == 403
    made = await client.post("/api/rag/collections", json={"name": "mine"})
    assert made.status_code in (200, 201)
    document = b'{"documents": [{"text": "planted", "source": "evil"}]}'
    path = "/api/rag/collections/mine/documents"
    assert (await send(client, "POST", path, plain, document)).status_code == 403
    assert (await send(client, "DELETE", "/api/rag/collections/mine", attack)).status_code == 403
    assert (await client.get("/api/rag/collections/mine")).json()["chunks"] == 0
    assert (await send(client, "POST", "/api/batch/jobs", plain)).status_code == 403
    assert (await client.get("/api/batch/jobs")).json()["jobs"] == []


@pytest.mark.parametrize("kind", ["text/plain", "application/x-www-form-urlencoded", None])
@pytest.mark.parametrize(
    "browser",
    [{"Origin": SAME, "Sec-Fetch-Site": "same-origin"}, {"Origin": SAME}],
    ids=["fetch-metadata", "origin-only"],
)
async def test_a_browsers_body_must_be_declared_json(
    app: FastAPI, client: httpx.AsyncClient, kind: str | None, browser: dict[str, str]
) -> None:
    headers = {**browser, **({"Content-Type": kind} if kind else {})}
    for method, path, _ in routes(app):
        if method not in WITH_BODY:
            continue
        response = await send(client, method, path, headers)
        assert refused(response), (method, path, response.text)
        anthropic = path.startswith("/v1/messages")  # its dialect: 415 is an invalid request
        expected = "invalid_request_error" if anthropic else "unsupported_media_type"
        assert error_of(response)["type"] == expected
        assert "application/json" in error_of(response)["message"]


async def test_multipart_only_where_the_route_documents_it(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    takes = []
    for method, path, template in routes(app):
        if method not in WITH_BODY:
            continue
        response = await send(client, method, path, {"Content-Type": MULTIPART}, MULTIPART_BODY)
        if documents(app, method, template, "multipart/form-data"):
            takes.append(template)
            assert not refused(response), (method, path, response.text)
        else:
            assert refused(response), (method, path, response.text)
            assert "(Content-Type: multipart/form-data)" in error_of(response)["message"]
    assert "/api/rag/collections/{name}/documents" in takes  # the documented uploads
    assert "/v1/files" in takes


@pytest.mark.parametrize("kind", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_curl_and_sdk_bodies_stay_json(
    app: FastAPI, client: httpx.AsyncClient, kind: str | None
) -> None:
    headers = {"Content-Type": kind} if kind else {}
    for method, path, _ in routes(app):
        response = await send(client, method, path, headers)
        assert not refused(response), (method, path, response.text)
    made = await send(client, "POST", "/api/rag/collections", headers, b'{"name": "curl"}')
    assert made.status_code in (200, 201), made.text
    chat = b'{"model": "scripted:1b", "messages": [{"role": "user", "content": "hi"}], '
    answered = await send(client, "POST", "/api/chat", headers, chat + b'"stream": false}')
    assert answered.status_code == 200
    assert answered.json()["done"] is True


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": SAME, "Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"},
        {"Origin": SAME, "Content-Type": "application/json"},  # a browser without fetch metadata
        {"Origin": ALLOWED, "Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"},
        {"Sec-Fetch-Site": "none", "Content-Type": "application/json"},
    ],
    ids=["same-origin", "same-origin-no-metadata", "cors-allowed", "user-navigation"],
)
async def test_same_origin_and_allowed_origins_pass(
    app: FastAPI, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    for method, path, _ in routes(app):
        response = await send(client, method, path, headers)
        assert not refused(response), (method, path, response.text)
    made = await send(client, "POST", "/api/rag/collections", headers, b'{"name": "fine"}')
    assert made.status_code in (200, 201), made.text


async def test_reads_are_never_refused(client: httpx.AsyncClient) -> None:
    headers = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    assert (await client.get("/api/tags", headers=headers)).status_code == 200


@pytest.mark.parametrize(
    ("origin", "fetch_site", "host", "refused"),
    [
        ("http://localhost:8080", None, "localhost:8080", False),
        ("http://localhost:8080", None, "localhost", False),  # nginx's $host drops the port
        ("http://localhost:3000", None, "localhost:8080", True),
        ("http://[::1]:8000", None, "[::1]:8000", False),
        ("http://[::1]:8000", None, "[::1]", False),
        ("http://evil.example", None, "localhost", True),
        ("null", None, "localhost", True),
        ("http://localhost:8080", "same-site", "localhost:8080", True),  # metadata decides
        (None, "cross-site", "localhost", True),
        (None, None, "localhost", False),
    ],
)
def test_cross_site_decision(
    origin: str | None, fetch_site: str | None, host: str, refused: bool
) -> None:
    assert (cross_site(origin, fetch_site, host) is not None) is refused
