"""The semantic cache on a real redis-server with the real multilingual embedder, and the
admin routes that count and drop cache entries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from app.core.config import Settings
from app.main import create_app
from tests.conftest import RedisProcess, app_client
from tests.fakes import ScriptedBackend

MODEL = "scripted:1b"
ADMIN, USER = "sk-admin-0123456789", "sk-user-0123456789"


def body(question: str, temperature: float = 0, **extra: Any) -> dict[str, Any]:
    """A whole (non-streamed) chat."""
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": question}],
        "options": {"temperature": temperature},
        "stream": False,
        **extra,
    }


def semantic_settings(tmp_path: Path, redis: RedisProcess, **extra: Any) -> Settings:
    """Redis, the semantic cache on, two keys: an admin's and a user's."""
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        redis_url=SecretStr(redis.url),
        semantic_cache=True,
        api_keys=SecretStr(f"ops:{ADMIN};admin,user:{USER}"),
        default_model=MODEL,
        **extra,
    )


@pytest.fixture
def backend() -> ScriptedBackend:
    """The scripted model, counting its generations."""
    return ScriptedBackend()


@pytest.fixture
async def client(
    tmp_path: Path, redis_server: RedisProcess, backend: ScriptedBackend
) -> AsyncIterator[httpx.AsyncClient]:
    """An app with the semantic cache, as the user key."""
    app = create_app(semantic_settings(tmp_path, redis_server), backend=backend)
    async with app_client(app) as client:
        client.headers["Authorization"] = f"Bearer {USER}"
        yield client


async def ask(client: httpx.AsyncClient, question: str, **extra: Any) -> httpx.Response:
    response = await client.post("/api/chat", json=body(question, **extra))
    assert response.status_code == 200, response.text
    return response


@pytest.mark.timeout(180)
async def test_semantic_cache_serves_a_paraphrase_and_nothing_the_guards_refuse(
    client: httpx.AsyncClient, backend: ScriptedBackend
) -> None:
    first = await ask(client, "What is the capital of France?")
    assert first.headers["x-cache"] == "MISS"
    assert "x-cache-kind" not in first.headers

    again = await ask(client, "What is the capital of France?")
    assert (again.headers["x-cache"], again.headers["x-cache-kind"]) == ("HIT", "exact")

    similar = await ask(client, "Which city is the capital of France?")
    assert (similar.headers["x-cache"], similar.headers["x-cache-kind"]) == ("HIT", "semantic")
    assert 0.827 <= float(similar.headers["x-cache-similarity"]) < 1
    assert similar.json()["message"] == first.json()["message"]
    assert backend.calls == 1

    refused = [
        ("What is the capital of Germany?", {}),  # another entity
        ("¿Cuál es la capital de Francia?", {}),  # another language
        ("Which city is the capital of France?", {"temperature": 0.8}),  # sampled too hot
        ("What is not the capital of France?", {}),  # a negation
    ]
    for question, extra in refused:
        response = await ask(client, question, **extra)
        assert response.headers["x-cache"] == "MISS", question
    assert backend.calls == 1 + len(refused)

    metrics = (await client.get("/metrics")).text
    assert 'llama_cache_hits_total{kind="semantic"} 1.0' in metrics
    assert 'llama_cache_hits_total{kind="exact"} 1.0' in metrics


@pytest.mark.timeout(180)
async def test_semantic_entries_live_in_redis_for_every_process(
    tmp_path: Path, redis_server: RedisProcess, backend: ScriptedBackend
) -> None:
    settings = semantic_settings(tmp_path, redis_server)
    headers = {"Authorization": f"Bearer {USER}"}
    async with app_client(create_app(settings, backend=backend)) as first:
        response = await first.post(
            "/api/chat", json=body("How do vaccines work?"), headers=headers
        )
        assert response.headers["x-cache"] == "MISS"
    async with app_client(create_app(settings, backend=backend)) as second:
        reworded = body("How does a vaccine work?")
        response = await second.post("/api/chat", json=reworded, headers=headers)
        assert response.headers["x-cache-kind"] == "semantic"
    assert backend.calls == 1


@pytest.mark.timeout(180)
async def test_semantic_cache_fails_open_when_redis_is_down(
    client: httpx.AsyncClient, redis_server: RedisProcess, backend: ScriptedBackend
) -> None:
    await ask(client, "Why is the sky blue?")
    redis_server.stop()
    response = await ask(client, "What makes the sky blue?")
    assert response.headers["x-cache"] == "BYPASS"
    assert response.json()["done"] is True
    assert backend.calls == 2


@pytest.mark.timeout(180)
async def test_admin_counts_and_drops_cache_entries_by_model(
    client: httpx.AsyncClient, backend: ScriptedBackend
) -> None:
    admin = {"Authorization": f"Bearer {ADMIN}"}
    await ask(client, "What is the capital of France?")
    await ask(client, "Why is the sky blue?")

    refused = await client.get("/api/admin/cache")
    assert refused.status_code == 403
    assert (await client.delete("/api/admin/cache")).status_code == 403

    for _ in range(50):  # an answer is stored just after its last chunk is sent
        counts = (await client.get("/api/admin/cache", headers=admin)).json()
        if counts["semantic"]["total"] == 2:
            break
        await asyncio.sleep(0.1)
    assert counts["exact"] == {"total": 2, "models": {MODEL: 2}}
    assert counts["semantic"]["models"] == {MODEL: 2}

    other = await client.delete("/api/admin/cache", params={"model": "other:1b"}, headers=admin)
    assert other.json() == {"exact": 0, "semantic": 0}
    dropped = await client.delete("/api/admin/cache", params={"model": MODEL}, headers=admin)
    assert dropped.json() == {"exact": 2, "semantic": 2}
    counts = (await client.get("/api/admin/cache", headers=admin)).json()
    assert counts["exact"]["total"] == counts["semantic"]["total"] == 0

    response = await ask(client, "Which city is the capital of France?")
    assert response.headers["x-cache"] == "MISS"
    assert backend.calls == 3


@pytest.mark.timeout(180)
async def test_semantic_cache_without_redis_lives_in_the_process(
    tmp_path: Path, backend: ScriptedBackend
) -> None:
    settings = Settings(
        _env_file=None, data_dir=tmp_path / "data", semantic_cache=True, default_model=MODEL
    )
    async with app_client(create_app(settings, backend=backend)) as client:
        assert (await ask(client, "¿Cómo funcionan las vacunas?")).headers["x-cache"] == "MISS"
        similar = await ask(client, "¿Cómo funciona una vacuna?")
        assert similar.headers["x-cache-kind"] == "semantic"
        counts = (await client.get("/api/admin/cache")).json()  # no keys: the local admin
        assert counts["store"] == "memory"
        assert counts["semantic"]["models"] == {MODEL: 1}
    assert backend.calls == 1
