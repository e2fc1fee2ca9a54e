"""API keys: missing, wrong and revoked keys are refused on every /api and /v1 route."""

from __future__ import annotations

import asyncio
import hashlib
import re
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute
from pydantic import SecretStr

from app.api import (
    admin,
    agent,
    anthropic,
    batch,
    health,
    ollama,
    openai,
    openai_batch,
    openai_responses,
    rag,
)
from app.core.auth import KeyFormatError, KeyRing, parse_entries
from app.core.config import ConfigError, Settings, load_settings
from app.main import create_app
from tests.conftest import app_client
from tests.fakes import ScriptedBackend
from tests.security.conftest import ADMIN, ALICE, BOB, LIMITED, MODEL, auth, secured

API_ROUTERS = [health.router, ollama.router, openai.router, agent.router, rag.router]
API_ROUTERS += [batch.router, openai_batch.router, openai_responses.router, anthropic.router]
API_ROUTERS += [admin.router]
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": False}


def api_routes() -> list[tuple[str, str]]:
    """(method, path) of every /api and /v1 route, path parameters filled in."""
    found = []
    for router in API_ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            assert route.path.startswith(("/api/", "/v1/", "/health/", "/metrics")), route.path
            if not route.path.startswith(("/api/", "/v1/")):
                continue
            path = re.sub(r"\{[^}]+\}", "x", route.path)
            found += [(method, path) for method in sorted(route.methods or ())]
    return found


ROUTES = api_routes()


def test_api_routes_cover_every_route_of_the_app() -> None:
    paths = {path for _, path in ROUTES}
    assert {"/api/chat", "/v1/chat/completions", "/api/pull", "/v1/files", "/api/agent"} <= paths
    schema = create_app(Settings(_env_file=None)).openapi()
    documented = {re.sub(r"\{[^}]+\}", "x", path) for path in schema["paths"]}
    assert {path for path in documented if path.startswith(("/api/", "/v1/"))} <= paths


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_keys_missing_is_401_on_every_api_route(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path, json={})
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    if method != "HEAD":
        assert response.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer not-a-key-at-all-0000"},
        {"Authorization": f"Bearer {ALICE}x"},
        {"Authorization": f"Basic {ALICE}"},  # the right key in the wrong scheme
        {"Authorization": "Bearer"},
        {"X-API-Key": ALICE[:-1]},
        {"X-API-Key": ""},
    ],
)
async def test_keys_wrong_key_is_401(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    for path in ("/api/tags", "/v1/models"):
        response = await client.get(path, headers=headers)
        assert response.status_code == 401, (headers, response.text)
    openai = await client.get("/v1/models", headers=headers)
    assert openai.json()["error"]["code"] == "invalid_api_key"


async def test_keys_bearer_and_x_api_key_are_accepted(client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/chat", json=CHAT, headers=auth(ALICE))).status_code == 200
    assert (
        await client.post("/api/chat", json=CHAT, headers={"X-API-Key": BOB})
    ).status_code == 200
    lowercase = {"authorization": f"bearer {ADMIN}"}
    assert (await client.get("/v1/models", headers=lowercase)).status_code == 200


async def test_keys_health_metrics_docs_and_frontend_stay_open(client: httpx.AsyncClient) -> None:
    for path in ("/health/live", "/health/ready", "/metrics", "/openapi.json", "/"):
        assert (await client.get(path)).status_code == 200, path


async def test_keys_unknown_api_path_is_401_not_404(client: httpx.AsyncClient) -> None:
    # Without a key nobody learns which routes exist.
    assert (await client.get("/api/no-such-route")).status_code == 401
    assert (await client.get("/api/no-such-route", headers=auth(ALICE))).status_code == 404


async def test_keys_revoked_key_is_refused_by_the_rebuilt_app(
    tmp_path: Path, backend: ScriptedBackend
) -> None:
    async with app_client(create_app(secured(tmp_path), backend=backend)) as client:
        assert (await client.get("/api/tags", headers=auth(BOB))).status_code == 200
    without_bob = f"alice:{ALICE},ops:{ADMIN};admin"
    settings = secured(tmp_path, api_keys=SecretStr(without_bob))
    async with app_client(create_app(settings, backend=backend)) as client:
        assert (await client.get("/api/tags", headers=auth(BOB))).status_code == 401
        assert (await client.get("/api/tags", headers=auth(ALICE))).status_code == 200


async def test_keys_revoked_by_editing_the_keys_file(
    tmp_path: Path, backend: ScriptedBackend
) -> None:
    keys = tmp_path / "keys.txt"
    digest = hashlib.sha256(BOB.encode()).hexdigest()
    keys.write_text(f"# team keys\nalice:{ALICE}\nbob:sha256:{digest}\n")
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", api_keys_file=keys)
    async with app_client(create_app(settings, backend=backend)) as client:
        assert (await client.get("/api/tags", headers=auth(BOB))).status_code == 200
        keys.write_text(f"alice:{ALICE}\n")  # bob removed: revoked within a second
        await asyncio.sleep(1.1)
        assert (await client.get("/api/tags", headers=auth(BOB))).status_code == 401
        assert (await client.get("/api/tags", headers=auth(ALICE))).status_code == 200
        keys.write_text("alice:short\n")  # a broken edit keeps the last good keys
        await asyncio.sleep(1.1)
        assert (await client.get("/api/tags", headers=auth(ALICE))).status_code == 200


def test_keys_are_kept_only_as_digests() -> None:
    ring = KeyRing(parse_entries(f"alice:{ALICE},{BOB};admin", "test"))
    assert ALICE not in repr(vars(ring))
    assert BOB not in repr(vars(ring))
    principal = ring.authenticate(BOB)
    assert principal is not None
    assert principal.admin
    assert principal.name == "key-" + hashlib.sha256(BOB.encode()).hexdigest()[:12]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("alice:short-key", "16-512 printable"),
        ("alice:has,comma-in-the-key-0000", "16-512 printable"),
        (f"bad name:{ALICE}", "the name must"),
        (f"anonymous:{ALICE}", "the name must"),
        (f"alice:{ALICE};root", "unknown option"),
        (f"alice:{ALICE};{BOB}", "unknown option"),  # a misplaced separator
        (f"alice:{ALICE};models=", "needs one or more"),
        ("alice:sha256:abc", "64 hex digits"),
        (f"alice:{ALICE},bob:{ALICE}", "listed twice"),
    ],
)
def test_keys_bad_entries_are_refused_without_echoing_the_secret(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, entry: str, message: str
) -> None:
    with pytest.raises(KeyFormatError, match=message) as refused:
        parse_entries(entry, "LLAMARADA_API_KEYS")
    for secret in (ALICE, BOB, "short-key", "has,comma"):
        assert secret not in str(refused.value)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLAMARADA_API_KEYS", entry)
    with pytest.raises(ConfigError, match="LLAMARADA_API_KEYS") as stopped:
        load_settings()
    assert ALICE not in str(stopped.value)


async def test_keys_model_scope_is_403_and_lists_only_allowed_models(
    client: httpx.AsyncClient,
) -> None:
    allowed = await client.post("/api/chat", json=CHAT, headers=auth(LIMITED))
    assert allowed.status_code == 200
    tags = (await client.get("/api/tags", headers=auth(LIMITED))).json()["models"]
    assert [m["name"] for m in tags] == [MODEL]


async def test_keys_model_outside_the_scope_is_403(tmp_path: Path) -> None:
    backend = ScriptedBackend(model="other:7b")
    settings = secured(tmp_path, default_model="other:7b")
    async with app_client(create_app(settings, backend=backend)) as client:
        for path, body in (
            ("/api/chat", {**CHAT, "model": "other:7b"}),
            ("/api/chat", {**CHAT, "model": ""}),  # the default model is still a model
            ("/api/generate", {"model": "other:7b", "prompt": "hi"}),
            ("/api/embed", {"model": "other:7b", "input": "hi"}),
            ("/v1/chat/completions", {**CHAT, "model": "other:7b"}),
            ("/v1/embeddings", {"model": "other:7b", "input": "hi"}),
            ("/api/agent", {"input": "hi", "model": "other:7b"}),
            ("/api/batch", {"model": "other:7b", "prompts": ["hi"]}),
            ("/api/batch/jobs", {"model": "other:7b", "prompts": ["hi"]}),
        ):
            refused = await client.post(path, json=body, headers=auth(LIMITED))
            assert refused.status_code == 403, (path, refused.text)
            assert refused.json()["error"]["type"] == "permission_error"
            assert (await client.post(path, json=body, headers=auth(ALICE))).status_code in (
                200,
                202,
            ), path
        tags = (await client.get("/api/tags", headers=auth(LIMITED))).json()["models"]
        assert tags == []
        models = (await client.get("/v1/models", headers=auth(LIMITED))).json()["data"]
        assert models == []
        assert (await client.get("/v1/models/other:7b", headers=auth(LIMITED))).status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/pull"),
        ("POST", "/api/push"),
        ("POST", "/api/create"),
        ("POST", "/api/copy"),
        ("DELETE", "/api/delete"),
        ("POST", "/api/blobs/sha256:abc"),
    ],
)
async def test_keys_model_management_needs_an_admin_key_and_stays_refused(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    body = {"model": "evil:latest", "insecure": True}
    assert (await client.request(method, path, json=body)).status_code == 401
    user = await client.request(method, path, json=body, headers=auth(ALICE))
    assert user.status_code == 403
    assert "admin key" in user.json()["error"]["message"]
    admin = await client.request(method, path, json=body, headers=auth(ADMIN))
    assert admin.status_code == 403
    assert "does not proxy" in admin.json()["error"]["message"]
