"""The job runner on the in-process store: retries, give-ups, duplicates and expiry."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.batch.items import ItemRunner
from app.batch.records import Claim, JobKind, JobRecord, JobStatus, Recorded, chat_item
from app.batch.runner import JobRunner
from app.batch.store import MemoryBatchStore
from app.core.config import BatchSettings, LimitSettings, Settings
from app.core.errors import Overloaded
from app.core.metrics import Metrics
from app.llm.base import ChatRequest, Chunk, GenerateRequest
from app.llm.completions import CompletionService
from app.rag.build import build_rag
from tests.batch.conftest import SCRIPTED
from tests.fakes import ScriptedBackend


@dataclass
class BusyBackend(ScriptedBackend):
    """Turns the first `busy` requests away as overloaded, then answers."""

    busy: int = 0

    async def _run(self, request: ChatRequest | GenerateRequest) -> AsyncGenerator[Chunk, None]:
        if self.busy > 0:
            self.busy -= 1
            raise Overloaded("all slots taken", retry_after=0)
        async for chunk in super()._run(request):
            yield chunk


def make_runner(backend: ScriptedBackend, **settings: int) -> tuple[JobRunner, Metrics]:
    config = BatchSettings(**settings)
    metrics = Metrics()
    completions = CompletionService(backend, None, metrics, LimitSettings(), SCRIPTED)
    # The knowledge bases are built but never reached: these items name no `kb:` model.
    rag = build_rag(Settings(data_dir=Path("/nonexistent")), completions, metrics)
    store = MemoryBatchStore(config.retention)
    return JobRunner(store, ItemRunner(rag.chat, config), config, metrics), metrics


async def add_job(runner: JobRunner, total: int, expires_in: float = 3600) -> JobRecord:
    now = time.time()
    item = chat_item(SCRIPTED, [{"role": "user", "content": "hola"}], None)
    job = JobRecord("job_1", JobKind.NATIVE, total, now, now + expires_in)
    return await runner.store.create_job(job, {i: item.model_dump_json() for i in range(total)}, {})


def items_counted(metrics: Metrics, status: str) -> float:
    value = metrics.registry.get_sample_value("llama_batch_items_total", {"status": status})
    return value or 0.0


@pytest.mark.parametrize(("busy", "status"), [(2, "succeeded"), (3, "failed")])
async def test_runner_retries_an_overloaded_backend_then_gives_up(busy: int, status: str) -> None:
    runner, _ = make_runner(BusyBackend(model=SCRIPTED, busy=busy), item_retries=2)
    await add_job(runner, 1)
    assert await runner.run_item("job_1", 0) == Recorded.FINISHED
    [found] = await runner.store.results("job_1", 0, 1)
    assert found is not None
    assert json.loads(found[1])["status"] == status


async def test_runner_records_an_item_run_twice_once() -> None:
    runner, metrics = make_runner(ScriptedBackend(model=SCRIPTED))
    await add_job(runner, 2)
    assert await runner.run_item("job_1", 0) == Recorded.NEW
    assert await runner.run_item("job_1", 0) is None  # a retried task finds the result there
    assert items_counted(metrics, "succeeded") == 1


async def test_runner_fails_an_item_that_keeps_losing_its_workers() -> None:
    backend = ScriptedBackend(model=SCRIPTED)
    runner, metrics = make_runner(backend, max_attempts=2)
    await add_job(runner, 1)
    for _ in range(2):  # two workers died running it
        assert await runner.store.claim("job_1", 0, 2, time.time()) == Claim.RUN
    assert await runner.run_item("job_1", 0) == Recorded.FINISHED
    assert backend.calls == 0
    job = await runner.store.get_job("job_1")
    assert job is not None
    assert job.status == JobStatus.FAILED
    [found] = await runner.store.results("job_1", 0, 1)
    assert found is not None
    assert "given up after 2 attempts" in json.loads(found[1])["error"]["message"]
    assert items_counted(metrics, "failed") == 1


async def test_runner_expires_unfinished_items_at_the_end_of_the_window() -> None:
    runner, metrics = make_runner(ScriptedBackend(model=SCRIPTED))
    await add_job(runner, 3, expires_in=-1)
    await runner.run_item("job_1", 0)
    await runner.store.claim("job_1", 1, 3, time.time())  # started by a worker that vanished
    await runner.maintain()
    job = await runner.store.get_job("job_1")
    assert job is not None
    assert (job.status, job.succeeded, job.cancelled) == (JobStatus.EXPIRED, 1, 2)
    lines = [json.loads(found[1]) for found in await runner.store.results("job_1", 0, 3) if found]
    assert [line["status"] for line in lines] == ["succeeded", "cancelled", "cancelled"]
    assert lines[1]["error"]["type"] == "expired"
    assert items_counted(metrics, "cancelled") == 2
