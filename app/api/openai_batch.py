"""OpenAI's Batch API: `/v1/files` (JSONL requests, purpose `batch`) and `/v1/batches`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.responses import StreamingResponse

from app.api.deps import BatchDep, PrincipalDep
from app.api.errors import streamed
from app.api.routing import JsonBodyRoute
from app.batch.openai_format import BatchCreate, batch_object, file_object
from app.batch.records import FileRecord, JobRecord

router = APIRouter(prefix="/v1", tags=["openai"], route_class=JsonBodyRoute)

FILES_PREFIX = "/v1/files"  # bodies here get the upload limit, not the JSON one


@router.post("/files")
async def upload_file(
    batch: BatchDep,
    caller: PrincipalDep,
    file: Annotated[UploadFile, File(description="JSONL, one request per line")],
    purpose: Annotated[str, Form()],
) -> dict[str, Any]:
    """Upload a batch input file."""
    content = await file.read()
    record = await batch.openai.upload(file.filename or "", purpose, content, caller=caller)
    return file_object(record)


@router.get("/files")
async def list_files(
    batch: BatchDep,
    caller: PrincipalDep,
    purpose: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 10_000,
    after: str | None = None,
    order: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    """Uploaded files and batches' output and error files."""
    records, has_more = await batch.openai.files(
        purpose, limit, after, order == "desc", caller=caller
    )
    return _page([file_object(record) for record in records], has_more)


@router.get("/files/{file_id}")
async def get_file(file_id: str, batch: BatchDep, caller: PrincipalDep) -> dict[str, Any]:
    """One file."""
    record: FileRecord = await batch.openai.file(file_id, caller=caller)
    return file_object(record)


@router.get(
    "/files/{file_id}/content",
    response_model=None,
    responses=streamed("application/octet-stream", "the file's bytes"),
)
async def file_content(file_id: str, batch: BatchDep, caller: PrincipalDep) -> StreamingResponse:
    """A file's content; a batch's output and error files are JSONL in input order."""
    content = await batch.openai.content(file_id, caller=caller)
    return StreamingResponse(content, media_type="application/octet-stream")


@router.delete("/files/{file_id}")
async def delete_file(file_id: str, batch: BatchDep, caller: PrincipalDep) -> dict[str, Any]:
    """Delete a file."""
    await batch.openai.delete(file_id, caller=caller)
    return {"id": file_id, "object": "file", "deleted": True}


@router.post("/batches")
async def create_batch(body: BatchCreate, batch: BatchDep, caller: PrincipalDep) -> dict[str, Any]:
    """Start a batch over an uploaded file; a line that is not a valid request fails alone."""
    job = await batch.openai.create(
        body.input_file_id, body.endpoint, body.completion_window, body.metadata, caller=caller
    )
    return batch_object(job)


@router.get("/batches")
async def list_batches(
    batch: BatchDep,
    caller: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: str | None = None,
) -> dict[str, Any]:
    """The caller's batches, newest first."""
    jobs: list[JobRecord] = await batch.openai.list(limit + 1, after, caller=caller)
    return _page([batch_object(job) for job in jobs[:limit]], len(jobs) > limit)


@router.get("/batches/{batch_id}")
async def retrieve_batch(batch_id: str, batch: BatchDep, caller: PrincipalDep) -> dict[str, Any]:
    """One batch: status, request counts, output and error file ids."""
    return batch_object(await batch.openai.get(batch_id, caller=caller))


@router.post("/batches/{batch_id}/cancel")
async def cancel_batch(batch_id: str, batch: BatchDep, caller: PrincipalDep) -> dict[str, Any]:
    """Cancel a batch: requests not started are dropped; 409 once it has ended."""
    return batch_object(await batch.openai.cancel(batch_id, caller=caller))


def _page(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
