"""The knowledge-base service: collections, documents and search over one Chroma store."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from app.core import tracing
from app.core.auth import Principal
from app.core.config import RagSettings
from app.core.errors import Conflict, InvalidRequest
from app.core.metrics import Metrics
from app.rag.embeddings import Embedder
from app.rag.index import CollectionIndex, IndexCache
from app.rag.ingest import (
    PreparedDocument,
    Upload,
    document_info,
    find_document,
    index_document,
    prepare_text,
)
from app.rag.language import detect as detect_language
from app.rag.namespace import NAME, OWNER, Namespaces, display_name, owner_of
from app.rag.parsing import ParseLimits, UploadParser
from app.rag.reembed import is_shadow, reembed
from app.rag.retrieve import Candidates, Hit, candidates, hybrid_search, search_result
from app.rag.schemas import (
    ChunkInfo,
    CollectionCreate,
    CollectionInfo,
    DocumentDetail,
    DocumentInfo,
    EmbeddingChange,
    IngestProgress,
    ReembedProgress,
    SearchRequest,
    SearchResponse,
    TextUpload,
    UploadResult,
    check_collection_name,
)
from app.rag.sections import section_contexts
from app.rag.store import ChromaStore, StoredCollection

FIRST_CHUNK = {"chunk_index": 0}


@dataclass(frozen=True)
class PreparedUpload:
    """Files of one upload, parsed and split, bound for one collection."""

    collection: str  # as the caller names it
    storage: str  # as Chroma stores it
    embedder: Embedder
    documents: list[PreparedDocument]


class KnowledgeBase:
    """Collections of documents, their chunks in Chroma, and hybrid search over them.

    Names are per owner (app/rag/namespace.py): a caller names its own collections, so another
    key's collection does not exist for it, and two keys may both have `docs`. Admins list every
    collection and reach another owner's by its name when no collection of theirs has it.
    Documents belong to their collection.
    """

    def __init__(
        self,
        store: ChromaStore,
        embedder: Embedder,
        settings: RagSettings,
        metrics: Metrics,
        *,
        other_embedder: Callable[[str], Embedder | None] | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self._metrics = metrics
        # Embeds with other models than the default (None for a model it cannot run).
        self._other_embedder = other_embedder
        self._others: dict[str, Embedder] = {}
        self._indexes = IndexCache()
        self.parser = UploadParser(ParseLimits.of(settings), settings.parse_workers)
        self._reembedding: set[str] = set()
        self._names = Namespaces(store)

    async def aclose(self) -> None:
        """Close the store and the embedders."""
        await self.embedder.aclose()
        for other in self._others.values():
            await other.aclose()
        await self.store.aclose()

    # Collections

    async def create_collection(
        self, body: CollectionCreate, *, caller: Principal
    ) -> CollectionInfo:
        """A new, empty collection recording how it will be split and embedded."""
        name = check_collection_name(body.name)
        size = body.chunk_size or self.settings.chunk_size
        overlap = (
            body.chunk_overlap
            if body.chunk_overlap is not None
            else min(self.settings.chunk_overlap, size // 2)
        )
        if overlap >= size:
            raise InvalidRequest("must be smaller than chunk_size", field="chunk_overlap")
        model = body.embedding_model or self.embedder.model
        self._embedder_for(model)
        storage = await self._names.free(caller, name)
        stored = await self.store.create_collection(
            storage,
            {
                NAME: name,
                "embedding_model": model,
                "chunk_size": size,
                "chunk_overlap": overlap,
                "revision": uuid.uuid4().hex,
                "created_at": _now(),
                OWNER: caller.name,
            },
        )
        return self._info(stored, 0)

    async def list_collections(self, *, caller: Principal) -> list[CollectionInfo]:
        """The caller's collections with their document and chunk counts."""
        await self._names.ready()
        stored = [
            c
            for c in await self.store.collections()
            if caller.owns(owner_of(c)) and not is_shadow(c.metadata)
        ]
        stored.sort(key=lambda c: (display_name(c), owner_of(c) or ""))
        counts = await asyncio.gather(*(self.store.get(c.name, FIRST_CHUNK) for c in stored))
        return [self._info(c, len(rows)) for c, rows in zip(stored, counts, strict=True)]

    async def get_collection(self, name: str, *, caller: Principal) -> CollectionInfo:
        """One collection with its counts."""
        stored = await self._owned(name, caller)
        return self._info(stored, len(await self.store.get(stored.name, FIRST_CHUNK)))

    async def delete_collection(self, name: str, *, caller: Principal) -> None:
        """Drop a collection, its documents and their chunks."""
        stored = await self._owned(name, caller)
        await self.store.delete_collection(stored.name)
        self._indexes.forget(stored.name)

    # Documents

    async def prepare_upload(
        self, name: str, uploads: Sequence[Upload], *, caller: Principal
    ) -> PreparedUpload:
        """Check and parse every file before anything is stored (4xx errors name the file)."""
        stored, embedder = await self._open(name, caller)
        if not uploads:
            raise InvalidRequest("send one or more files in parts named 'files'", field="files")
        if len(uploads) > self.settings.max_files:
            raise InvalidRequest(f"at most {self.settings.max_files} files", field="files")
        size, overlap = _splitting(stored)
        documents = [await self.parser.prepare(upload, size, overlap) for upload in uploads]
        return PreparedUpload(name, stored.name, embedder, documents)

    async def prepare_texts(
        self, name: str, body: TextUpload, *, caller: Principal
    ) -> PreparedUpload:
        """Documents sent as JSON text, checked and split."""
        stored, embedder = await self._open(name, caller)
        if len(body.documents) > self.settings.max_files:
            raise InvalidRequest(f"at most {self.settings.max_files} documents", field="documents")
        size, overlap = _splitting(stored)
        documents = [
            prepare_text(item, size, overlap, self.settings.max_document_chars)
            for item in body.documents
        ]
        return PreparedUpload(name, stored.name, embedder, documents)

    async def index_events(self, batch: PreparedUpload) -> AsyncIterator[IngestProgress]:
        """Index each document of the batch (each whole or not at all), reporting as it goes."""
        done: list[DocumentInfo] = []
        indexed: list[str] = []
        revision = await self._revision(batch.storage)
        try:
            for document in batch.documents:
                yield IngestProgress(
                    event="parsed", file=document.source, total=len(document.chunks)
                )
                started = time.perf_counter()
                async for event in index_document(
                    self.store, batch.embedder, batch.storage, document
                ):
                    if event.document is not None:
                        done.append(event.document)
                        self._count(event.document, time.perf_counter() - started)
                        if event.document.status == "indexed":
                            indexed.append(event.document.id)
                    yield event
        finally:
            if indexed:  # one new revision per upload, even one cut short
                await asyncio.shield(self._changed(batch.storage, revision, added=indexed))
        yield IngestProgress(
            event="done", result=UploadResult(collection=batch.collection, documents=done)
        )

    async def index(self, batch: PreparedUpload) -> UploadResult:
        """Index the batch and return what happened to each file."""
        result = None
        async for event in self.index_events(batch):
            result = event.result or result
        assert result is not None  # index_events always ends with a result
        return result

    async def list_documents(self, name: str, *, caller: Principal) -> list[DocumentInfo]:
        """The documents of a collection, oldest first."""
        stored = await self._owned(name, caller)
        rows = await self.store.get(stored.name, FIRST_CHUNK)
        return sorted((document_info(r.metadata) for r in rows), key=lambda d: d.created_at)

    async def get_document(
        self, name: str, document_id: str, *, caller: Principal
    ) -> DocumentDetail:
        """A document with where each of its chunks sits."""
        stored = await self._owned(name, caller)
        info = await find_document(self.store, stored.name, document_id)
        rows = await self.store.get(stored.name, {"document_id": document_id})
        chunks = sorted(
            (
                ChunkInfo(
                    index=int(r.metadata["chunk_index"]),
                    start=int(r.metadata["start"]),
                    end=int(r.metadata["end"]),
                    page=int(r.metadata["page"]) if "page" in r.metadata else None,
                    heading=str(r.metadata["heading"]) if "heading" in r.metadata else None,
                )
                for r in rows
            ),
            key=lambda c: c.index,
        )
        return DocumentDetail(**info.model_dump(), chunk_list=chunks)

    async def delete_document(self, name: str, document_id: str, *, caller: Principal) -> None:
        """Remove a document and every chunk of it."""
        stored = await self._owned(name, caller)
        await find_document(self.store, stored.name, document_id)
        await self.store.delete(stored.name, {"document_id": document_id})
        await self._changed(stored.name, _revision(stored), removed=document_id)
        self._metrics.rag_documents.labels(status="deleted").inc()

    async def change_embedding(
        self, name: str, body: EmbeddingChange, *, caller: Principal
    ) -> AsyncIterator[ReembedProgress]:
        """Re-embed every chunk with another model; searches use the old vectors until done."""
        stored = await self._owned(name, caller)
        embedder = self._embedder_for(body.embedding_model)
        storage = stored.name
        if storage in self._reembedding:
            raise Conflict(f"collection {name!r} is being re-embedded already")
        self._reembedding.add(storage)
        try:
            done = total = 0
            async for done, total in reembed(self.store, storage, stored.metadata, embedder):
                yield ReembedProgress(event="embedding", done=done, total=total)
        finally:
            self._reembedding.discard(storage)
            self._indexes.forget(storage)
        info = await self.get_collection(name, caller=caller)
        yield ReembedProgress(event="done", done=done, total=total, collection=info)

    # Search

    @tracing.traced("llamarada.rag.retrieve")
    async def retrieve(
        self,
        name: str,
        query: str,
        *,
        caller: Principal,
        k: int | None = None,
        min_score: float = 0.0,
        sources: Sequence[str] | None = None,
        embedding_model: str | None = None,
        rerank: bool = True,
    ) -> list[Hit]:
        """The best chunks for a query by hybrid search, reranked unless told not to."""
        started = time.perf_counter()
        storage, vector, index, trust = await self._query(name, query, caller, embedding_model)
        hits = await hybrid_search(
            self.store,
            index,
            storage,
            query,
            vector,
            k=k or self.settings.top_k,
            min_score=min_score,
            sources=sources,
            trust_dense=trust,
            rerank=rerank,
        )
        self._metrics.rag_retrieval_duration.observe(time.perf_counter() - started)
        return hits

    async def candidates(
        self, name: str, query: str, *, caller: Principal, k: int, depth: int, reranked: int
    ) -> tuple[Candidates, CollectionIndex, bool]:
        """The first stage's candidates with their evidence, the index they come from, and
        whether the dense side was trusted: what reranking and refusals read (for tuning)."""
        storage, vector, index, trust = await self._query(name, query, caller)
        found = await candidates(
            self.store,
            index,
            storage,
            query,
            vector,
            k=k,
            trust_dense=trust,
            depth=depth,
            reranked=reranked,
        )
        return found, index, trust

    async def search(self, name: str, body: SearchRequest, *, caller: Principal) -> SearchResponse:
        """Retrieval only: the chunks with their scores."""
        hits = await self.retrieve(
            name,
            body.query,
            caller=caller,
            k=body.k,
            min_score=body.min_score or 0.0,
            sources=body.sources,
            embedding_model=body.embedding_model,
        )
        contexts = await self.contexts(name, hits, caller=caller)
        results = [
            search_result(hit).model_copy(update={"context": context})
            for hit, context in zip(hits, contexts, strict=True)
        ]
        return SearchResponse(results=results)

    async def contexts(
        self, name: str, hits: Sequence[Hit], *, caller: Principal
    ) -> list[str | None]:
        """The section around each hit (None for chunks stored without sections)."""
        stored = await self._owned(name, caller)
        index = await self._indexes.get(self.store, stored.name, _revision(stored))
        return section_contexts(index, hits, self.settings.section_chars)

    # Internals

    async def check_access(self, name: str, *, caller: Principal) -> None:
        """NotFound unless the collection exists and the caller may see it (before an upload)."""
        await self._owned(name, caller)

    async def _owned(self, name: str, caller: Principal) -> StoredCollection:
        """The caller's collection of that name; the same NotFound whether missing or another's."""
        return await self._names.find(check_collection_name(name), caller)

    async def _query(
        self, name: str, query: str, caller: Principal, embedding_model: str | None = None
    ) -> tuple[str, list[float], CollectionIndex, bool]:
        """What a search of the caller's collection needs: its storage name, the query's vector
        and the collection's index (made side by side), and whether the dense side is trusted
        (the embedder knows the query's language)."""
        stored, embedder = await self._open(name, caller, embedding_model)
        vector, index = await asyncio.gather(
            embedder.embed_query(query),
            self._indexes.get(self.store, stored.name, _revision(stored)),
        )
        trust = embedder.languages is None or detect_language(query) in embedder.languages
        return stored.name, vector, index, trust

    async def _open(
        self, name: str, caller: Principal, embedding_model: str | None = None
    ) -> tuple[StoredCollection, Embedder]:
        stored = await self._owned(name, caller)
        model = str(stored.metadata.get("embedding_model", ""))
        if embedding_model and embedding_model != model:
            raise Conflict(
                f"collection {name!r} was embedded with {model!r}; searching it with "
                f"{embedding_model!r} would compare unrelated vectors"
            )
        return stored, self._embedder_for(model, name)

    def _embedder_for(self, model: str, collection: str | None = None) -> Embedder:
        if model == self.embedder.model:
            return self.embedder
        if model in self._others:
            return self._others[model]
        other = self._other_embedder(model) if self._other_embedder is not None else None
        if other is not None:
            self._others[model] = other
            return other
        what = f"collection {collection!r} was embedded with" if collection else "the model"
        raise Conflict(
            f"{what} {model!r}, but this server embeds with {self.embedder.model!r} only; "
            "re-create the collection, or run with the embedder it was made with"
        )

    async def _revision(self, name: str) -> str:
        return _revision(await self.store.collection(name))

    async def _changed(
        self,
        name: str,
        old: str,
        *,
        added: Sequence[str] = (),
        removed: str | None = None,
    ) -> None:
        """A new revision (cached answers of the old one go stale); the index follows in place."""
        new = uuid.uuid4().hex
        await self.store.set_metadata(name, {"revision": new})
        rows = []
        if added and self._indexes.holds(name, old):
            rows = await self.store.get(name, {"document_id": {"$in": list(added)}}, texts=True)
        await self._indexes.update(name, old, new, added=rows, removed_document=removed)

    def _count(self, document: DocumentInfo, seconds: float) -> None:
        self._metrics.rag_documents.labels(status=document.status or "indexed").inc()
        if document.status == "indexed":
            self._metrics.rag_chunks.inc(document.chunks)
            self._metrics.rag_ingest_duration.observe(seconds)

    def _info(self, stored: StoredCollection, documents: int) -> CollectionInfo:
        meta = stored.metadata
        return CollectionInfo(
            name=display_name(stored),
            documents=documents,
            chunks=stored.count,
            embedding_model=str(meta.get("embedding_model", "")),
            chunk_size=int(meta.get("chunk_size", self.settings.chunk_size)),
            chunk_overlap=int(meta.get("chunk_overlap", self.settings.chunk_overlap)),
            revision=str(meta.get("revision", "")),
            created_at=str(meta.get("created_at", "")),
        )


def _revision(stored: StoredCollection) -> str:
    return str(stored.metadata.get("revision", ""))


def _splitting(stored: StoredCollection) -> tuple[int, int]:
    return int(stored.metadata["chunk_size"]), int(stored.metadata["chunk_overlap"])


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
