"""The response cache on a real redis-server: hits across requests, fail-open, recovery."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from app.core.config import Settings
from app.main import create_app
from tests.conftest import RedisProcess, app_client
from tests.fakes import CountingBackend

BODY: dict[str, Any] = {
    "model": "smollm2:135m",
    "messages": [{"role": "user", "content": "Say hello."}],
    "options": {"temperature": 0, "num_predict": 200},
}


def redis_settings(settings: Settings, server: RedisProcess) -> Settings:
    """The test settings with the cache in the given Redis."""
    return Settings(_env_file=None, data_dir=settings.data_dir, redis_url=server.url)


async def test_redis_cache_hit_survives_a_new_app(
    settings: Settings, redis_server: RedisProcess, model: CountingBackend
) -> None:
    config = redis_settings(settings, redis_server)
    async with app_client(create_app(config, backend=model)) as client:
        first = await client.post("/api/chat", json=BODY)
        assert first.headers["x-cache"] == "MISS"
    # Another process (here: another app) shares the same cache.
    async with app_client(create_app(config, backend=model)) as client:
        again = await client.post("/api/chat", json=BODY)
        assert again.headers["x-cache"] == "HIT"
        assert again.text.count("\n") == first.text.count("\n")
    assert model.calls == 1


async def test_redis_down_fails_open_and_recovers(
    settings: Settings,
    redis_server: RedisProcess,
    model: CountingBackend,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with app_client(create_app(redis_settings(settings, redis_server), backend=model)) as c:
        assert (await c.post("/api/chat", json=BODY)).headers["x-cache"] == "MISS"
        assert (await c.post("/api/chat", json=BODY)).headers["x-cache"] == "HIT"

        redis_server.stop()
        with caplog.at_level(logging.WARNING, logger="app.core.cache"):
            for _ in range(4):
                response = await c.post("/api/chat", json=BODY)
                assert response.status_code == 200
                assert response.headers["x-cache"] == "BYPASS"
                assert response.text.strip().endswith("}")
        outage_logs = [r for r in caplog.records if "unavailable" in r.getMessage()]
        assert len(outage_logs) == 1  # once per outage, not once per request

        ready = (await c.get("/health/ready")).json()
        assert ready["status"] == "degraded"
        assert ready["checks"]["cache"]["status"] == "down"

        redis_server.start()  # empty: the old entries are gone with the process
        statuses = []
        for _ in range(40):
            response = await c.post("/api/chat", json=BODY)
            statuses.append(response.headers["x-cache"])
            if statuses[-1] == "HIT":
                break
            await asyncio.sleep(0.1)
        assert statuses[-1] == "HIT", statuses
        assert "MISS" in statuses  # the first request after the outage refilled the cache
        assert (await c.get("/health/ready")).json()["status"] == "ready"

        metrics = (await c.get("/metrics")).text
        assert 'llama_cache_requests_total{result="error"}' in metrics


async def test_redis_concurrent_misses_make_one_model_call(
    settings: Settings, redis_server: RedisProcess, model: CountingBackend
) -> None:
    body = {**BODY, "messages": [{"role": "user", "content": "Name three animals."}]}
    async with app_client(create_app(redis_settings(settings, redis_server), backend=model)) as c:
        responses = await asyncio.gather(*(c.post("/api/chat", json=body) for _ in range(20)))
    assert model.calls == 1
    assert len({response.text.count("\n") for response in responses}) == 1


async def test_redis_cache_keeps_entries_for_the_ttl(
    settings: Settings, redis_server: RedisProcess, model: CountingBackend
) -> None:
    import redis.asyncio as aioredis

    config = redis_settings(settings, redis_server).model_copy(update={"cache_ttl": 120})
    async with app_client(create_app(config, backend=model)) as client:
        await client.post("/api/chat", json=BODY)
    raw = aioredis.Redis.from_url(redis_server.url)
    keys = [key async for key in raw.scan_iter("llamarada:response:*")]
    assert len(keys) == 1
    assert 100 < await raw.ttl(keys[0]) <= 120
    await raw.aclose()
