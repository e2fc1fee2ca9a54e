"""The batch store on Redis, shared by every API process and worker.

Exactly-once recording under at-least-once execution: a worker that dies mid-item has the item
run again elsewhere, and two runs may both finish. `record` is one Lua script: `HSETNX` of the
item's result, the counters, and (for the job's last item) the final status and the retention
TTL, all atomic, so whichever run records first wins and the others change nothing. `claim`,
also a script, refuses items of a job being cancelled and counts the attempts of each item, so
one that keeps killing its workers fails after `max_attempts` instead of looping forever.

Keys (prefix `llamarada:batch:`): `job:ID` hash, `job:ID:items|results|attempts` hashes by item
index, `job:ID:started` set, `jobs:KIND` sorted set by creation time, `active` set, `file:ID`
hash and `file:ID:content`, `files` sorted set. Every key of a job expires: at the end of its
completion window plus the retention while it runs, after the retention once final.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.batch import redis_scripts as scripts
from app.batch.records import (
    Claim,
    FileRecord,
    JobKind,
    JobRecord,
    JobStatus,
    Outcome,
    Recorded,
)
from app.batch.store import BYTES_FIELD, initial_state
from app.core.errors import Conflict, QueueUnavailable

PREFIX = "llamarada:batch:"
_PAGE = 1000


class RedisBatchStore:
    """Jobs and files in Redis; Redis errors become `QueueUnavailable` (503, Retry-After)."""

    name = "redis"

    def __init__(self, url: str, retention: float) -> None:
        self.retention = retention
        self._redis: aioredis.Redis = aioredis.from_url(
            url, socket_connect_timeout=2, socket_timeout=10, health_check_interval=30
        )
        self._claim = self._redis.register_script(scripts.CLAIM)
        self._record = self._redis.register_script(scripts.RECORD)
        self._stop = self._redis.register_script(scripts.STOP)

    async def create_job(
        self, job: JobRecord, items: Mapping[int, str], failed: Mapping[int, str]
    ) -> JobRecord:
        """Store a job with its items (JSON by index) and the lines of items that failed already."""
        now = job.created_at
        initial_state(job, failed, now)
        ttl = max(1, int((now if job.final else job.expires_at) - now + self.retention))
        keys = _JobKeys(job.id)
        async with self._guard(), self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.job, mapping=job.to_fields())  # type: ignore[arg-type]
            for chunk in _chunks(list(items.items()), _PAGE):
                pipe.hset(keys.items, mapping=dict(chunk))
            for chunk in _chunks(list(failed.items()), _PAGE):
                lines = {i: f"{Outcome.FAILED.value}|{line}" for i, line in chunk}
                pipe.hset(keys.results, mapping=lines)
            pipe.zadd(f"{PREFIX}jobs:{job.kind.value}", {job.id: job.created_at})
            if not job.final:
                pipe.sadd(f"{PREFIX}active", job.id)
            for key in (keys.job, keys.items, keys.results):
                pipe.expire(key, ttl)
            await pipe.execute()
        return job

    async def get_job(self, job_id: str) -> JobRecord | None:
        """The job, or None once it is removed."""
        async with self._guard():
            raw = await self._redis.hgetall(_JobKeys(job_id).job)
        return JobRecord.from_fields(_text(raw)) if raw else None

    async def list_jobs(
        self, kind: JobKind, limit: int, after: str | None, owner: str | None = None
    ) -> list[JobRecord]:
        """Jobs of a kind, newest first, after the job `after`; only `owner`'s when given."""
        index = f"{PREFIX}jobs:{kind.value}"
        page = limit if owner is None else max(limit, 200)
        found: list[JobRecord] = []
        gone: list[str] = []
        async with self._guard():
            start = 0
            if after is not None:
                rank = await self._redis.zrevrank(index, after)
                start = 0 if rank is None else int(str(rank)) + 1
            # Others' jobs are skipped a page at a time until `limit` of the owner's are found.
            while len(found) < limit:
                ids = [_str(i) for i in await self._redis.zrevrange(index, start, start + page - 1)]
                records = await self._hashes([_JobKeys(i).job for i in ids])
                gone += [i for i, raw in zip(ids, records, strict=True) if not raw]
                jobs = [JobRecord.from_fields(raw) for raw in records if raw]
                found += [job for job in jobs if owner is None or job.owner == owner]
                if len(ids) < page:
                    break
                start += page
            if gone:  # after the scan: removing entries shifts the ranks it walks
                await self._redis.zrem(index, *gone)
        return found[:limit]

    async def active_jobs(self) -> list[str]:
        """Ids of the jobs not final yet."""
        async with self._guard():
            return sorted(_str(i) for i in await self._redis.smembers(f"{PREFIX}active"))

    async def load_items(self, job_id: str, indices: Sequence[int]) -> list[str | None]:
        """Items as stored, by index."""
        if not indices:
            return []
        async with self._guard():
            values = await self._redis.hmget(_JobKeys(job_id).items, [str(i) for i in indices])
        return [None if v is None else _str(v) for v in values]

    async def claim(self, job_id: str, index: int, max_attempts: int, now: float) -> Claim:
        """Decide whether this attempt may run the item, counting it if so."""
        keys = _JobKeys(job_id)
        async with self._guard():
            answer = await self._claim(
                keys=[keys.job, keys.results, keys.started, keys.attempts],
                args=[index, max_attempts, now],
            )
        return Claim(_str(answer))

    async def record(
        self, job_id: str, index: int, outcome: Outcome, line: str, now: float
    ) -> Recorded:
        """Record an item's result line unless it has one; the last one makes the job final."""
        keys = _JobKeys(job_id)
        async with self._guard():
            answer = await self._record(
                keys=[*keys.all, f"{PREFIX}active"],
                args=[
                    index,
                    f"{outcome.value}|{line}",
                    outcome.value,
                    BYTES_FIELD[outcome],
                    len(line.encode()) + 1,
                    now,
                    int(self.retention),
                    job_id,
                ],
            )
        return Recorded(_str(answer))

    async def stop(self, job_id: str, status: JobStatus, now: float) -> JobRecord | None:
        """Mark a job cancelling or expiring; Conflict when it is final, None when it is gone."""
        async with self._guard():
            answer = _str(await self._stop(keys=[_JobKeys(job_id).job], args=[status.value, now]))
        if answer == "gone":
            return None
        if answer != "ok":
            raise Conflict(f"job {job_id} is already {answer}")
        return await self.get_job(job_id)

    async def pending(self, job_id: str, *, started: bool) -> list[int]:
        """Items without a result; with `started` False, only those no worker started."""
        keys = _JobKeys(job_id)
        async with self._guard():
            total = await self._redis.hget(keys.job, "total")
            if total is None:
                return []
            skip = {int(i) for i in await self._redis.hkeys(keys.results)}
            if not started:
                skip |= {int(i) for i in await self._redis.smembers(keys.started)}
        return [index for index in range(int(total)) if index not in skip]

    async def results(self, job_id: str, start: int, stop: int) -> list[tuple[Outcome, str] | None]:
        """Result lines of items `start` to `stop - 1`, None where there is none yet."""
        if stop <= start:
            return []
        async with self._guard():
            values = await self._redis.hmget(
                _JobKeys(job_id).results, [str(i) for i in range(start, stop)]
            )
        found: list[tuple[Outcome, str] | None] = []
        for value in values:
            if value is None:
                found.append(None)
                continue
            outcome, _, line = _str(value).partition("|")
            found.append((Outcome(outcome), line))
        return found

    async def update_meta(self, job_id: str, values: Mapping[str, object]) -> None:
        """Merge values into the job's `meta`."""
        key = _JobKeys(job_id).job
        async with self._guard():
            raw = await self._redis.hget(key, "meta")
            if raw is None:
                return
            meta = {**json.loads(raw), **values}
            await self._redis.hset(key, "meta", json.dumps(meta))

    async def put_file(self, record: FileRecord, content: bytes) -> None:
        """Store an uploaded file until its `expires_at`."""
        ttl = max(1, int(record.expires_at - record.created_at))
        key = f"{PREFIX}file:{record.id}"
        async with self._guard(), self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=record.to_fields())  # type: ignore[arg-type]
            pipe.set(f"{key}:content", content, ex=ttl)
            pipe.expire(key, ttl)
            pipe.zadd(f"{PREFIX}files", {record.id: record.created_at})
            await pipe.execute()

    async def get_file(self, file_id: str) -> FileRecord | None:
        """An uploaded file's record."""
        async with self._guard():
            raw = await self._redis.hgetall(f"{PREFIX}file:{file_id}")
        return FileRecord.from_fields(_text(raw)) if raw else None

    async def list_files(self) -> list[FileRecord]:
        """Uploaded files, newest first."""
        async with self._guard():
            ids = [_str(i) for i in await self._redis.zrevrange(f"{PREFIX}files", 0, -1)]
            records = await self._hashes([f"{PREFIX}file:{i}" for i in ids])
            gone = [i for i, raw in zip(ids, records, strict=True) if not raw]
            if gone:
                await self._redis.zrem(f"{PREFIX}files", *gone)
        return [FileRecord.from_fields(raw) for raw in records if raw]

    async def file_content(self, file_id: str) -> bytes | None:
        """An uploaded file's bytes."""
        async with self._guard():
            content = await self._redis.get(f"{PREFIX}file:{file_id}:content")
        return content.encode() if isinstance(content, str) else content

    async def delete_file(self, file_id: str) -> bool:
        """Remove an uploaded file; False when there was none."""
        key = f"{PREFIX}file:{file_id}"
        async with self._guard():
            removed = int(await self._redis.delete(key, f"{key}:content"))
            await self._redis.zrem(f"{PREFIX}files", file_id)
        return removed > 0

    async def purge(self, now: float) -> None:
        """Drop index entries of jobs and files that expired (their keys expire by themselves)."""
        indexes = [(f"{PREFIX}jobs:{kind.value}", f"{PREFIX}job:") for kind in JobKind]
        indexes.append((f"{PREFIX}files", f"{PREFIX}file:"))
        async with self._guard():
            for index, prefix in indexes:
                ids = [_str(i) for i in await self._redis.zrange(index, 0, -1)]
                gone = await self._missing(ids, prefix)
                if gone:
                    await self._redis.zrem(index, *gone)
            active = await self.active_jobs()
            gone = await self._missing(active, f"{PREFIX}job:")
            if gone:
                await self._redis.srem(f"{PREFIX}active", *gone)

    async def check(self) -> None:
        """Raise `QueueUnavailable` unless Redis answers now."""
        async with self._guard():
            await self._redis.ping()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()

    async def _hashes(self, keys: list[str]) -> list[dict[str, str]]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            return [_text(raw) for raw in await pipe.execute()]

    async def _missing(self, ids: list[str], prefix: str) -> list[str]:
        """The ids whose `prefix + id` key no longer exists."""
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for found in ids:
                pipe.exists(prefix + found)
            exists = await pipe.execute()
        return [found for found, there in zip(ids, exists, strict=True) if not there]

    @asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        try:
            yield
        except RedisError as exc:
            raise QueueUnavailable(f"the batch store (Redis) is unavailable: {exc}") from exc


class _JobKeys:
    """The keys of one job."""

    def __init__(self, job_id: str) -> None:
        base = f"{PREFIX}job:{job_id}"
        self.job = base
        self.items = f"{base}:items"
        self.results = f"{base}:results"
        self.started = f"{base}:started"
        self.attempts = f"{base}:attempts"
        self.all = [self.job, self.results, self.items, self.started, self.attempts]


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _text(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {_str(k): _str(v) for k, v in raw.items()}


def _chunks(values: list[Any], size: int) -> list[list[Any]]:
    return [values[i : i + size] for i in range(0, len(values), size)]
