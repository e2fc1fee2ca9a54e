"""Request and response bodies of the knowledge-base routes."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.core.errors import InvalidRequest
from app.rag.loaders import DocType

AnswerMode = Literal["generative", "extractive"]
_COLLECTION_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]")


def check_collection_name(name: str, field: str = "name") -> str:
    """The name if Chroma accepts it, else an InvalidRequest that says the rule."""
    if not _COLLECTION_NAME.fullmatch(name):
        raise InvalidRequest(
            f"{name[:80]!r} is not a valid collection name: use 3-512 characters from "
            "letters, digits, '.', '_' and '-', starting and ending with a letter or digit",
            field=field,
        )
    return name


class CollectionCreate(BaseModel):
    """`POST /api/rag/collections`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(max_length=512)
    chunk_size: int | None = Field(default=None, ge=100, le=20_000)
    chunk_overlap: int | None = Field(default=None, ge=0, le=10_000)
    embedding_model: str | None = Field(default=None, max_length=256)


class CollectionInfo(BaseModel):
    """A collection with its counts and how it is indexed."""

    name: str
    documents: int
    chunks: int
    embedding_model: str
    chunk_size: int
    chunk_overlap: int
    revision: str
    created_at: str


class DocumentInfo(BaseModel):
    """A document in a collection."""

    id: str
    source: str
    type: DocType
    chunks: int
    bytes: int
    chars: int
    content_hash: str
    created_at: str
    status: Literal["indexed", "duplicate"] | None = None


class UploadResult(BaseModel):
    """What an upload did, file by file, in the order sent."""

    collection: str
    documents: list[DocumentInfo]


class TextDocument(BaseModel):
    """A document sent as text in JSON."""

    model_config = ConfigDict(extra="forbid", strict=True)

    text: str = Field(min_length=1)
    source: str | None = Field(default=None, max_length=255)
    type: Literal[DocType.TXT, DocType.MD, DocType.HTML] | None = None


class TextUpload(BaseModel):
    """`POST .../documents` with a JSON body instead of files."""

    model_config = ConfigDict(extra="forbid", strict=True)

    documents: list[TextDocument] = Field(min_length=1)


class EmbeddingChange(BaseModel):
    """`PUT /api/rag/collections/{name}/embedding`: re-embed every chunk with another model."""

    model_config = ConfigDict(extra="forbid", strict=True)

    embedding_model: str = Field(min_length=1, max_length=256)


class ReembedProgress(BaseModel):
    """A streamed re-embedding event: `embedding` progress, then `done` with the collection."""

    event: Literal["embedding", "done"]
    done: int
    total: int
    collection: CollectionInfo | None = None


class SearchRequest(BaseModel):
    """`POST /api/rag/collections/{name}/search`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    query: str = Field(min_length=1, max_length=4000)
    k: int | None = Field(default=None, ge=1, le=50)
    min_score: float | None = Field(default=None, ge=0, le=1)
    sources: list[str] | None = Field(default=None, max_length=100)
    embedding_model: str | None = Field(default=None, max_length=256)


class SearchResult(BaseModel):
    """A retrieved chunk; `score` is its relevance in 0..1, results are in fused rank order."""

    text: str
    source: str
    score: float
    document_id: str
    chunk_id: str
    chunk_index: int
    page: int | None = None
    heading: str | None = None
    start: int
    end: int
    dense_score: float | None = None
    lexical_score: float | None = None
    rank_score: float
    context: str | None = Field(
        default=None,
        description="the section around the chunk, bounded (rag.section_chars); "
        "None for chunks stored before sections were recorded",
    )


class SearchResponse(BaseModel):
    """The chunks found."""

    results: list[SearchResult]


class QueryRequest(BaseModel):
    """`POST /api/rag/query`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    collection: str = Field(max_length=512)
    question: str = Field(min_length=1, max_length=4000)
    k: int | None = Field(default=None, ge=1, le=20)
    model: str | None = Field(default=None, max_length=256)
    stream: bool = False
    min_score: float | None = Field(default=None, ge=0, le=1)
    sources: list[str] | None = Field(default=None, max_length=100)
    embedding_model: str | None = Field(default=None, max_length=256)
    answer_mode: AnswerMode = Field(
        default="generative",
        description="generative: the model answers from the sources; "
        "extractive: the sources' best sentences quoted with their numbers, no model",
    )


class Citation(BaseModel):
    """A source as the answer cites it: `[n]`."""

    n: int
    document_id: str
    source: str
    chunk_id: str
    chunk_index: int
    score: float
    snippet: str
    page: int | None = None
    heading: str | None = None
    text: str | None = Field(default=None, description="the passage given as this source")


class QueryResponse(BaseModel):
    """A cited answer; `dropped` lists retrieved chunks the context window had no room for."""

    answer: str
    sources: list[Citation]
    cited: list[int] = []
    dropped: list[Citation] = []
    found: bool
    model: str | None = None
    language: Literal["en", "es"]
    answer_mode: AnswerMode = "generative"


class ChunkInfo(BaseModel):
    """Where one chunk of a document came from."""

    index: int
    start: int
    end: int
    page: int | None = None
    heading: str | None = None


class DocumentDetail(DocumentInfo):
    """A document with its chunks' positions."""

    chunk_list: list[ChunkInfo]


class IngestProgress(BaseModel):
    """A streamed upload event: `embedding` progress, a `document` done, or `done` at the end."""

    event: Literal["parsed", "embedding", "document", "done", "error"]
    file: str | None = None
    done: int | None = None
    total: int | None = None
    document: DocumentInfo | None = None
    result: UploadResult | None = None
    error: dict[str, str] | None = None
