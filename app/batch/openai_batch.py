"""OpenAI's Batch API over the job system: `/v1/files` (purpose `batch`) and `/v1/batches`."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from app.batch.inputs import from_openai_jsonl
from app.batch.jobs import BatchService
from app.batch.openai_format import (
    COMPLETION_WINDOW,
    ENDPOINTS,
    output_file_id,
    output_file_record,
    parse_output_file_id,
    wanted,
)
from app.batch.records import FileRecord, JobKind, JobRecord
from app.batch.store import BatchStore
from app.core.auth import Principal
from app.core.config import BatchSettings
from app.core.errors import InvalidRequest, NotFound, PayloadTooLarge

MAX_LISTED_ERRORS = 20  # input lines described in a batch's `errors`
MAX_LISTED_BATCHES = 10_000  # batches whose output files `GET /v1/files` lists
OUTPUT_KINDS = ("output", "errors")


class OpenAIBatchService:
    """Files and batches in OpenAI's terms; the batches are jobs of kind `openai`.

    Files and batches belong to the caller that made them; a batch's output files to the
    batch's owner. Any other caller but an admin gets NotFound.
    """

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

    async def upload(
        self, filename: str, purpose: str, content: bytes, *, caller: Principal
    ) -> FileRecord:
        """Keep an input file for the retention period."""
        filename = file_name(filename)
        if purpose != "batch":
            raise InvalidRequest("only purpose 'batch' is supported here", field="purpose")
        if len(content) > self.settings.max_upload_bytes:
            raise PayloadTooLarge(
                f"the file is over the {self.settings.max_upload_bytes}-byte limit"
            )
        now = self.clock()
        record = FileRecord(
            id=f"file-{uuid.uuid4().hex}",
            filename=filename,
            purpose=purpose,
            bytes=len(content),
            created_at=now,
            expires_at=now + self.settings.retention,
            owner=caller.name,
        )
        await self.store.put_file(record, content)
        return record

    async def files(
        self,
        purpose: str | None,
        limit: int,
        after: str | None,
        newest_first: bool,
        *,
        caller: Principal,
    ) -> tuple[list[FileRecord], bool]:
        """The caller's uploaded files and batches' output files, and whether more follow."""
        found = [f for f in await self.store.list_files() if caller.owns(f.owner)]
        batches = await self.jobs.list(JobKind.OPENAI, MAX_LISTED_BATCHES, None, caller=caller)
        for job in batches:
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

    async def file(self, file_id: str, *, caller: Principal) -> FileRecord:
        """A file's record, or NotFound."""
        output = parse_output_file_id(file_id)
        if output is not None:
            job = await self._output_job(file_id, *output, caller=caller)
            return output_file_record(job, output[1], self.settings.retention)
        return await self._uploaded(file_id, caller)

    async def content(self, file_id: str, *, caller: Principal) -> AsyncIterator[bytes]:
        """A file's bytes; an output file's lines come from its batch's results, in input order."""
        output = parse_output_file_id(file_id)
        if output is not None:
            batch_id, kind = output
            await self._output_job(file_id, batch_id, kind, caller=caller)
            return await self.jobs.results(
                batch_id, JobKind.OPENAI, lambda outcome: wanted(outcome, kind), caller=caller
            )
        await self._uploaded(file_id, caller)
        content = await self.store.file_content(file_id)
        if content is None:
            raise NotFound(f"file {file_id!r} not found")
        return _once(content)

    async def delete(self, file_id: str, *, caller: Principal) -> None:
        """Delete a file (an output file only stops being listed and served)."""
        output = parse_output_file_id(file_id)
        if output is not None:
            await self._output_job(file_id, *output, caller=caller)
            await self.store.update_meta(output[0], {f"{output[1]}_deleted": True})
            return
        await self._uploaded(file_id, caller)
        if not await self.store.delete_file(file_id):
            raise NotFound(f"file {file_id!r} not found")

    async def create(
        self,
        input_file_id: str,
        endpoint: str,
        completion_window: str,
        metadata: dict[str, str] | None,
        *,
        caller: Principal,
    ) -> JobRecord:
        """Start a batch over an uploaded JSONL file; its bad lines fail alone."""
        if endpoint not in ENDPOINTS:
            raise InvalidRequest(f"supported: {', '.join(ENDPOINTS)}", field="endpoint")
        if completion_window != COMPLETION_WINDOW:
            raise InvalidRequest(
                f"only {COMPLETION_WINDOW!r} is supported", field="completion_window"
            )
        record = await self._uploaded(input_file_id, caller)
        content = await self.store.file_content(input_file_id)
        if content is None:
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
        return await self.jobs.submit(parsed, JobKind.OPENAI, meta, caller=caller)

    async def get(self, batch_id: str, *, caller: Principal) -> JobRecord:
        """A batch, or NotFound."""
        return await self.jobs.get(batch_id, JobKind.OPENAI, caller=caller)

    async def list(self, limit: int, after: str | None, *, caller: Principal) -> list[JobRecord]:
        """The caller's batches, newest first."""
        return await self.jobs.list(JobKind.OPENAI, limit, after, caller=caller)

    async def cancel(self, batch_id: str, *, caller: Principal) -> JobRecord:
        """Cancel a batch: requests not started are dropped; Conflict when it has ended."""
        return await self.jobs.cancel(batch_id, JobKind.OPENAI, caller=caller)

    async def _uploaded(self, file_id: str, caller: Principal) -> FileRecord:
        record = await self.store.get_file(file_id)
        if record is None or not caller.owns(record.owner):
            raise NotFound(f"file {file_id!r} not found")
        return record

    async def _output_job(
        self, file_id: str, batch_id: str, kind: str, *, caller: Principal
    ) -> JobRecord:
        job = await self.store.get_job(batch_id)
        if (
            job is None
            or job.kind != JobKind.OPENAI
            or output_file_id(job, kind) != file_id
            or not caller.owns(job.owner)
        ):
            raise NotFound(f"file {file_id!r} not found")
        return job


def file_name(name: str) -> str:
    """An uploaded file's name as kept (it is only shown back): never a path or control bytes."""
    if not name:
        return "upload.jsonl"
    if len(name) > 255:
        raise InvalidRequest("a file name must have at most 255 characters", field="file")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidRequest("control characters in a file name", field="file")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise InvalidRequest("a file name must not be a path", field="file")
    return name


async def _once(content: bytes) -> AsyncIterator[bytes]:
    yield content
