"""OpenAI's Batch API over the job system: `/v1/files` (purpose `batch`) and `/v1/batches`."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from app.batch.inputs import from_openai_jsonl
from app.batch.jobs import BatchService
from app.batch.models import FileRecord, JobKind, JobRecord
from app.batch.openai_format import (
    COMPLETION_WINDOW,
    ENDPOINTS,
    output_file_id,
    output_file_record,
    parse_output_file_id,
    wanted,
)
from app.batch.store import BatchStore
from app.config import BatchSettings
from app.core.errors import InvalidRequest, NotFound, PayloadTooLarge

MAX_LISTED_ERRORS = 20  # input lines described in a batch's `errors`
MAX_LISTED_BATCHES = 10_000  # batches whose output files `GET /v1/files` lists
OUTPUT_KINDS = ("output", "errors")


class OpenAIBatchService:
    """Files and batches in OpenAI's terms; the batches are jobs of kind `openai`."""

    def __init__(
        self,
        jobs: BatchService,
        store: BatchStore,
        settings: BatchSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.jobs = jobs
        self.store = store
        self.settings = settings
        self.clock = clock

    async def upload(self, filename: str, purpose: str, content: bytes) -> FileRecord:
        """Keep an input file for the retention period."""
        if purpose != "batch":
            raise InvalidRequest("only purpose 'batch' is supported here", field="purpose")
        if len(content) > self.settings.max_upload_bytes:
            raise PayloadTooLarge(
                f"the file is over the {self.settings.max_upload_bytes}-byte limit"
            )
        now = self.clock()
        record = FileRecord(
            id=f"file-{uuid.uuid4().hex}",
            filename=filename or "upload.jsonl",
            purpose=purpose,
            bytes=len(content),
            created_at=now,
            expires_at=now + self.settings.retention,
        )
        await self.store.put_file(record, content)
        return record

    async def files(
        self, purpose: str | None, limit: int, after: str | None, newest_first: bool
    ) -> tuple[list[FileRecord], bool]:
        """Uploaded files and batches' output files, and whether more follow."""
        found = await self.store.list_files()
        for job in await self.jobs.list(JobKind.OPENAI, MAX_LISTED_BATCHES, None):
            found += [
                output_file_record(job, kind, self.settings.retention)
                for kind in OUTPUT_KINDS
                if output_file_id(job, kind)
            ]
        found.sort(key=lambda record: (record.created_at, record.id), reverse=newest_first)
        if purpose:
            found = [record for record in found if record.purpose == purpose]
        ids = [record.id for record in found]
        start = ids.index(after) + 1 if after in ids else 0
        return found[start : start + limit], len(found) > start + limit

    async def file(self, file_id: str) -> FileRecord:
        """A file's record, or NotFound."""
        output = parse_output_file_id(file_id)
        if output is not None:
            job = await self._output_job(file_id, *output)
            return output_file_record(job, output[1], self.settings.retention)
        record = await self.store.get_file(file_id)
        if record is None:
            raise NotFound(f"file {file_id!r} not found")
        return record

    async def content(self, file_id: str) -> AsyncIterator[bytes]:
        """A file's bytes; an output file's lines come from its batch's results, in input order."""
        output = parse_output_file_id(file_id)
        if output is not None:
            batch_id, kind = output
            await self._output_job(file_id, batch_id, kind)
            return await self.jobs.results(
                batch_id, JobKind.OPENAI, lambda outcome: wanted(outcome, kind)
            )
        content = await self.store.file_content(file_id)
        if content is None:
            raise NotFound(f"file {file_id!r} not found")
        return _once(content)

    async def delete(self, file_id: str) -> None:
        """Delete a file (an output file only stops being listed and served)."""
        output = parse_output_file_id(file_id)
        if output is not None:
            await self._output_job(file_id, *output)
            await self.store.update_meta(output[0], {f"{output[1]}_deleted": True})
            return
        if not await self.store.delete_file(file_id):
            raise NotFound(f"file {file_id!r} not found")

    async def create(
        self,
        input_file_id: str,
        endpoint: str,
        completion_window: str,
        metadata: dict[str, str] | None,
    ) -> JobRecord:
        """Start a batch over an uploaded JSONL file; its bad lines fail alone."""
        if endpoint not in ENDPOINTS:
            raise InvalidRequest(f"supported: {', '.join(ENDPOINTS)}", field="endpoint")
        if completion_window != COMPLETION_WINDOW:
            raise InvalidRequest(
                f"only {COMPLETION_WINDOW!r} is supported", field="completion_window"
            )
        record = await self.store.get_file(input_file_id)
        content = await self.store.file_content(input_file_id)
        if record is None or content is None:
            raise NotFound(f"file {input_file_id!r} not found")
        if record.purpose != "batch":
            raise InvalidRequest("the file's purpose must be 'batch'", field="input_file_id")
        parsed = from_openai_jsonl(
            content, endpoint=endpoint, max_items=self.settings.max_job_items
        )
        invalid: list[dict[str, Any]] = [
            {
                "code": "invalid_request",
                "message": error.message,
                "param": None,
                "line": parsed.line_numbers.get(index),
            }
            for index, (_, error) in sorted(parsed.invalid.items())[:MAX_LISTED_ERRORS]
        ]
        models = {item.body.get("model") for item in parsed.items.values()}
        meta = {
            "model": models.pop() if len(models) == 1 else None,
            "input_file_id": input_file_id,
            "endpoint": endpoint,
            "completion_window": completion_window,
            "metadata": metadata,
            "invalid_lines": invalid,
        }
        return await self.jobs.submit(parsed, JobKind.OPENAI, meta)

    async def get(self, batch_id: str) -> JobRecord:
        """A batch, or NotFound."""
        return await self.jobs.get(batch_id, JobKind.OPENAI)

    async def list(self, limit: int, after: str | None) -> list[JobRecord]:
        """Batches, newest first."""
        return await self.jobs.list(JobKind.OPENAI, limit, after)

    async def cancel(self, batch_id: str) -> JobRecord:
        """Cancel a batch: requests not started are dropped; Conflict when it has ended."""
        return await self.jobs.cancel(batch_id, JobKind.OPENAI)

    async def _output_job(self, file_id: str, batch_id: str, kind: str) -> JobRecord:
        job = await self.store.get_job(batch_id)
        if job is None or job.kind != JobKind.OPENAI or output_file_id(job, kind) != file_id:
            raise NotFound(f"file {file_id!r} not found")
        return job


async def _once(content: bytes) -> AsyncIterator[bytes]:
    yield content
