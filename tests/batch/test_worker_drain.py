"""A batch worker stopped with SIGTERM mid-job: its items end or go back, none is lost.

The workers here run with `LLAMARADA_SERVER__DRAIN_TIMEOUT=2` (tests/batch/conftest.py): items
shorter than that finish on the stopping worker; longer ones are handed back and run again on
the other worker. Either way the job completes with one result per item.
"""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis

from app.batch.redis_store import PREFIX
from app.core.config import Settings
from app.main import create_app
from tests.batch.conftest import StartWorkers, finished, result_lines, wait_for
from tests.batch.test_workers import index_of, running_items
from tests.conftest import app_client
from tests.llm.ollama_script import Script

DRAIN = 2.0  # LLAMARADA_SERVER__DRAIN_TIMEOUT of the test workers
ITEMS = 12
# The job's end, counted from the stopped worker's exit. With 4.5 s items the other worker runs
# all 12 alone, two at a time: 27 s at the least, about 24 s of it after that exit on an idle
# machine, so a 30 s limit failed now and then on a busy one (the job still running).
FINISH_WITHIN = 60


async def stop_mid_job(
    redis_settings: Settings, start_workers: StartWorkers, script: Script
) -> tuple[dict[str, int], list[str], float]:
    """Run a job, SIGTERM one worker while it runs items; (attempts by index, the items it was
    running, seconds it took to exit)."""
    stopping, _ = start_workers(2, concurrency=2)
    redis = aioredis.from_url(redis_settings.redis_url.get_secret_value())  # type: ignore[union-attr]
    prompts = [f"pregunta {n}" for n in range(ITEMS)]
    async with app_client(create_app(redis_settings)) as client:
        response = await client.post("/api/batch/jobs", json={"prompts": prompts})
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        running = await wait_for(lambda: running_items(redis, stopping.pid), timeout=20)
        stopping.process.terminate()
        signalled = time.monotonic()
        while stopping.process.poll() is None:
            assert time.monotonic() - signalled < DRAIN + 10, "the worker did not stop"
            await asyncio.sleep(0.05)
        exited_after = time.monotonic() - signalled
        try:
            job = await finished(client, job_id, timeout=FINISH_WITHIN)
        except TimeoutError:
            print((await client.get(f"/api/batch/jobs/{job_id}")).json())
            print(await redis.hgetall(f"{PREFIX}job:{job_id}:attempts"))
            print(stopping.process.stderr.read().decode()[-3000:])  # type: ignore[union-attr]
            raise
        lines = await result_lines(client, job_id)
    attempts = await redis.hgetall(f"{PREFIX}job:{job_id}:attempts")
    await redis.aclose()
    assert job["status"] == "completed"
    assert job["counts"]["succeeded"] == ITEMS
    assert [line["index"] for line in lines] == list(range(ITEMS))
    assert all(line["status"] == "succeeded" for line in lines)
    by_index = {_text(key): int(value) for key, value in attempts.items()}
    return by_index, [index_of(key) for key in running], exited_after


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def test_worker_sigterm_finishes_short_items(
    redis_settings: Settings, start_workers: StartWorkers, script: Script
) -> None:
    script.delay = 0.2  # 0.6 s an item, within the drain deadline
    attempts, held, exited_after = await stop_mid_job(redis_settings, start_workers, script)
    assert held
    for index in held:  # finished where they were, never started again
        assert attempts[index] == 1, (index, attempts)
    assert exited_after < DRAIN + 8  # the deadline, not a hang (loose: a busy 2-core machine)


async def test_worker_sigterm_hands_back_items_past_the_deadline(
    redis_settings: Settings, start_workers: StartWorkers, script: Script
) -> None:
    script.delay = 1.5  # 4.5 s an item, past the drain deadline
    attempts, held, exited_after = await stop_mid_job(redis_settings, start_workers, script)
    assert held
    for index in held:  # given back and run again by the other worker
        assert attempts[index] >= 2, (index, attempts)
    assert exited_after >= DRAIN
