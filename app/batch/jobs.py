"""Batches: small ones answered at once, jobs submitted, watched, cancelled and read back."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from app.batch.inputs import ParsedInput, from_request
from app.batch.items import NativeLines
from app.batch.queue import JobQueue
from app.batch.records import BatchRequest, JobKind, JobRecord, JobStatus, Outcome
from app.batch.runner import FORMATS, JobRunner
from app.batch.store import BatchStore
from app.core import tracing
from app.core.auth import Principal
from app.core.config import BatchSettings
from app.core.errors import InvalidRequest, LlamaradaError, ModelNotFound, NotFound, PayloadTooLarge
from app.core.metrics import Metrics

logger = logging.getLogger(__name__)

ID_PREFIX = {JobKind.NATIVE: "job", JobKind.OPENAI: "batch"}
_PAGE = 500


class BatchService:
    """The batch features behind both API surfaces; knows nothing of HTTP.

    A job belongs to the caller that submitted it: any other caller but an admin gets NotFound
    for it, and listings show a caller its own.
    """

    def __init__(
        self,
        store: BatchStore,
        queue: JobQueue,
        runner: JobRunner,
        settings: BatchSettings,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.queue = queue
        self.runner = runner
        self.settings = settings
        self.metrics = metrics
        self.clock = clock

    async def run_sync(self, body: BatchRequest, *, caller: Principal) -> list[dict[str, Any]]:
        """Answer every item now, `concurrency` at a time; results in order, failures in place."""
        items = body.items()
        limit = self.settings.max_sync_items
        if len(items) > limit:
            raise PayloadTooLarge(
                f"{len(items)} items; POST /api/batch takes at most {limit}: "
                "submit bigger batches as a job to POST /api/batch/jobs"
            )
        if not items:
            raise InvalidRequest("needs at least one item", field=_items_field(body))
        concurrency = self._concurrency(body)
        model = await self.runner.items.chat.resolve_model(body.model, caller=caller)
        slots = asyncio.Semaphore(concurrency)
        lines = NativeLines()

        async def one(index: int) -> dict[str, Any]:
            item = items[index].model_copy(update={"body": {**items[index].body, "model": model}})
            async with slots:
                try:
                    answer = await self.runner.items.answer(item, caller=caller)
                except LlamaradaError as exc:
                    self.metrics.batch_items.labels(status=Outcome.FAILED.value).inc()
                    return lines.failed(index, item, exc)
            self.metrics.batch_items.labels(status=Outcome.SUCCEEDED.value).inc()
            return lines.succeeded(index, item, answer)

        return list(await asyncio.gather(*(one(index) for index in range(len(items)))))

    async def submit_request(self, body: BatchRequest, *, caller: Principal) -> JobRecord:
        """Queue a JSON body's items as a job."""
        self._concurrency(body)
        if body.prompts == [] or body.messages_list == []:
            raise InvalidRequest("needs at least one item", field=_items_field(body))
        model = await self.runner.items.chat.resolve_model(body.model, caller=caller)
        parsed = from_request(body.model_copy(update={"model": model}))
        return await self.submit(parsed, JobKind.NATIVE, {"model": model}, caller=caller)

    async def submit(
        self, parsed: ParsedInput, kind: JobKind, meta: dict[str, Any], *, caller: Principal
    ) -> JobRecord:
        """Store a job and queue its items; lines that could not be read fail at once."""
        limit = self.settings.max_job_items
        if parsed.total > limit:
            raise PayloadTooLarge(f"{parsed.total} items, at most {limit} in one job")
        if parsed.total == 0:
            raise InvalidRequest("the batch has no items")
        await self._check_models(parsed, caller)
        await self.queue.admit(len(parsed.items))
        now = self.clock()
        lines = FORMATS[kind]
        failed = {
            index: _dumps(lines.invalid(index, custom_id, error))
            for index, (custom_id, error) in parsed.invalid.items()
        }
        job = JobRecord(
            id=f"{ID_PREFIX[kind]}_{uuid.uuid4().hex}",
            kind=kind,
            total=parsed.total,
            created_at=now,
            expires_at=now + self.settings.completion_window,
            meta=meta,
            owner=caller.name,
            grants=JobRecord.grants_of(caller),
            trace=tracing.carrier(),
        )
        items = {index: item.model_dump_json() for index, item in parsed.items.items()}
        job = await self.store.create_job(job, items, failed)
        if failed:
            self.metrics.batch_items.labels(status=Outcome.FAILED.value).inc(len(failed))
        if not job.final:
            await self.queue.submit(job.id, job.total)
        logger.info(
            "batch job submitted",
            extra={
                "job": job.id,
                "total": job.total,
                "invalid": len(failed),
                "queue": self.queue.name,
            },
        )
        return job

    async def get(
        self, job_id: str, kind: JobKind = JobKind.NATIVE, *, caller: Principal
    ) -> JobRecord:
        """A job of this kind that the caller may see, or NotFound."""
        job = await self.store.get_job(job_id)
        if job is None or job.kind != kind or not caller.owns(job.owner):
            noun = "batch job" if kind == JobKind.NATIVE else "batch"
            raise NotFound(f"{noun} {job_id!r} not found (it never existed or its retention ended)")
        return job

    async def list(
        self, kind: JobKind, limit: int, after: str | None, *, caller: Principal
    ) -> list[JobRecord]:
        """The caller's jobs of a kind (an admin's: everyone's), newest first."""
        owner = None if caller.admin else caller.name
        return await self.store.list_jobs(kind, limit, after, owner)

    async def cancel(
        self, job_id: str, kind: JobKind = JobKind.NATIVE, *, caller: Principal
    ) -> JobRecord:
        """Drop the items not started (running ones finish); Conflict when the job has ended."""
        await self.get(job_id, kind, caller=caller)
        return await self.runner.stop(job_id, JobStatus.CANCELLING)

    async def results(
        self,
        job_id: str,
        kind: JobKind = JobKind.NATIVE,
        keep: Callable[[Outcome], bool] | None = None,
        *,
        caller: Principal,
    ) -> AsyncIterator[bytes]:
        """The job's result lines so far, in input order (checked before the first byte)."""
        job = await self.get(job_id, kind, caller=caller)

        async def lines() -> AsyncIterator[bytes]:
            for start in range(0, job.total, _PAGE):
                page = await self.store.results(job_id, start, min(start + _PAGE, job.total))
                chunk = [
                    found[1].encode() + b"\n"
                    for found in page
                    if found is not None and (keep is None or keep(found[0]))
                ]
                if chunk:
                    yield b"".join(chunk)

        return lines()

    async def _check_models(self, parsed: ParsedInput, caller: Principal) -> None:
        """Forbidden when an item names a model the caller's key may not use."""
        if caller.models is None:
            return
        chat = self.runner.items.chat
        for name in sorted({str(item.body.get("model") or "") for item in parsed.items.values()}):
            try:
                await chat.resolve_model(name, caller=caller)
            except ModelNotFound:  # not served: the item fails when it runs, if the key may ask
                caller.require_model(name)

    def _concurrency(self, body: BatchRequest) -> int:
        concurrency = body.concurrency or self.settings.concurrency
        if concurrency > self.settings.max_concurrency:
            raise InvalidRequest(
                f"must be at most {self.settings.max_concurrency}", field="concurrency"
            )
        return concurrency


def _items_field(body: BatchRequest) -> str:
    return "prompts" if body.prompts is not None else "messages_list"


def _dumps(line: dict[str, Any]) -> str:
    return json.dumps(line, ensure_ascii=False, separators=(",", ":"))
