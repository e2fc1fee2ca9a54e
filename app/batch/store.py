"""Where jobs, items, results and uploaded files live: the protocol, and the in-process store.

Every item's result is recorded at most once (`record` refuses a second one), and the record that
completes a job makes it final in the same step; `RedisBatchStore` does the same with Lua scripts,
so workers that run an item twice (at-least-once execution) still record it exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from app.batch.records import (
    STOPPING,
    Claim,
    FileRecord,
    JobKind,
    JobRecord,
    JobStatus,
    Outcome,
    Recorded,
    final_status,
)
from app.core.errors import Conflict

BYTES_FIELD = {
    Outcome.SUCCEEDED: "output_bytes",
    Outcome.FAILED: "error_bytes",
    Outcome.CANCELLED: "error_bytes",
}


class BatchStore(Protocol):
    """Jobs, items, results and files; `QueueUnavailable` when the store can't answer."""

    name: str

    async def create_job(
        self, job: JobRecord, items: Mapping[int, str], failed: Mapping[int, str]
    ) -> JobRecord:
        """Store a job with its items (JSON by index) and the lines of items that failed already."""

    async def get_job(self, job_id: str) -> JobRecord | None:
        """The job, or None once it is removed."""

    async def list_jobs(
        self, kind: JobKind, limit: int, after: str | None, owner: str | None = None
    ) -> list[JobRecord]:
        """Jobs of a kind, newest first, after the job `after`; only `owner`'s when given."""

    async def active_jobs(self) -> list[str]:
        """Ids of the jobs not final yet."""

    async def load_items(self, job_id: str, indices: Sequence[int]) -> list[str | None]:
        """Items as stored, by index."""

    async def claim(self, job_id: str, index: int, max_attempts: int, now: float) -> Claim:
        """Decide whether this attempt may run the item, counting it if so."""

    async def record(
        self, job_id: str, index: int, outcome: Outcome, line: str, now: float
    ) -> Recorded:
        """Record an item's result line unless it has one; the last one makes the job final."""

    async def stop(self, job_id: str, status: JobStatus, now: float) -> JobRecord | None:
        """Mark a job cancelling or expiring; Conflict when it is final, None when it is gone."""

    async def pending(self, job_id: str, *, started: bool) -> list[int]:
        """Items without a result; with `started` False, only those no worker started."""

    async def results(self, job_id: str, start: int, stop: int) -> list[tuple[Outcome, str] | None]:
        """Result lines of items `start` to `stop - 1`, None where there is none yet."""

    async def update_meta(self, job_id: str, values: Mapping[str, object]) -> None:
        """Merge values into the job's `meta`."""

    async def put_file(self, record: FileRecord, content: bytes) -> None:
        """Store an uploaded file until its `expires_at`."""

    async def get_file(self, file_id: str) -> FileRecord | None:
        """An uploaded file's record."""

    async def list_files(self) -> list[FileRecord]:
        """Uploaded files, newest first."""

    async def file_content(self, file_id: str) -> bytes | None:
        """An uploaded file's bytes."""

    async def delete_file(self, file_id: str) -> bool:
        """Remove an uploaded file; False when there was none."""

    async def purge(self, now: float) -> None:
        """Forget what outlived its retention."""

    async def check(self) -> None:
        """Raise `QueueUnavailable` unless the store answers now."""

    async def aclose(self) -> None:
        """Close connections."""


def initial_state(job: JobRecord, failed: Mapping[int, str], now: float) -> None:
    """Count the lines recorded at creation; a job whose every item failed is final at once."""
    job.failed = len(failed)
    job.error_bytes = sum(len(line) + 1 for line in failed.values())
    if job.failed >= job.total:
        job.status = final_status(job)
        job.finished_at = now


class MemoryBatchStore:
    """One process's jobs, gone when it stops (embedded mode, without Redis)."""

    name = "memory"

    def __init__(self, retention: float, clock: Callable[[], float] = time.time) -> None:
        self.retention = retention
        self._clock = clock
        self._jobs: dict[str, JobRecord] = {}
        self._items: dict[str, dict[int, str]] = {}
        self._results: dict[str, dict[int, tuple[Outcome, str]]] = {}
        self._started: dict[str, set[int]] = {}
        self._attempts: dict[str, dict[int, int]] = {}
        self._removal: dict[str, float] = {}  # job or file id -> when it goes
        self._files: dict[str, FileRecord] = {}
        self._content: dict[str, bytes] = {}

    async def create_job(
        self, job: JobRecord, items: Mapping[int, str], failed: Mapping[int, str]
    ) -> JobRecord:
        """Store a job with its items and the lines of items that failed already."""
        now = self._clock()
        initial_state(job, failed, now)
        self._jobs[job.id] = job
        self._items[job.id] = dict(items)
        self._results[job.id] = {i: (Outcome.FAILED, line) for i, line in failed.items()}
        self._started[job.id] = set()
        self._attempts[job.id] = {}
        self._removal[job.id] = (now if job.final else job.expires_at) + self.retention
        return _copy(job)

    async def get_job(self, job_id: str) -> JobRecord | None:
        """The job, or None once it is removed."""
        job = self._job(job_id)
        return _copy(job) if job else None

    async def list_jobs(
        self, kind: JobKind, limit: int, after: str | None, owner: str | None = None
    ) -> list[JobRecord]:
        """Jobs of a kind, newest first, after the job `after`; only `owner`'s when given."""
        await self.purge(self._clock())
        jobs = sorted(
            (
                job
                for job in self._jobs.values()
                if job.kind == kind and (owner is None or job.owner == owner)
            ),
            key=lambda job: (job.created_at, job.id),
            reverse=True,
        )
        ids = [job.id for job in jobs]
        start = ids.index(after) + 1 if after in ids else 0
        return [_copy(job) for job in jobs[start : start + limit]]

    async def active_jobs(self) -> list[str]:
        """Ids of the jobs not final yet."""
        return [job.id for job in self._jobs.values() if not job.final]

    async def load_items(self, job_id: str, indices: Sequence[int]) -> list[str | None]:
        """Items as stored, by index."""
        items = self._items.get(job_id, {}) if self._job(job_id) else {}
        return [items.get(index) for index in indices]

    async def claim(self, job_id: str, index: int, max_attempts: int, now: float) -> Claim:
        """Decide whether this attempt may run the item, counting it if so."""
        job = self._job(job_id)
        if job is None:
            return Claim.GONE
        if index in self._results[job_id]:
            return Claim.DONE
        if job.status in STOPPING:
            return Claim.STOPPED
        attempts = self._attempts[job_id]
        attempts[index] = attempts.get(index, 0) + 1
        if attempts[index] > max_attempts:
            return Claim.EXHAUSTED
        self._started[job_id].add(index)
        if job.status == JobStatus.QUEUED:
            job.status, job.started_at = JobStatus.RUNNING, now
        return Claim.RUN

    async def record(
        self, job_id: str, index: int, outcome: Outcome, line: str, now: float
    ) -> Recorded:
        """Record an item's result line unless it has one; the last one makes the job final."""
        job = self._job(job_id)
        if job is None or index in self._results[job_id]:
            return Recorded.DUPLICATE
        self._results[job_id][index] = (outcome, line)
        setattr(job, outcome.value, getattr(job, outcome.value) + 1)
        field = BYTES_FIELD[outcome]
        setattr(job, field, getattr(job, field) + len(line) + 1)
        if job.done < job.total:
            return Recorded.NEW
        job.status, job.finished_at = final_status(job), now
        self._removal[job_id] = self._clock() + self.retention
        return Recorded.FINISHED

    async def stop(self, job_id: str, status: JobStatus, now: float) -> JobRecord | None:
        """Mark a job cancelling or expiring; Conflict when it is final, None when it is gone."""
        job = self._job(job_id)
        if job is None:
            return None
        if job.final:
            raise Conflict(f"job {job_id} is already {job.status.value}")
        if job.status not in STOPPING:
            job.status, job.stopped_at = status, now
        return _copy(job)

    async def pending(self, job_id: str, *, started: bool) -> list[int]:
        """Items without a result; with `started` False, only those no worker started."""
        job = self._job(job_id)
        if job is None:
            return []
        skip = set(self._results[job_id])
        if not started:
            skip |= self._started[job_id]
        return [index for index in range(job.total) if index not in skip]

    async def results(self, job_id: str, start: int, stop: int) -> list[tuple[Outcome, str] | None]:
        """Result lines of items `start` to `stop - 1`, None where there is none yet."""
        found = self._results.get(job_id, {}) if self._job(job_id) else {}
        return [found.get(index) for index in range(start, stop)]

    async def update_meta(self, job_id: str, values: Mapping[str, object]) -> None:
        """Merge values into the job's `meta`."""
        job = self._job(job_id)
        if job is not None:
            job.meta.update(values)

    async def put_file(self, record: FileRecord, content: bytes) -> None:
        """Store an uploaded file until its `expires_at`."""
        self._files[record.id] = record
        self._content[record.id] = content
        self._removal[record.id] = record.expires_at

    async def get_file(self, file_id: str) -> FileRecord | None:
        """An uploaded file's record."""
        await self.purge(self._clock())
        return self._files.get(file_id)

    async def list_files(self) -> list[FileRecord]:
        """Uploaded files, newest first."""
        await self.purge(self._clock())
        return sorted(self._files.values(), key=lambda f: (f.created_at, f.id), reverse=True)

    async def file_content(self, file_id: str) -> bytes | None:
        """An uploaded file's bytes."""
        await self.purge(self._clock())
        return self._content.get(file_id)

    async def delete_file(self, file_id: str) -> bool:
        """Remove an uploaded file; False when there was none."""
        self._content.pop(file_id, None)
        self._removal.pop(file_id, None)
        return self._files.pop(file_id, None) is not None

    async def purge(self, now: float) -> None:
        """Forget what outlived its retention."""
        for key in [key for key, deadline in self._removal.items() if deadline <= now]:
            self._forget(key)

    async def check(self) -> None:
        """Always answers."""

    async def aclose(self) -> None:
        """Nothing to close."""

    def _job(self, job_id: str) -> JobRecord | None:
        deadline = self._removal.get(job_id)
        if deadline is not None and deadline <= self._clock():
            self._forget(job_id)
        return self._jobs.get(job_id)

    def _forget(self, key: str) -> None:
        self._removal.pop(key, None)
        self._jobs.pop(key, None)
        self._items.pop(key, None)
        self._results.pop(key, None)
        self._started.pop(key, None)
        self._attempts.pop(key, None)
        self._files.pop(key, None)
        self._content.pop(key, None)


def _copy(job: JobRecord) -> JobRecord:
    return JobRecord.from_fields(job.to_fields())
