"""Ingestion: files to chunks with metadata, embedded and stored whole or not at all."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.core.errors import InvalidRequest, NotFound
from app.rag.embeddings import Embedder
from app.rag.loaders import DocType, LoadedDocument, Section, load_document, load_text
from app.rag.schemas import DocumentInfo, IngestProgress, TextDocument
from app.rag.store import ChromaStore, Metadata

logger = logging.getLogger(__name__)

EMBED_STEP = 32  # chunks embedded between two progress events
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Upload:
    """A file as received: its client-side name (metadata only) and its bytes."""

    name: str
    data: bytes


@dataclass(frozen=True)
class ChunkDraft:
    """A chunk before it is embedded: text and where it sits in the document's text."""

    text: str
    index: int
    start: int
    end: int
    page: int | None
    heading: str | None


@dataclass(frozen=True)
class PreparedDocument:
    """A parsed and split file, ready to embed."""

    id: str
    source: str
    loaded: LoadedDocument
    chunks: list[ChunkDraft]
    content_hash: str
    size: int


def source_name(name: str) -> str:
    """A client's file name, checked: a plain name, never a path (it is only metadata)."""
    if not name or len(name) > 255:
        raise InvalidRequest("a file name must have 1-255 characters", field="files")
    if _BAD_NAME.search(name):
        raise InvalidRequest(f"{name!r}: control characters in a file name", field="files")
    if "/" in name or "\\" in name or name in (".", ".."):
        raise InvalidRequest(f"{name!r}: a file name must not be a path", field="files")
    return name


def split_document(
    sections: Sequence[Section], chunk_size: int, chunk_overlap: int
) -> list[ChunkDraft]:
    """Split each section with LangChain's recursive splitter.

    Offsets index the document's text: the file itself for txt and md, and the extracted text
    (sections joined by a blank line) for pdf, docx and html.
    """
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(
        chunk_size=chunk_size, chunk_overlap=chunk_overlap, add_start_index=True
    )
    chunks: list[ChunkDraft] = []
    offset = 0
    for section in sections:
        if section.start is not None:
            offset = section.start
        for piece in splitter.create_documents([section.text]):
            start = offset + int(piece.metadata["start_index"])
            chunks.append(
                ChunkDraft(
                    text=piece.page_content,
                    index=len(chunks),
                    start=start,
                    end=start + len(piece.page_content),
                    page=section.page,
                    heading=section.heading,
                )
            )
        offset += len(section.text) + 2  # sections are joined by a blank line
    return chunks


def prepare(
    loaded: LoadedDocument, source: str, digest: str, size: int, chunk_size: int, overlap: int
) -> PreparedDocument:
    """A loaded document split into chunks; its id comes from its content."""
    chunks = split_document(loaded.sections, chunk_size, overlap)
    return PreparedDocument(digest[:16], source, loaded, chunks, digest, size)


def prepare_upload(
    upload: Upload, chunk_size: int, overlap: int, max_chars: int
) -> PreparedDocument:
    """Check, parse and split an uploaded file (CPU work: call it off the event loop)."""
    source = source_name(upload.name)
    loaded = load_document(upload.data, source, max_chars)
    digest = hashlib.sha256(upload.data).hexdigest()
    return prepare(loaded, source, digest, len(upload.data), chunk_size, overlap)


def prepare_text(
    item: TextDocument, chunk_size: int, overlap: int, max_chars: int
) -> PreparedDocument:
    """Check and split a document sent as JSON text."""
    data = item.text.encode()
    digest = hashlib.sha256(data).hexdigest()
    source = source_name(item.source or f"text-{digest[:8]}")
    if len(item.text) > max_chars:
        raise InvalidRequest(f"at most {max_chars} characters", field="documents.text")
    loaded = load_text(item.text, item.type)
    if not loaded.sections:
        raise InvalidRequest(f"{source!r} holds no text to index", field="documents")
    return prepare(loaded, source, digest, len(data), chunk_size, overlap)


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
