"""Redis down at start and killed under load: the cache fails open, quotas count in process,
batch submissions get 503 with Retry-After, and nothing answers 5xx otherwise."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from app.core.config import QuotaSettings, Settings
from app.main import create_app
from tests.conftest import RedisProcess, app_client, free_port
from tests.fakes import ScriptedBackend

MODEL = "scripted:1b"


def redis_settings(tmp_path: Path, url: str, **overrides: object) -> Settings:
    """An app on Redis (cache, quotas, batch jobs) and the scripted model."""
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "redis_url": SecretStr(url),
        "default_model": MODEL,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def chat(content: str) -> dict[str, object]:
    """A whole-answer chat request."""
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], "stream": False}


async def test_redis_down_at_start_serves_chat_and_refuses_jobs_with_503(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    settings = redis_settings(tmp_path, url, quota=QuotaSettings(rpm=3))
    async with app_client(create_app(settings, backend=ScriptedBackend(model=MODEL))) as client:
        answered = await client.post("/api/chat", json=chat("hi"))
        assert answered.status_code == 200
        assert answered.headers["x-cache"] == "BYPASS"
        ready = (await client.get("/health/ready")).json()
        assert ready["status"] == "degraded"
        for method, path, body in (
            ("POST", "/api/batch/jobs", {"model": MODEL, "prompts": ["a"]}),
            ("GET", "/api/batch/jobs", None),
        ):
            response = await client.request(method, path, json=body)
            assert response.status_code == 503, response.text
            assert response.json()["error"]["type"] == "queue_unavailable"
            assert int(response.headers["retry-after"]) >= 1
        # Quotas did not switch off: 3 per minute in this process.
        assert (await client.post("/api/chat", json=chat("four"))).status_code == 429


async def test_redis_killed_under_load_loses_no_request(
    tmp_path: Path, redis_server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    backend = ScriptedBackend(model=MODEL, delay=0.005)
    settings = redis_settings(tmp_path, redis_server.url, quota=QuotaSettings(rpm=100_000))
    async with app_client(create_app(settings, backend=backend)) as client:

        async def wave(n: int) -> list[httpx.Response]:
            asks = [client.post("/api/chat", json=chat(f"q{i % 10}")) for i in range(n)]
            return list(await asyncio.gather(*asks))

        before = await wave(50)
        kill = asyncio.get_running_loop().run_in_executor(None, redis_server.stop)
        during = await wave(100)
        await kill
        after = await wave(50)
        for response in (*before, *during, *after):
            assert response.status_code == 200, response.text
        assert {r.headers["x-cache"] for r in after} == {"BYPASS"}
        job = await client.post("/api/batch/jobs", json={"model": MODEL, "prompts": ["a"]})
        assert job.status_code == 503
        assert job.headers["retry-after"]

        redis_server.start()
        await asyncio.sleep(1.1)  # the cache's and the quotas' pause before trying again
        assert (await client.post("/api/chat", json=chat("q1"))).status_code == 200
        again = await client.post("/api/chat", json=chat("q1"))
        assert again.headers["x-cache"] == "HIT"  # caching resumed by itself
        job = await client.post("/api/batch/jobs", json={"model": MODEL, "prompts": ["a"]})
        assert job.status_code == 202, job.text
    messages = [record.getMessage() for record in caplog.records]
    assert messages.count("response cache unavailable, serving uncached") == 1
    assert messages.count("quota store unavailable, counting in this process") == 1
    assert "response cache available again" in messages
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
