"""Hybrid retrieval: Chroma's nearest vectors and BM25, fused by reciprocal rank."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.rag.lexical import LexicalIndex
from app.rag.schemas import SearchResult
from app.rag.store import ChromaStore, Metadata, Row

RRF_K = 60  # the constant of Cormack et al.; damps the weight of the very top ranks
CANDIDATES = 20  # at least this many from each side before fusing


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk and why: cosine similarity, query coverage, fused rank score.

    `score` is its relevance in 0..1, what thresholds compare: the stronger of the two signals,
    or the lexical one alone when the embedding model does not know the query's language.
    """

    id: str
    text: str
    metadata: Metadata
    dense: float | None
    lexical: float | None
    rank_score: float
    score: float


class CollectionIndex:
    """A collection's chunks at one revision, with their BM25 index."""

    def __init__(self, revision: str, rows: list[Row]) -> None:
        self.revision = revision
        self.rows = rows
        self.positions = {row.id: position for position, row in enumerate(rows)}
        self.sources = np.array([str(row.metadata.get("source", "")) for row in rows], dtype=object)
        self.lexical = LexicalIndex([row.text for row in rows])


class IndexCache:
    """One lexical index per collection, rebuilt when the collection's revision moves on."""

    def __init__(self) -> None:
        self._indexes: dict[str, CollectionIndex] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, store: ChromaStore, name: str, revision: str) -> CollectionIndex:
        """The index of `name` at `revision`, built from Chroma if not held."""
        index = self._indexes.get(name)
        if index is not None and index.revision == revision:
            return index
        async with self._locks.setdefault(name, asyncio.Lock()):
            index = self._indexes.get(name)
            if index is None or index.revision != revision:
                rows = await store.get(name, texts=True)
                index = await asyncio.to_thread(CollectionIndex, revision, rows)
                self._indexes[name] = index
            return index

    def forget(self, name: str) -> None:
        """Drop a collection's index (it was deleted)."""
        self._indexes.pop(name, None)


async def hybrid_search(
    store: ChromaStore,
    index: CollectionIndex,
    name: str,
    query: str,
    vector: Sequence[float],
    *,
    k: int,
    min_score: float = 0.0,
    sources: Sequence[str] | None = None,
    trust_dense: bool = True,
) -> list[Hit]:
    """The `k` best chunks by reciprocal rank fusion whose relevance reaches `min_score`."""
    if not index.rows:
        return []
    wanted = min(max(4 * k, CANDIDATES), len(index.rows))
    where = {"source": {"$in": list(sources)}} if sources else None
    dense_rows = await store.query(name, vector, wanted, where)
    allowed = np.isin(index.sources, list(sources)) if sources else None
    lexical_hits = index.lexical.search(query, wanted, allowed)

    fused: dict[int, float] = {}
    dense: dict[int, float] = {}
    lexical: dict[int, float] = {}
    for rank, row in enumerate(dense_rows):
        position = index.positions.get(row.id)
        if position is None:  # stored after this index was built; next revision has it
            continue
        dense[position] = 1.0 - (row.distance or 0.0)
        fused[position] = fused.get(position, 0.0) + 1.0 / (RRF_K + rank + 1)
    for rank, hit in enumerate(lexical_hits):
        lexical[hit.position] = hit.coverage
        fused[hit.position] = fused.get(hit.position, 0.0) + 1.0 / (RRF_K + rank + 1)

    hits = [
        Hit(
            id=index.rows[position].id,
            text=index.rows[position].text,
            metadata=index.rows[position].metadata,
            dense=dense.get(position),
            lexical=lexical.get(position),
            rank_score=rank_score,
            score=max(dense.get(position, 0.0) if trust_dense else 0.0, lexical.get(position, 0.0)),
        )
        for position, rank_score in fused.items()
    ]
    hits = [hit for hit in hits if hit.score >= min_score]
    hits.sort(key=lambda hit: (-hit.rank_score, -hit.score))
    return hits[:k]


def search_result(hit: Hit) -> SearchResult:
    """A hit as the search route returns it."""
    meta = hit.metadata
    return SearchResult(
        text=hit.text,
        source=str(meta.get("source", "")),
        score=round(hit.score, 4),
        document_id=str(meta.get("document_id", "")),
        chunk_id=hit.id,
        chunk_index=int(meta.get("chunk_index", 0)),
        page=int(meta["page"]) if "page" in meta else None,
        heading=str(meta["heading"]) if "heading" in meta else None,
        start=int(meta.get("start", 0)),
        end=int(meta.get("end", 0)),
        dense_score=round(hit.dense, 4) if hit.dense is not None else None,
        lexical_score=round(hit.lexical, 4) if hit.lexical is not None else None,
        rank_score=round(hit.rank_score, 6),
    )
