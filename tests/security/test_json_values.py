"""Values JSON's grammar allows but no field can hold (NaN, Infinity, overflowing numbers, lone
surrogates) and nesting past the bound: a 4xx naming the field, on every route that takes JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.main import create_app
from app.wire.codec import MAX_DEPTH
from tests.conftest import app_client
from tests.fakes import ScriptedBackend
from tests.security.conftest import ALICE, MODEL, auth, secured

BAD_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"]
BAD_TEXTS = ['"\\ud800"', '"a\\udfff"', '"\\udc00\\ud800"']


def json_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every route whose documented body is JSON: (method, path), path parameters filled in."""
    found = []
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                filled = re.sub(r"\{[^}]+\}", "docs", path)
                found.append((method.upper(), filled))
    return found


def raw(body: dict[str, object], value: str) -> str:
    """`body` as JSON text with the string "VALUE" replaced by `value` as it is."""
    return json.dumps(body).replace('"VALUE"', value)


def headers() -> dict[str, str]:
    return {**auth(ALICE), "Content-Type": "application/json"}


@pytest.mark.parametrize("value", BAD_NUMBERS)
async def test_non_finite_option_is_a_422_naming_the_field(
    client: httpx.AsyncClient, value: str
) -> None:
    message = {"role": "user", "content": "hi"}
    body = raw({"model": MODEL, "messages": [message], "options": {"temperature": "VALUE"}}, value)
    response = await client.post("/api/chat", content=body, headers=headers())
    assert response.status_code == 422, response.text
    assert response.json()["error"]["message"].startswith("options.temperature:")
    assert response.headers["x-request-id"]


@pytest.mark.parametrize("text", BAD_TEXTS)
async def test_lone_surrogate_is_a_422_naming_the_field(
    client: httpx.AsyncClient, text: str
) -> None:
    body = raw({"model": MODEL, "messages": [{"role": "user", "content": "VALUE"}]}, text)
    response = await client.post("/v1/chat/completions", content=body, headers=headers())
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["param"] == "messages.0.content"
    assert "surrogate" in error["message"]


async def test_every_json_route_refuses_each_bad_value(tmp_path: Path) -> None:
    app = create_app(secured(tmp_path), backend=ScriptedBackend(model=MODEL))
    routes = json_routes(app)
    assert {("POST", "/api/chat"), ("POST", "/v1/chat/completions")} <= set(routes)
    async with app_client(app) as client:
        created = await client.post(
            "/api/rag/collections", json={"name": "docs"}, headers=headers()
        )
        assert created.status_code == 201  # routes under a collection reach their body
        for method, path in routes:
            for value in [*BAD_NUMBERS, *BAD_TEXTS]:
                body = raw({"model": "VALUE", "x": [1, {"y": "VALUE"}]}, value)
                response = await client.request(method, path, content=body, headers=headers())
                assert response.status_code in (400, 422), (method, path, value, response.text)
                assert response.json()["error"]["message"], (path, value)


async def test_nesting_past_the_bound_is_a_400(client: httpx.AsyncClient) -> None:
    deep = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    body = raw({"model": MODEL, "messages": [], "format": {"enum": "VALUE"}}, deep)
    response = await client.post("/api/chat", content=body, headers=headers())
    assert response.status_code == 400
    assert "nests deeper" in response.json()["error"]["message"]
    shallow = "[" * 8 + "]" * 8  # far below the bound: read as usual (then judged on its merits)
    ok = raw({"model": MODEL, "messages": [], "format": {"enum": "VALUE"}}, shallow)
    assert (await client.post("/api/chat", content=ok, headers=headers())).status_code != 400


async def test_big_finite_numbers_and_paired_surrogates_are_fine(
    client: httpx.AsyncClient,
) -> None:
    message = {"role": "user", "content": "VALUE"}
    options = {"temperature": 1e300, "seed": 12}
    pair = '"\\ud83d\\ude00"'  # an emoji, escaped as its two surrogates
    body = raw({"model": MODEL, "messages": [message], "options": options, "stream": False}, pair)
    response = await client.post("/api/chat", content=body, headers=headers())
    assert response.status_code == 200, response.text
