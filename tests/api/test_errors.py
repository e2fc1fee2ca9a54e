"""Bad input gets a clear 4xx naming what is wrong, in the one error body."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from app.core.config import LimitSettings, Settings
from app.main import create_app
from tests.conftest import app_client
from tests.fakes import ScriptedBackend

MODEL = "scripted:1b"


def body(**extra: Any) -> dict[str, Any]:
    """A valid chat request for the scripted model."""
    return {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], **extra}


@pytest.fixture
async def client(settings: Settings) -> Any:
    """An app on the scripted backend with small limits."""
    limits = LimitSettings(
        max_body_bytes=4096, max_messages=3, max_prompt_chars=100, max_num_predict=64
    )
    app = create_app(settings.model_copy(update={"limits": limits}), backend=ScriptedBackend())
    async with app_client(app) as client:
        yield client


def error_of(response: httpx.Response) -> dict[str, str]:
    """The error object, after checking the body has exactly the one shape."""
    data = response.json()
    assert set(data) == {"error"}
    assert set(data["error"]) == {"type", "message"}
    error: dict[str, str] = data["error"]
    return error


@pytest.mark.parametrize(
    ("payload", "status", "needle"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 422, "body"),
        (body(messages="hi"), 422, "messages"),
        (body(messages=[{"role": "robot", "content": "x"}]), 422, "messages.0.role"),
        (body(messages=[{"role": "user", "content": 5}]), 422, "messages.0.content"),
        (body(options={"temperature": "hot"}), 422, "options.temperature"),
        (body(options={"num_gpu_layers_typo": 1}), 422, "options.num_gpu_layers_typo"),
        (body(stream="yes please"), 422, "stream"),
        (body(upstream_url="http://evil"), 422, "upstream_url"),
        (body(messages=None), 422, "messages"),
        ({"model": MODEL}, 422, "messages: Field required"),
        (body(messages=[{"role": "user", "content": "x"}] * 4), 422, "at most 3"),
        (body(messages=[{"role": "user", "content": "x" * 101}]), 422, "at most 100"),
        (body(options={"num_predict": 65}), 422, "options.num_predict"),
    ],
)
async def test_chat_bad_input_names_the_problem(
    client: httpx.AsyncClient, payload: Any, status: int, needle: str
) -> None:
    if isinstance(payload, bytes):
        response = await client.post(
            "/api/chat", content=payload, headers={"Content-Type": "application/json"}
        )
    else:
        response = await client.post("/api/chat", json=payload)
    assert response.status_code == status
    error = error_of(response)
    assert needle in error["message"]
    assert "Traceback" not in response.text


async def test_chat_unknown_model_is_404_listing_the_available(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/api/chat", json=body(model="llama9:70b"))
    assert response.status_code == 404
    error = error_of(response)
    assert error["type"] == "not_found_error"
    assert "llama9:70b" in error["message"]
    assert MODEL in error["message"]


async def test_chat_oversize_body_is_413(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/chat", json=body(padding="x" * 5000))
    assert response.status_code == 413
    assert error_of(response)["type"] == "payload_too_large"


async def test_chat_oversize_body_without_length_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> Any:
        for _ in range(10):
            yield b" " * 1000

    response = await client.post(
        "/api/chat", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413


async def test_chat_form_encoded_body_is_read_as_json(client: httpx.AsyncClient) -> None:
    # `curl -d '{...}'`, as in Ollama's own docs, declares a form body.
    response = await client.post(
        "/api/chat",
        content=b'{"model": "scripted:1b", "stream": false, '
        b'"messages": [{"role": "user", "content": "hi"}]}',
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert response.json()["message"]["content"] == "Hello, world."


async def test_unknown_route_is_404_in_the_error_body(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/nothing-here")
    assert response.status_code == 404
    assert error_of(response)["type"] == "not_found_error"


async def test_request_id_is_echoed_or_made(client: httpx.AsyncClient) -> None:
    given = await client.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert given.headers["x-request-id"] == "abc-123"
    made = await client.get("/health/live")
    assert len(made.headers["x-request-id"]) == 32
    unsafe = await client.get("/health/live", headers={"X-Request-ID": "a b<script>"})
    assert unsafe.headers["x-request-id"] != "a b<script>"


async def test_failure_mid_stream_becomes_an_error_line(settings: Settings) -> None:
    from app.core.errors import UpstreamError

    backend = ScriptedBackend(fail_after=2, error=UpstreamError("the model server went away"))
    async with app_client(create_app(settings, backend=backend)) as client:
        response = await client.post("/api/chat", json=body())
        assert response.status_code == 200
        lines = response.text.splitlines()
        assert json.loads(lines[-1]) == {
            "error": "the model server went away",
            "error_type": "upstream_error",
        }
        whole = await client.post("/api/chat", json=body(stream=False))
        assert whole.status_code == 502
        assert error_of(whole)["type"] == "upstream_error"
