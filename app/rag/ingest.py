"""Ingestion: files to chunks with metadata, embedded and stored whole or not at all."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from app.core.errors import NotFound
from app.rag.chunking import (
    ChunkDraft,
    PreparedDocument,
    Upload,
    prepare_text,
    prepare_upload,
    source_name,
    split_document,
)
from app.rag.embeddings import Embedder
from app.rag.loaders import DocType
from app.rag.schemas import DocumentInfo, IngestProgress
from app.rag.store import ChromaStore, Metadata

logger = logging.getLogger(__name__)

EMBED_STEP = 32  # chunks embedded between two progress events
__all__ = [  # the parsing side lives in `chunking`; callers keep importing it from here
    "ChunkDraft",
    "PreparedDocument",
    "Upload",
    "prepare_text",
    "prepare_upload",
    "source_name",
    "split_document",
]


def document_info(metadata: Metadata) -> DocumentInfo:
    """A document as its first chunk's metadata describes it."""
    return DocumentInfo(
        id=str(metadata["document_id"]),
        source=str(metadata["source"]),
        type=DocType(str(metadata["type"])),
        chunks=int(metadata["chunk_count"]),
        bytes=int(metadata["bytes"]),
        chars=int(metadata["chars"]),
        content_hash=str(metadata["content_hash"]),
        created_at=str(metadata["created_at"]),
    )


def chunk_metadata(document: PreparedDocument, chunk: ChunkDraft, created_at: str) -> Metadata:
    """What each stored chunk carries: its document, its place, and the document's facts."""
    metadata: Metadata = {
        "document_id": document.id,
        "source": document.source,
        "type": document.loaded.doc_type.value,
        "chunk_index": chunk.index,
        "chunk_count": len(document.chunks),
        "start": chunk.start,
        "end": chunk.end,
        "content_hash": document.content_hash,
        "bytes": document.size,
        "chars": document.loaded.chars,
        "created_at": created_at,
    }
    if chunk.page is not None:
        metadata["page"] = chunk.page
    if chunk.heading:
        metadata["heading"] = chunk.heading
    metadata["section"] = chunk.section
    return metadata


def record_of(document_id: str) -> dict[str, Any]:
    """The filter for a document's record: its first chunk."""
    return {"$and": [{"document_id": document_id}, {"chunk_index": 0}]}


async def find_document(store: ChromaStore, collection: str, document_id: str) -> DocumentInfo:
    """The document's record (its first chunk), or NotFound."""
    rows = await store.get(collection, record_of(document_id))
    if not rows:
        raise NotFound(f"document {document_id!r} not found in collection {collection!r}")
    return document_info(rows[0].metadata)


async def index_document(
    store: ChromaStore, embedder: Embedder, collection: str, document: PreparedDocument
) -> AsyncIterator[IngestProgress]:
    """Embed and store every chunk, reporting progress; on any failure remove what was added."""
    existing = await store.get(collection, record_of(document.id))
    if existing:
        info = document_info(existing[0].metadata).model_copy(update={"status": "duplicate"})
        yield IngestProgress(event="document", file=document.source, document=info)
        return
    total = len(document.chunks)
    vectors: list[list[float]] = []
    for start in range(0, total, EMBED_STEP):
        batch = document.chunks[start : start + EMBED_STEP]
        vectors.extend(await embedder.embed_documents([chunk.text for chunk in batch]))
        yield IngestProgress(
            event="embedding", file=document.source, done=len(vectors), total=total
        )
    created_at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    # The first chunk is the document's record; written last, it appears only when all did.
    order = [*range(1, total), 0]
    started = time.perf_counter()
    try:
        await store.upsert(
            collection,
            [f"{document.id}:{document.chunks[i].index}" for i in order],
            [vectors[i] for i in order],
            [document.chunks[i].text for i in order],
            [chunk_metadata(document, document.chunks[i], created_at) for i in order],
        )
    except BaseException:
        await asyncio.shield(_remove_partial(store, collection, document.id))
        raise
    logger.info(
        "document indexed",
        extra={
            "collection": collection,
            "document_id": document.id,
            "chunks": total,
            "store_ms": round((time.perf_counter() - started) * 1000, 1),
        },
    )
    info = document_info(chunk_metadata(document, document.chunks[0], created_at))
    yield IngestProgress(
        event="document",
        file=document.source,
        document=info.model_copy(update={"status": "indexed"}),
    )


async def _remove_partial(store: ChromaStore, collection: str, document_id: str) -> None:
    try:
        await store.delete(collection, {"document_id": document_id})
    except Exception:
        # Without its first chunk the document is not listed, and its next upload replaces it.
        logger.exception("could not remove a partly stored document", extra={"id": document_id})
