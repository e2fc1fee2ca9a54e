"""Knowledge-base routes: `/api/rag/collections/...` (documents, search) and `/api/rag/query`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from app.api.deps import CachePolicyDep, PrincipalDep, RagDep
from app.api.errors import streamed
from app.api.responses import JSON, cache_headers
from app.api.routing import JsonBodyRoute
from app.core.errors import InvalidRequest
from app.rag.build import Rag
from app.rag.ingest import Upload
from app.rag.schemas import (
    CollectionCreate,
    CollectionInfo,
    DocumentDetail,
    DocumentInfo,
    EmbeddingChange,
    QueryRequest,
    QueryResponse,
    SearchRequest,
    SearchResponse,
    TextUpload,
    UploadResult,
)
from app.rag.service import PreparedUpload
from app.wire.codec import loads
from app.wire.stream import NDJSON, ndjson

router = APIRouter(prefix="/api/rag", tags=["rag"], route_class=JsonBodyRoute)
logger = logging.getLogger(__name__)

UPLOAD_PREFIX = "/api/rag/collections/"  # bodies here get the upload limit, not the JSON one
_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}}
                    },
                    "required": ["files"],
                }
            },
            "application/json": {"schema": TextUpload.model_json_schema()},
        }
    }
}


class CollectionList(BaseModel):
    """`GET /api/rag/collections`."""

    collections: list[CollectionInfo]


class DocumentList(BaseModel):
    """`GET /api/rag/collections/{name}/documents`."""

    documents: list[DocumentInfo]


@router.post("/collections", status_code=201)
async def create_collection(
    body: CollectionCreate, rag: RagDep, caller: PrincipalDep
) -> CollectionInfo:
    """Create a collection (chunk size, overlap and embedding model are fixed from then on)."""
    return await rag.knowledge.create_collection(body, caller=caller)


@router.get("/collections")
async def list_collections(rag: RagDep, caller: PrincipalDep) -> CollectionList:
    """The caller's collections with their document and chunk counts."""
    return CollectionList(collections=await rag.knowledge.list_collections(caller=caller))


@router.get("/collections/{name}")
async def get_collection(name: str, rag: RagDep, caller: PrincipalDep) -> CollectionInfo:
    """One collection."""
    return await rag.knowledge.get_collection(name, caller=caller)


@router.delete("/collections/{name}", status_code=204)
async def delete_collection(name: str, rag: RagDep, caller: PrincipalDep) -> Response:
    """Delete a collection with all its documents."""
    await rag.knowledge.delete_collection(name, caller=caller)
    return Response(status_code=204)


@router.post(
    "/collections/{name}/documents",
    status_code=201,
    response_model=UploadResult,
    openapi_extra=_UPLOAD_BODY,
    responses=streamed(NDJSON, "progress events, then the result"),
)
async def upload_documents(
    name: str, request: Request, rag: RagDep, caller: PrincipalDep, stream: bool = False
) -> Response:
    """Add files (multipart parts named `files`) or JSON text; `?stream=true` streams progress."""
    batch = await _read_batch(name, request, rag, caller)
    if stream:
        return StreamingResponse(ndjson(_ingest_events(rag, batch)), media_type=NDJSON)
    result = await rag.knowledge.index(batch)
    return JSONResponse(result.model_dump(mode="json"), status_code=201)


@router.get("/collections/{name}/documents")
async def list_documents(name: str, rag: RagDep, caller: PrincipalDep) -> DocumentList:
    """The documents of a collection."""
    return DocumentList(documents=await rag.knowledge.list_documents(name, caller=caller))


@router.get("/collections/{name}/documents/{document_id}")
async def get_document(
    name: str, document_id: str, rag: RagDep, caller: PrincipalDep
) -> DocumentDetail:
    """A document and where its chunks come from."""
    return await rag.knowledge.get_document(name, document_id, caller=caller)


@router.delete("/collections/{name}/documents/{document_id}", status_code=204)
async def delete_document(
    name: str, document_id: str, rag: RagDep, caller: PrincipalDep
) -> Response:
    """Delete a document and its chunks."""
    await rag.knowledge.delete_document(name, document_id, caller=caller)
    return Response(status_code=204)


@router.put(
    "/collections/{name}/embedding",
    response_model=CollectionInfo,
    responses=streamed(NDJSON, "progress events, then the collection"),
)
async def change_embedding(
    name: str, body: EmbeddingChange, rag: RagDep, caller: PrincipalDep, stream: bool = False
) -> Response:
    """Re-embed every chunk with another model; the old vectors serve searches until done."""
    events = rag.knowledge.change_embedding(name, body, caller=caller)
    first = await anext(events)  # access and model errors become plain 4xx here
    if stream:

        async def lines() -> AsyncIterator[dict[str, Any]]:
            yield first.model_dump(mode="json", exclude_none=True)
            async for event in events:
                yield event.model_dump(mode="json", exclude_none=True)

        return StreamingResponse(ndjson(lines()), media_type=NDJSON)
    collection = first.collection
    async for event in events:
        collection = event.collection or collection
    assert collection is not None  # the last event carries the collection
    return JSONResponse(collection.model_dump(mode="json"))


@router.post("/collections/{name}/search")
async def search(
    name: str, body: SearchRequest, rag: RagDep, caller: PrincipalDep
) -> SearchResponse:
    """Hybrid (vector + BM25) retrieval only: the chunks with their scores."""
    return await rag.knowledge.search(name, body, caller=caller)


@router.post(
    "/query", response_model=QueryResponse, responses=streamed(NDJSON, "sources, tokens, done")
)
async def query(
    body: QueryRequest, rag: RagDep, policy: CachePolicyDep, caller: PrincipalDep
) -> Response:
    """A cited answer from a collection; `stream` sends NDJSON: sources, tokens, done."""
    started = await rag.answers.start(body, policy, caller=caller)
    headers = cache_headers(started.reply, started.cache)
    if body.stream:
        events = rag.answers.events(started)
        return StreamingResponse(ndjson(events), media_type=NDJSON, headers=headers)
    answer = await rag.answers.collect(started)
    return JSON(answer.model_dump(mode="json"), headers=headers)


async def _read_batch(
    name: str, request: Request, rag: RagDep, caller: PrincipalDep
) -> PreparedUpload:
    """The request's documents, multipart files or JSON text, parsed and split."""
    await rag.knowledge.check_access(name, caller=caller)  # before reading a large body
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            body = TextUpload.model_validate(loads(await request.body()))
        except ValidationError as exc:
            raise InvalidRequest.from_validation(exc) from None
        return await rag.knowledge.prepare_texts(name, body, caller=caller)
    if kind != "multipart/form-data":
        raise InvalidRequest("send multipart/form-data with parts named 'files', or JSON text")
    limit = rag.knowledge.settings.max_files
    async with request.form(max_files=limit + 1, max_fields=limit + 1) as form:
        uploads = []
        for part in form.getlist("files"):
            if not isinstance(part, UploadFile):
                raise InvalidRequest("each 'files' part must be a file", field="files")
            uploads.append(Upload(part.filename or "", await part.read()))
    return await rag.knowledge.prepare_upload(name, uploads, caller=caller)


async def _ingest_events(rag: Rag, batch: PreparedUpload) -> AsyncIterator[dict[str, Any]]:
    async for event in rag.knowledge.index_events(batch):
        yield event.model_dump(mode="json", exclude_none=True)
