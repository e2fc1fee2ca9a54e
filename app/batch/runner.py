"""Running a job's items wherever they run (a worker, or the API in embedded mode), and stopping
jobs: cancelled by a client, or expired at the end of their completion window."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from pydantic import ValidationError

from app.batch.items import ItemRunner, LineFormat, NativeLines
from app.batch.openai_format import OpenAILines
from app.batch.records import BatchItem, Claim, JobKind, JobRecord, JobStatus, Outcome, Recorded
from app.batch.store import BatchStore
from app.core import tracing
from app.core.config import BatchSettings
from app.core.errors import Conflict, LlamaradaError, NotFound
from app.core.metrics import Metrics

logger = logging.getLogger(__name__)

FORMATS: dict[JobKind, LineFormat] = {JobKind.NATIVE: NativeLines(), JobKind.OPENAI: OpenAILines()}
_PAGE = 500


class JobRunner:
    """Claims, answers and records items; each item's first recorded result is its only one."""

    def __init__(
        self,
        store: BatchStore,
        items: ItemRunner,
        settings: BatchSettings,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.items = items
        self.settings = settings
        self.metrics = metrics
        self.clock = clock

    async def run_item(self, job_id: str, index: int) -> Recorded | None:
        """Run one item unless it has its result, and record what came of it."""
        claim = await self.store.claim(job_id, index, self.settings.max_attempts, self.clock())
        if claim in (Claim.DONE, Claim.GONE):
            return None
        job = await self.store.get_job(job_id)
        if job is None:
            return None
        lines = FORMATS[job.kind]
        item = await self._item(job_id, index)
        if claim == Claim.STOPPED:
            reason = "expired" if job.status == JobStatus.EXPIRING else "cancelled"
            return await self.record(
                job, index, Outcome.CANCELLED, lines.stopped(index, item, reason)
            )
        if item is None or claim == Claim.EXHAUSTED:
            error = LlamaradaError(
                f"given up after {self.settings.max_attempts} attempts: the workers running "
                "this item stopped before it finished"
                if item is not None
                else "the item's request is missing from the store"
            )
            return await self.record(job, index, Outcome.FAILED, lines.failed(index, item, error))
        try:
            with _item_span(job, index):
                answer = await self.items.answer(item, caller=job.caller(), wait_for_quota=True)
        except LlamaradaError as exc:
            return await self.record(job, index, Outcome.FAILED, lines.failed(index, item, exc))
        except Exception:
            logger.exception("batch item crashed", extra={"job": job_id, "index": index})
            error = LlamaradaError("internal error; see the worker log")
            return await self.record(job, index, Outcome.FAILED, lines.failed(index, item, error))
        line = lines.succeeded(index, item, answer)
        return await self.record(job, index, Outcome.SUCCEEDED, line)

    async def record(
        self, job: JobRecord, index: int, outcome: Outcome, line: dict[str, object]
    ) -> Recorded:
        """Record a result line; only the first for an item counts, in the store and the metric."""
        text = json.dumps(line, ensure_ascii=False, separators=(",", ":"))
        recorded = await self.store.record(job.id, index, outcome, text, self.clock())
        if recorded != Recorded.DUPLICATE:
            self.metrics.batch_items.labels(status=outcome.value).inc()
        if recorded == Recorded.FINISHED:
            logger.info("batch job finished", extra={"job": job.id, "total": job.total})
        return recorded

    async def stop(self, job_id: str, status: JobStatus) -> JobRecord:
        """Cancel (items not started are dropped) or expire (every unfinished item) a job."""
        job = await self.store.stop(job_id, status, self.clock())
        if job is None:
            raise NotFound(f"batch job {job_id!r} not found")
        reason = "expired" if status == JobStatus.EXPIRING else "cancelled"
        lines = FORMATS[job.kind]
        indices = await self.store.pending(job_id, started=status == JobStatus.EXPIRING)
        for start in range(0, len(indices), _PAGE):
            page = indices[start : start + _PAGE]
            raws = await self.store.load_items(job_id, page)
            await asyncio.gather(
                *(
                    self.record(
                        job, index, Outcome.CANCELLED, lines.stopped(index, _parse(raw), reason)
                    )
                    for index, raw in zip(page, raws, strict=True)
                )
            )
        found = await self.store.get_job(job_id)
        if found is None:
            raise NotFound(f"batch job {job_id!r} not found")
        return found

    async def maintain(self) -> None:
        """Expire jobs past their completion window and forget what outlived its retention."""
        now = self.clock()
        for job_id in await self.store.active_jobs():
            job = await self.store.get_job(job_id)
            if job is not None and not job.final and job.expires_at <= now:
                logger.warning("batch job expired", extra={"job": job_id, "done": job.done})
                with contextlib.suppress(Conflict, NotFound):  # it ended meanwhile
                    await self.stop(job_id, JobStatus.EXPIRING)
        await self.store.purge(now)

    async def _item(self, job_id: str, index: int) -> BatchItem | None:
        [raw] = await self.store.load_items(job_id, [index])
        return _parse(raw)


def _item_span(job: JobRecord, index: int) -> AbstractContextManager[tracing.Span]:
    """An item's span, in the trace of the request that queued its job (a new one if none)."""
    attributes: dict[str, str | int] = {
        "llamarada.batch.job": job.id,
        "llamarada.batch.index": index,
    }
    parent = tracing.context_from(job.trace) or tracing.root_context()
    return tracing.span(
        "llamarada.batch.item", attributes, kind=tracing.SpanKind.CONSUMER, parent=parent
    )


def _parse(raw: str | None) -> BatchItem | None:
    if raw is None:
        return None
    try:
        return BatchItem.model_validate_json(raw)
    except ValidationError:
        return None
