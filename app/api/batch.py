"""Batch routes: `POST /api/batch` (small, answered at once) and `/api/batch/jobs/...` (queued)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from app.api.deps import BatchDep, PrincipalDep
from app.api.errors import streamed
from app.api.routing import JsonBodyRoute
from app.batch.build import Batch
from app.batch.inputs import ParsedInput, from_json_list, from_jsonl
from app.batch.records import BatchRequest, JobKind, JobRecord, JobStatus
from app.core.auth import Principal
from app.core.errors import InvalidRequest
from app.wire.codec import loads
from app.wire.stream import NDJSON

router = APIRouter(prefix="/api/batch", tags=["batch"], route_class=JsonBodyRoute)

JOBS_PREFIX = "/api/batch/jobs"  # bodies here get the upload limit, not the JSON one
JSONL_TYPES = ("application/x-ndjson", "application/jsonl", "application/jsonlines")
STATUS = {  # the five statuses clients see; the transient ones fold into them
    JobStatus.QUEUED: "queued",
    JobStatus.RUNNING: "running",
    JobStatus.EXPIRING: "running",
    JobStatus.CANCELLING: "cancelled",
    JobStatus.COMPLETED: "completed",
    JobStatus.FAILED: "failed",
    JobStatus.CANCELLED: "cancelled",
    JobStatus.EXPIRED: "failed",
}
_JOB_BODY: dict[str, Any] = {
    "requestBody": {
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/BatchRequest"}},
            NDJSON: {"schema": {"type": "string", "description": "one prompt or chat per line"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        }
    }
}


@router.post("")
async def run_batch(body: BatchRequest, batch: BatchDep, caller: PrincipalDep) -> dict[str, Any]:
    """Answer a small batch now: results in input order, each with its status or error."""
    return {"results": await batch.jobs.run_sync(body, caller=caller)}


@router.post("/jobs", status_code=202, openapi_extra=_JOB_BODY)
async def submit_job(
    request: Request,
    batch: BatchDep,
    caller: PrincipalDep,
    model: Annotated[str, Query(max_length=256, description="for lines naming none")] = "",
) -> JSONResponse:
    """Queue a batch as a job: POST /api/batch's body, a JSON array, or JSONL (a line per item)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    limit = batch.jobs.settings.max_job_items
    meta = {"model": model or None}
    if kind == "multipart/form-data":
        parsed = from_jsonl(await _uploaded(request), model=model, max_items=limit)
        job = await batch.jobs.submit(parsed, JobKind.NATIVE, meta, caller=caller)
    elif kind in JSONL_TYPES:
        parsed = from_jsonl(await request.body(), model=model, max_items=limit)
        job = await batch.jobs.submit(parsed, JobKind.NATIVE, meta, caller=caller)
    else:
        job = await _submit_json(await request.body(), batch, model, caller)
    headers = {"Location": f"{JOBS_PREFIX}/{job.id}"}
    return JSONResponse(_job(job, batch), status_code=202, headers=headers)


@router.get("/jobs")
async def list_jobs(
    batch: BatchDep,
    caller: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    after: str | None = None,
) -> dict[str, Any]:
    """The caller's jobs, newest first."""
    jobs = await batch.jobs.list(JobKind.NATIVE, limit + 1, after, caller=caller)
    return {"jobs": [_job(job, batch) for job in jobs[:limit]], "has_more": len(jobs) > limit}


@router.get("/jobs/{job_id}")
async def get_job(job_id: str, batch: BatchDep, caller: PrincipalDep) -> dict[str, Any]:
    """A job's status, counts and progress."""
    return _job(await batch.jobs.get(job_id, caller=caller), batch)


@router.get(
    "/jobs/{job_id}/results",
    response_model=None,
    responses=streamed(NDJSON, "one result per line, in input order"),
)
async def job_results(job_id: str, batch: BatchDep, caller: PrincipalDep) -> StreamingResponse:
    """The job's results so far as JSONL, in input order, one line per finished item."""
    lines = await batch.jobs.results(job_id, caller=caller)
    return StreamingResponse(lines, media_type=NDJSON)


@router.delete("/jobs/{job_id}")
async def cancel_job(job_id: str, batch: BatchDep, caller: PrincipalDep) -> dict[str, Any]:
    """Cancel a job: items not started are dropped, running ones finish; 409 once it ended."""
    return _job(await batch.jobs.cancel(job_id, caller=caller), batch)


async def _submit_json(data: bytes, batch: BatchDep, model: str, caller: Principal) -> JobRecord:
    limit = batch.jobs.settings.max_job_items
    meta = {"model": model or None}
    parsed: ParsedInput
    try:
        value = loads(data)
    except InvalidRequest:
        if b"\n" not in data.strip():
            raise
        # JSONL sent without its content type (`curl --data-binary @file.jsonl`).
        parsed = from_jsonl(data, model=model, max_items=limit)
        return await batch.jobs.submit(parsed, JobKind.NATIVE, meta, caller=caller)
    if isinstance(value, list):
        parsed = from_json_list(value, model=model, max_items=limit)
        return await batch.jobs.submit(parsed, JobKind.NATIVE, meta, caller=caller)
    try:
        body = BatchRequest.model_validate(value)
    except ValidationError as exc:
        raise InvalidRequest.from_validation(exc) from None
    return await batch.jobs.submit_request(body, caller=caller)


async def _uploaded(request: Request) -> bytes:
    async with request.form(max_files=1, max_fields=2) as form:
        part = form.get("file")
        if not isinstance(part, UploadFile):
            raise InvalidRequest("send the JSONL as a file part named 'file'", field="file")
        return await part.read()


def _job(job: JobRecord, batch: Batch) -> dict[str, Any]:
    retention = batch.jobs.settings.retention
    removal = job.finished_at + retention if job.finished_at is not None else None
    return {
        "id": job.id,
        "status": STATUS[job.status],
        "model": job.meta.get("model"),
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "expires_at": _iso(job.expires_at),
        "results_kept_until": _iso(removal),
        "counts": {
            "total": job.total,
            "succeeded": job.succeeded,
            "failed": job.failed,
            "cancelled": job.cancelled,
            "pending": job.total - job.done,
        },
        "progress": round(job.done / job.total, 4) if job.total else 1.0,
        "results_url": f"{JOBS_PREFIX}/{job.id}/results",
    }


def _iso(value: float | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")
