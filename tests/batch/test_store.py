"""The store's promises, held by both stores alike: the in-process one and Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from app.batch.records import Claim, FileRecord, JobKind, JobRecord, JobStatus, Outcome, Recorded
from app.batch.redis_store import RedisBatchStore
from app.batch.store import BatchStore, MemoryBatchStore
from app.core.errors import Conflict, QueueUnavailable
from tests.conftest import RedisProcess

RETENTION = 1.0


class Clock:
    """A clock the memory store reads; Redis keeps its own, so tests sleep for it."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
async def store(
    request: pytest.FixtureRequest, redis_server: RedisProcess
) -> AsyncIterator[BatchStore]:
    """Each store, with a one-second retention."""
    found: BatchStore
    if request.param == "memory":
        found = MemoryBatchStore(RETENTION)
    else:
        found = RedisBatchStore(redis_server.url, RETENTION)
    yield found
    await found.aclose()


def new_job(total: int, job_id: str = "job_1", window: float = 3600) -> JobRecord:
    now = time.time()
    return JobRecord(
        id=job_id, kind=JobKind.NATIVE, total=total, created_at=now, expires_at=now + window
    )


async def create(store: BatchStore, total: int, job_id: str = "job_1") -> JobRecord:
    items = {i: f'{{"n": {i}}}' for i in range(total)}
    return await store.create_job(new_job(total, job_id), items, {})


async def test_store_records_an_item_once_however_often_it_is_run(store: BatchStore) -> None:
    await create(store, 2)
    runs = [store.record("job_1", 0, Outcome.SUCCEEDED, f'{{"run": {n}}}', 1.0) for n in range(20)]
    outcomes = await asyncio.gather(*runs)
    assert outcomes.count(Recorded.NEW) == 1
    assert outcomes.count(Recorded.DUPLICATE) == 19
    job = await store.get_job("job_1")
    assert job is not None
    assert (job.succeeded, job.done, job.status) == (1, 1, JobStatus.QUEUED)
    [first, missing] = await store.results("job_1", 0, 2)
    assert first is not None
    assert first[0] == Outcome.SUCCEEDED
    assert first[1] in {f'{{"run": {n}}}' for n in range(20)}
    assert missing is None


@pytest.mark.parametrize(
    ("outcomes", "final"),
    [
        ([Outcome.SUCCEEDED, Outcome.FAILED], JobStatus.COMPLETED),
        ([Outcome.FAILED, Outcome.FAILED], JobStatus.FAILED),
    ],
)
async def test_store_last_record_makes_the_job_final(
    store: BatchStore, outcomes: list[Outcome], final: JobStatus
) -> None:
    await create(store, 2)
    assert await store.record("job_1", 0, outcomes[0], "{}", 5.0) == Recorded.NEW
    assert await store.record("job_1", 1, outcomes[1], "{}", 6.0) == Recorded.FINISHED
    job = await store.get_job("job_1")
    assert job is not None
    assert (job.status, job.finished_at) == (final, 6.0)
    assert "job_1" not in await store.active_jobs()


async def test_store_claim_counts_attempts_and_gives_up(store: BatchStore) -> None:
    await create(store, 2)
    assert await store.claim("job_1", 0, 2, 1.0) == Claim.RUN
    job = await store.get_job("job_1")
    assert job is not None
    assert (job.status, job.started_at) == (JobStatus.RUNNING, 1.0)
    assert await store.claim("job_1", 0, 2, 2.0) == Claim.RUN  # its worker was lost
    assert await store.claim("job_1", 0, 2, 3.0) == Claim.EXHAUSTED
    await store.record("job_1", 1, Outcome.SUCCEEDED, "{}", 3.0)
    assert await store.claim("job_1", 1, 2, 4.0) == Claim.DONE
    assert await store.claim("job_404", 0, 2, 4.0) == Claim.GONE


async def test_store_stop_refuses_new_starts_and_lists_items_not_started(
    store: BatchStore,
) -> None:
    await create(store, 4)
    assert await store.claim("job_1", 0, 3, 1.0) == Claim.RUN
    await store.record("job_1", 1, Outcome.SUCCEEDED, "{}", 1.0)
    stopped = await store.stop("job_1", JobStatus.CANCELLING, 2.0)
    assert stopped is not None
    assert (stopped.status, stopped.stopped_at) == (JobStatus.CANCELLING, 2.0)
    assert await store.claim("job_1", 2, 3, 3.0) == Claim.STOPPED
    assert await store.pending("job_1", started=False) == [2, 3]
    assert await store.pending("job_1", started=True) == [0, 2, 3]
    for index in (2, 3):
        await store.record("job_1", index, Outcome.CANCELLED, "{}", 3.0)
    assert await store.record("job_1", 0, Outcome.SUCCEEDED, "{}", 4.0) == Recorded.FINISHED
    job = await store.get_job("job_1")
    assert job is not None
    assert (job.status, job.succeeded, job.cancelled) == (JobStatus.CANCELLED, 2, 2)
    with pytest.raises(Conflict, match="already cancelled"):
        await store.stop("job_1", JobStatus.CANCELLING, 5.0)
    assert await store.stop("job_404", JobStatus.CANCELLING, 5.0) is None


async def test_store_job_with_only_invalid_items_is_final_at_creation(store: BatchStore) -> None:
    job = await store.create_job(new_job(2), {}, {0: '{"bad": 0}', 1: '{"bad": 1}'})
    assert (job.status, job.failed, job.error_bytes) == (JobStatus.FAILED, 2, 22)
    assert await store.results("job_1", 0, 2) == [
        (Outcome.FAILED, '{"bad": 0}'),
        (Outcome.FAILED, '{"bad": 1}'),
    ]


async def test_store_removes_a_finished_job_after_its_retention(store: BatchStore) -> None:
    clock = Clock()
    if isinstance(store, MemoryBatchStore):
        store = MemoryBatchStore(RETENTION, clock=clock)
    await create(store, 1)
    await create(store, 1, "job_2")
    await store.record("job_1", 0, Outcome.SUCCEEDED, "{}", time.time())
    await _after_retention(store, clock)
    await store.purge(time.time())
    assert await store.get_job("job_1") is None
    assert await store.results("job_1", 0, 1) == [None]
    assert [job.id for job in await store.list_jobs(JobKind.NATIVE, 10, None)] == ["job_2"]


async def test_store_lists_jobs_newest_first_by_kind(store: BatchStore) -> None:
    for n in range(3):
        job = new_job(1, f"job_{n}")
        job.created_at += n
        await store.create_job(job, {0: "{}"}, {})
    await store.create_job(JobRecord("batch_9", JobKind.OPENAI, 1, 1.0, 9e9), {0: "{}"}, {})
    listed = await store.list_jobs(JobKind.NATIVE, 2, None)
    assert [job.id for job in listed] == ["job_2", "job_1"]
    rest = await store.list_jobs(JobKind.NATIVE, 2, "job_1")
    assert [job.id for job in rest] == ["job_0"]
    assert [job.id for job in await store.list_jobs(JobKind.OPENAI, 5, None)] == ["batch_9"]


async def test_store_keeps_files_until_they_expire(store: BatchStore) -> None:
    clock = Clock()
    if isinstance(store, MemoryBatchStore):
        store = MemoryBatchStore(RETENTION, clock=clock)
    now = time.time()
    record = FileRecord("file-1", "in.jsonl", "batch", 3, now, now + RETENTION)
    await store.put_file(record, b"abc")
    await store.put_file(FileRecord("file-2", "b.jsonl", "batch", 1, now + 1, now + 60), b"x")
    assert await store.get_file("file-1") == record
    assert await store.file_content("file-1") == b"abc"
    assert [f.id for f in await store.list_files()] == ["file-2", "file-1"]
    assert await store.delete_file("file-2")
    assert not await store.delete_file("file-2")
    await _after_retention(store, clock)
    assert await store.get_file("file-1") is None
    assert await store.file_content("file-1") is None
    assert await store.list_files() == []


async def test_redis_store_outage_is_a_503_error(redis_server: RedisProcess) -> None:
    store = RedisBatchStore(redis_server.url, RETENTION)
    await create(store, 1)
    redis_server.stop()
    with pytest.raises(QueueUnavailable) as caught:
        await store.get_job("job_1")
    assert (caught.value.status_code, caught.value.retry_after) == (503, 5)
    await store.aclose()


async def _after_retention(store: BatchStore, clock: Callable[[], float]) -> None:
    if isinstance(clock, Clock) and isinstance(store, MemoryBatchStore):
        clock.now = time.time() + RETENTION + 0.1
    else:
        await asyncio.sleep(RETENTION + 1.1)  # Redis expiry is to the second
