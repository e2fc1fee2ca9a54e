"""OpenAI's Batch API shapes: output and error lines, `batch` and `file` objects.

A batch's output and error files are not copies: their ids name the batch (`file-<batch id>-output`,
`-errors`) and their content is read from its results, the successes or the rest, in input order.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.batch.items import STOP_MESSAGES, Answer
from app.batch.records import BatchItem, FileRecord, JobRecord, JobStatus, Outcome
from app.core.errors import InvalidRequest, LlamaradaError, ModelNotFound
from app.wire.openai import completion_object

ENDPOINTS = ("/v1/chat/completions",)
COMPLETION_WINDOW = "24h"
_OUTPUT_FILE = re.compile(r"^file-(batch_[0-9a-f]+)-(output|errors)$")


class BatchCreate(BaseModel):
    """`POST /v1/batches`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    input_file_id: str = Field(min_length=1, max_length=256)
    endpoint: str
    completion_window: str = COMPLETION_WINDOW
    metadata: dict[str, str] | None = Field(default=None, max_length=16)
    output_expires_after: dict[str, Any] | None = None


STATUS = {
    JobStatus.QUEUED: "validating",
    JobStatus.RUNNING: "in_progress",
    JobStatus.EXPIRING: "in_progress",
    JobStatus.CANCELLING: "cancelling",
    JobStatus.COMPLETED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
    JobStatus.EXPIRED: "expired",
}


class OpenAILines:
    """Lines of OpenAI's output and error files."""

    def succeeded(self, index: int, item: BatchItem, answer: Answer) -> dict[str, Any]:
        """An answered request, in the output file."""
        request_id = uuid.uuid4().hex
        body = completion_object(answer.model, answer.merged, f"chatcmpl-{request_id}")
        return _line(item.custom_id, {"status_code": 200, "request_id": request_id, "body": body})

    def failed(self, index: int, item: BatchItem | None, error: LlamaradaError) -> dict[str, Any]:
        """A request the model server or the gateway refused, with the HTTP error it would get."""
        body = {
            "message": error.message,
            "type": error.error_type,
            "param": error.field if isinstance(error, InvalidRequest) else None,
            "code": "model_not_found" if isinstance(error, ModelNotFound) else None,
        }
        response = {
            "status_code": error.status_code,
            "request_id": uuid.uuid4().hex,
            "body": {"error": body},
        }
        return _line(item.custom_id if item else None, response)

    def stopped(self, index: int, item: BatchItem | None, reason: str) -> dict[str, Any]:
        """A request the batch dropped (`batch_cancelled`, `batch_expired`)."""
        error = {"code": f"batch_{reason}", "message": STOP_MESSAGES[reason]}
        return _line(item.custom_id if item else None, None, error)

    def invalid(self, index: int, custom_id: str | None, error: InvalidRequest) -> dict[str, Any]:
        """An input line that is not a valid request."""
        return _line(custom_id, None, {"code": "invalid_request", "message": error.message})


def _line(
    custom_id: str | None, response: dict[str, Any] | None, error: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "id": f"batch_req_{uuid.uuid4().hex}",
        "custom_id": custom_id,
        "response": response,
        "error": error,
    }


def output_file_id(job: JobRecord, kind: str) -> str | None:
    """The id of a final batch's `output` or `errors` file, None when it has no such lines."""
    size = job.output_bytes if kind == "output" else job.error_bytes
    if not job.final or size == 0 or job.meta.get(f"{kind}_deleted"):
        return None
    return f"file-{job.id}-{kind}"


def parse_output_file_id(file_id: str) -> tuple[str, str] | None:
    """(batch id, `output` or `errors`) of an output file id, None for an uploaded file's."""
    found = _OUTPUT_FILE.match(file_id)
    return (found.group(1), found.group(2)) if found else None


def batch_object(job: JobRecord) -> dict[str, Any]:
    """OpenAI's `batch` object."""
    meta = job.meta
    final_at = _int(job.finished_at)
    status = job.status
    stopping = status in (JobStatus.CANCELLING, JobStatus.CANCELLED)
    invalid = meta.get("invalid_lines") or []
    return {
        "id": job.id,
        "object": "batch",
        "endpoint": meta.get("endpoint", ENDPOINTS[0]),
        "errors": {"object": "list", "data": invalid} if invalid else None,
        "input_file_id": meta.get("input_file_id", ""),
        "completion_window": meta.get("completion_window", COMPLETION_WINDOW),
        "status": STATUS[status],
        "output_file_id": output_file_id(job, "output"),
        "error_file_id": output_file_id(job, "errors"),
        "created_at": int(job.created_at),
        "in_progress_at": _int(job.started_at),
        "expires_at": int(job.expires_at),
        "finalizing_at": final_at,
        "completed_at": final_at if status == JobStatus.COMPLETED else None,
        "failed_at": final_at if status == JobStatus.FAILED else None,
        "expired_at": final_at if status == JobStatus.EXPIRED else None,
        "cancelling_at": _int(job.stopped_at) if stopping else None,
        "cancelled_at": final_at if status == JobStatus.CANCELLED else None,
        "request_counts": {"total": job.total, "completed": job.succeeded, "failed": job.failed},
        "metadata": meta.get("metadata"),
        "model": meta.get("model"),
    }


def file_object(record: FileRecord) -> dict[str, Any]:
    """OpenAI's `file` object."""
    return {
        "id": record.id,
        "object": "file",
        "bytes": record.bytes,
        "created_at": int(record.created_at),
        "expires_at": int(record.expires_at),
        "filename": record.filename,
        "purpose": record.purpose,
        "status": "processed",
        "status_details": None,
    }


def output_file_record(job: JobRecord, kind: str, retention: float) -> FileRecord:
    """The record of a final batch's output or errors file."""
    finished = job.finished_at or job.created_at
    return FileRecord(
        id=f"file-{job.id}-{kind}",
        filename=f"{job.id}_{kind}.jsonl",
        purpose="batch_output",
        bytes=job.output_bytes if kind == "output" else job.error_bytes,
        created_at=finished,
        expires_at=finished + retention,
    )


def wanted(outcome: Outcome, kind: str) -> bool:
    """Whether a result with this outcome belongs in the `output` or the `errors` file."""
    return (outcome == Outcome.SUCCEEDED) == (kind == "output")


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)
