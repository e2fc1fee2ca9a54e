"""Real Redis, real `llamarada worker` processes, a scripted Ollama upstream over HTTP."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import httpx
import redis.asyncio as aioredis

from app.batch.queue import QUEUE_NAME
from app.batch.redis_store import PREFIX
from app.core.config import Settings
from app.main import create_app
from tests.batch.conftest import StartWorkers, finished, result_lines, wait_for
from tests.conftest import app_client
from tests.llm.ollama_script import Script


async def running_items(redis: aioredis.Redis, pid: int) -> list[str]:
    """saq keys (`JOB:INDEX`) of the items the worker with this pid is running now."""
    ids = await redis.lrange(f"saq:{QUEUE_NAME}:active", 0, -1)
    keys = []
    for raw in await redis.mget(ids) if ids else []:
        if raw is None:
            continue
        task = json.loads(raw)
        if str(task.get("worker_id", "")).endswith(f":{pid}") and task["function"] == "batch_item":
            keys.append(task["key"])
    return keys


def index_of(task_key: str) -> str:
    """The item index in a saq task key `JOB:INDEX`."""
    return task_key.rsplit(":", 1)[1]


async def test_worker_killed_mid_job_loses_no_item(
    redis_settings: Settings, start_workers: StartWorkers, script: Script
) -> None:
    script.delay = 0.1  # 0.3 s an item
    doomed, survivor = start_workers(2, concurrency=2)
    redis = aioredis.from_url(redis_settings.redis_url.get_secret_value())  # type: ignore[union-attr]
    prompts = [f"pregunta {n}" for n in range(24)]
    async with app_client(create_app(redis_settings)) as client:
        response = await client.post("/api/batch/jobs", json={"prompts": prompts})
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]

        attempts_key = f"{PREFIX}job:{job_id}:attempts"

        async def claimed_by_doomed() -> list[str]:
            # Running, and claimed (an attempt counted): saq marks a task active a moment
            # before the worker's runner claims the item.
            running = await running_items(redis, doomed.pid)
            counted = await redis.hgetall(attempts_key)
            return [key for key in running if counted.get(index_of(key).encode())]

        in_flight = await wait_for(claimed_by_doomed, timeout=20)
        doomed.kill()
        # What it wrote just before it died may still wait in Redis's socket buffer: let Redis
        # read it before asking which items it left unfinished (its sweep takes seconds more).
        await asyncio.sleep(0.5)
        results_key = f"{PREFIX}job:{job_id}:results"
        # The items it held and had not finished: the ones that must move to the survivor.
        held = [k for k in in_flight if not await redis.hexists(results_key, index_of(k))]
        assert held
        job = await finished(client, job_id, timeout=40)
        lines = await result_lines(client, job_id)

    assert job["status"] == "completed"
    assert job["counts"] == {
        "total": 24,
        "succeeded": 24,
        "failed": 0,
        "cancelled": 0,
        "pending": 0,
    }
    # Every item has exactly one result, in input order.
    assert [line["index"] for line in lines] == list(range(24))
    assert all(line["status"] == "succeeded" for line in lines)
    assert await redis.hlen(results_key) == 24
    # The items the killed worker held were started again by the survivor.
    attempts = await redis.hgetall(attempts_key)
    for key in held:
        assert int(attempts[index_of(key).encode()]) >= 2
    asked = Counter(body["messages"][-1]["content"] for body in script.bodies)
    assert set(asked) == set(prompts)  # none lost; the held ones were asked twice
    assert survivor.process.poll() is None
    await redis.aclose()


async def test_api_restart_mid_job_keeps_the_job(
    redis_settings: Settings, start_workers: StartWorkers, script: Script
) -> None:
    script.delay = 0.05
    [worker] = start_workers(1, concurrency=2)
    async with app_client(create_app(redis_settings)) as first:
        response = await first.post("/api/batch/jobs", json={"prompts": ["a", "b", "c"] * 4})
        job_id = response.json()["id"]

        async def started() -> bool:
            job = (await first.get(f"/api/batch/jobs/{job_id}")).json()
            return bool(job["status"] == "running")

        await wait_for(started)
    # The first API is gone; a second one on the same Redis sees the job through to the end.
    async with app_client(create_app(redis_settings)) as second:
        job = await finished(second, job_id)
        lines = await result_lines(second, job_id)
        listed = (await second.get("/api/batch/jobs")).json()["jobs"]

    assert job["status"] == "completed"
    assert job["counts"]["succeeded"] == 12
    assert [line["output"] for line in lines] == ["Hola mundo."] * 12
    assert [entry["id"] for entry in listed] == [job_id]

    exposed = httpx.get(worker.metrics_url, timeout=5).text
    assert 'llama_batch_items_total{status="succeeded"} 12.0' in exposed
    assert "llama_batch_queue_depth" in exposed
    assert 'llama_requests_total{model="llama3.2:1b",status="success"} 12.0' in exposed


async def test_worker_without_redis_refuses_to_start(redis_settings: Settings) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "worker"],
        env={"PATH": "/usr/bin:/bin", "LLAMARADA_LOG_LEVEL": "WARNING"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "LLAMARADA_REDIS_URL" in done.stderr
