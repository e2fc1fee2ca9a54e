"""Hardening: foreign Host headers, CORS, fields that would steer the upstream, size bounds."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from app.agent.schemas import AgentRequest
from app.api.access import host_allowed, host_of
from app.batch.openai_format import BatchCreate
from app.batch.records import BatchRequest
from app.llm.base import ChatRequest, EmbedRequest, GenerateRequest
from app.main import create_app
from app.rag.schemas import CollectionCreate, QueryRequest, SearchRequest, TextUpload
from app.wire.anthropic import CountTokensRequest, MessagesRequest
from app.wire.ollama import LegacyEmbeddingsRequest, ShowRequest
from app.wire.openai import ChatCompletionRequest, EmbeddingRequest
from app.wire.openai_legacy import CompletionRequest
from app.wire.responses import ResponsesRequest
from tests.conftest import app_client
from tests.fakes import ScriptedBackend
from tests.security.conftest import ALICE, MODEL, auth, secured

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": False}


@pytest.mark.parametrize(
    ("header", "host"),
    [
        ("localhost:8000", "localhost"),
        ("LOCALHOST", "localhost"),
        ("[::1]:8000", "[::1]"),
        ("[::1]", "[::1]"),
        ("127.0.0.1", "127.0.0.1"),
        ("evil.example:80", "evil.example"),
    ],
)
def test_host_of_strips_the_port(header: str, host: str) -> None:
    assert host_of(header) == host


def test_host_allowed_takes_names_wildcards_and_star() -> None:
    assert host_allowed("api.example.com", ["*.example.com"])
    assert not host_allowed("example.com.evil.net", ["*.example.com"])
    assert host_allowed("anything", ["*"])
    assert not host_allowed("attacker.example", ["localhost", "127.0.0.1", "[::1]"])


@pytest.mark.parametrize("host", ["attacker.example", "localhost.attacker.example", "", "0.0.0.0"])
async def test_foreign_host_header_is_400_even_with_a_key(
    client: httpx.AsyncClient, host: str
) -> None:
    # What a DNS-rebinding page's requests carry: the attacker's name, not ours.
    for path in ("/api/tags", "/health/live", "/metrics", "/"):
        response = await client.get(path, headers={"Host": host, **auth(ALICE)})
        assert response.status_code == 400, (host, path)
        assert response.json()["error"]["type"] == "invalid_host"


async def test_allowed_hosts_setting_adds_names(tmp_path: Path) -> None:
    settings = secured(tmp_path, allowed_hosts=["llm.example.com"])
    async with app_client(create_app(settings, backend=ScriptedBackend(model=MODEL))) as client:
        named = {"Host": "llm.example.com", **auth(ALICE)}
        assert (await client.get("/api/tags", headers=named)).status_code == 200
        assert (await client.get("/api/tags", headers=auth(ALICE))).status_code == 400


async def test_cors_is_off_by_default(client: httpx.AsyncClient) -> None:
    origin = {"Origin": "https://evil.example"}
    answered = await client.get("/api/tags", headers={**origin, **auth(ALICE)})
    assert "access-control-allow-origin" not in answered.headers
    preflight = await client.options(
        "/api/chat", headers={**origin, "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers
    assert preflight.status_code == 401


async def test_cors_allows_only_the_configured_origins(tmp_path: Path) -> None:
    settings = secured(tmp_path, cors_origins=["https://app.example.com"])
    async with app_client(create_app(settings, backend=ScriptedBackend(model=MODEL))) as client:
        ask = {
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        }
        good = await client.options(
            "/api/chat", headers={"Origin": "https://app.example.com", **ask}
        )
        assert good.status_code == 200
        assert good.headers["access-control-allow-origin"] == "https://app.example.com"
        assert "authorization" in good.headers["access-control-allow-headers"].lower()
        bad = await client.options("/api/chat", headers={"Origin": "https://evil.example", **ask})
        assert "access-control-allow-origin" not in bad.headers
        assert bad.status_code == 400
        answered = await client.get(
            "/api/tags", headers={"Origin": "https://app.example.com", **auth(ALICE)}
        )
        assert answered.headers["access-control-allow-origin"] == "https://app.example.com"
        assert "x-request-id" in answered.headers["access-control-expose-headers"].lower()


STEERING = [
    {"base_url": "http://attacker.example"},
    {"api_base": "http://attacker.example/v1"},
    {"host": "attacker.example:11434"},
    {"ollama_url": "http://attacker.example"},
    {"url": "http://169.254.169.254/latest/meta-data"},
]


@pytest.mark.parametrize("extra", STEERING)
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/chat", CHAT),
        ("/api/generate", {"model": MODEL, "prompt": "hi", "stream": False}),
        ("/api/embed", {"model": MODEL, "input": "hi"}),
        ("/api/embeddings", {"model": MODEL, "prompt": "hi"}),
        ("/api/show", {"model": MODEL}),
        ("/v1/chat/completions", CHAT),
        ("/v1/embeddings", {"model": MODEL, "input": "hi"}),
        ("/api/agent", {"input": "hi"}),
        ("/api/rag/query", {"collection": "docs", "question": "hi"}),
        ("/api/batch", {"model": MODEL, "prompts": ["hi"]}),
        ("/api/batch/jobs", {"model": MODEL, "prompts": ["hi"]}),
        ("/v1/batches", {"input_file_id": "file-x", "endpoint": "/v1/chat/completions"}),
    ],
)
async def test_body_trying_to_set_the_upstream_is_422(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], extra: dict[str, str]
) -> None:
    response = await client.post(path, json={**body, **extra}, headers=auth(ALICE))
    assert response.status_code == 422, response.text
    assert next(iter(extra)) in response.json()["error"]["message"]


async def test_options_trying_to_set_the_upstream_are_422(client: httpx.AsyncClient) -> None:
    body = {**CHAT, "options": {"temperature": 0, "host": "attacker.example"}}
    for path in ("/api/chat", "/api/generate"):
        response = await client.post(
            path, json={**body, "prompt": "hi"} if "generate" in path else body, headers=auth(ALICE)
        )
        assert response.status_code == 422, response.text
    nested = {**CHAT, "messages": [{"role": "user", "content": "hi", "base_url": "http://x"}]}
    assert (
        await client.post("/v1/chat/completions", json=nested, headers=auth(ALICE))
    ).status_code == 422


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Every pydantic model an annotation names, through lists, unions and the like."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found = []
    for argument in typing.get_args(annotation):
        found += _models_in(argument)
    return found


REQUEST_MODELS = [
    ChatRequest,
    GenerateRequest,
    EmbedRequest,
    LegacyEmbeddingsRequest,
    ShowRequest,
    ChatCompletionRequest,
    EmbeddingRequest,
    AgentRequest,
    QueryRequest,
    SearchRequest,
    CollectionCreate,
    TextUpload,
    BatchRequest,
    BatchCreate,
    MessagesRequest,
    CountTokensRequest,
    ResponsesRequest,
    CompletionRequest,
]


@pytest.mark.parametrize("model", REQUEST_MODELS, ids=lambda m: m.__name__)
def test_request_models_forbid_unknown_fields_and_loose_types_all_the_way_down(
    model: type[BaseModel],
) -> None:
    seen: set[type[BaseModel]] = set()
    todo = [model]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        assert current.model_config.get("extra") == "forbid", current.__name__
        assert current.model_config.get("strict") is True, current.__name__  # `true` is no 1
        for field in current.model_fields.values():
            todo += _models_in(field.annotation)
    assert model in seen


async def test_oversize_body_is_413_before_the_model_sees_it(
    client: httpx.AsyncClient, backend: ScriptedBackend
) -> None:
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 1_100_000}]}
    for path in ("/api/chat", "/v1/chat/completions", "/api/agent"):
        response = await client.post(path, json=big, headers=auth(ALICE))
        assert response.status_code == 413, path
    assert backend.calls == 0


async def test_too_many_messages_or_inputs_are_422(
    client: httpx.AsyncClient, backend: ScriptedBackend
) -> None:
    many = [{"role": "user", "content": "hi"}] * 257
    for path in ("/api/chat", "/v1/chat/completions"):
        response = await client.post(path, json={**CHAT, "messages": many}, headers=auth(ALICE))
        assert response.status_code == 422, path
        assert "at most 256" in response.json()["error"]["message"]
    inputs = {"model": MODEL, "input": ["hi"] * 257}
    assert (await client.post("/api/embed", json=inputs, headers=auth(ALICE))).status_code == 422
    prompts = {"model": MODEL, "prompts": ["hi"] * 65}
    assert (await client.post("/api/batch", json=prompts, headers=auth(ALICE))).status_code == 413
    long_prompt = {**CHAT, "messages": [{"role": "user", "content": "x" * 100_001}]}
    response = await client.post("/api/chat", json=long_prompt, headers=auth(ALICE))
    assert response.status_code == 422
    assert backend.calls == 0
