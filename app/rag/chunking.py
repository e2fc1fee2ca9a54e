"""Files to chunks: checked, parsed and split, section by section (no store, no embedder).

This is what the bounded child of `parsing` runs, so it imports only the parsers.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from app.core.errors import InvalidRequest
from app.rag.loaders import LoadedDocument, Section, load_document, load_text
from app.rag.schemas import TextDocument

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
    section: int  # the section of the document it belongs to (its place in the sections)


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
    """Split each section (a heading's text, a manual page's option, a pdf page) on its own
    with LangChain's recursive splitter, so that no chunk spans two of them.

    Offsets index the document's text: the file itself for txt and md, and the extracted text
    (sections joined by a blank line) for pdf, docx and html.
    """
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(
        chunk_size=chunk_size, chunk_overlap=chunk_overlap, add_start_index=True
    )
    chunks: list[ChunkDraft] = []
    offset = 0
    for number, section in enumerate(sections):
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
                    section=number,
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
    upload: Upload, chunk_size: int, overlap: int, max_chars: int, max_pages: int | None = None
) -> PreparedDocument:
    """Check, parse and split an uploaded file (unbounded work: `parsing` runs it in a child)."""
    source = source_name(upload.name)
    loaded = load_document(upload.data, source, max_chars, max_pages)
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
