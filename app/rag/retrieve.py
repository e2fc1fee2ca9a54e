"""Hybrid retrieval: Chroma's nearest vectors and BM25, fused by rank, then reranked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from app.core import tracing
from app.rag.index import CollectionIndex
from app.rag.language import detect
from app.rag.rerank import BAR, WEIGHTS, Bar, Evidence, Weights, evidence, order
from app.rag.schemas import SearchResult
from app.rag.store import ChromaStore, Metadata
from app.rag.support import unheld_share

RRF_K = 60  # the constant of Cormack et al.; damps the weight of the very top ranks
CANDIDATES = 50  # at least this many from each side before fusing (more: better recall)
RERANKED = 30  # the best fused candidates that get the closer look
# Relevance lost per share of the question's words that name what the collection never holds
# (support.py); chosen with RagSettings.min_score on the dev questions (rerank.Bar says how).
UNHELD_PENALTY = 1.5


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk and why: cosine similarity, query coverage, fused rank score.

    `score` is its relevance in 0..1, what thresholds compare: the reranker's weighted
    evidence (the dense part left out when the embedding model does not know the language),
    less a penalty when the question names things no chunk of the collection holds.
    """

    id: str
    text: str
    metadata: Metadata
    dense: float | None
    lexical: float | None
    rank_score: float
    score: float


@dataclass(frozen=True)
class Candidates:
    """The fused candidates of one query, best fused first, with each one's evidence."""

    positions: list[int]
    fused: list[float]
    dense: dict[int, float]  # cosine similarity, by position (lexical finds compared too)
    lexical: dict[int, float]  # query coverage of BM25 finds, by position
    found: list[Evidence]  # parallel to positions
    unheld: float  # share of the query's content words the collection never holds
    dense_rank: dict[int, int]  # rank in the vector search, by position (0 is best)
    lexical_rank: dict[int, int]  # rank in the BM25 search, by position


async def candidates(
    store: ChromaStore,
    index: CollectionIndex,
    name: str,
    query: str,
    vector: Sequence[float],
    *,
    k: int,
    sources: Sequence[str] | None = None,
    trust_dense: bool = True,
    compare: bool = True,
    depth: int = CANDIDATES,
    reranked: int = RERANKED,
) -> Candidates:
    """The first stage: dense and BM25 finds fused by rank, the best of them with evidence.

    `compare`: give lexical finds a similarity from their stored vectors (what reranking and
    relevance read; skipped when neither is wanted). `depth` and `reranked` widen the stage
    for tuning (bench.rag_features dumps more than the search reads).
    """
    wanted = min(max(4 * k, depth), index.lexical.live)
    where = {"source": {"$in": list(sources)}} if sources else None
    with tracing.span("llamarada.rag.vector_search", {"llamarada.rag.candidates": wanted}):
        dense_rows = await store.query(name, vector, wanted, where)
    allowed = np.isin(index.sources(), list(sources)) if sources else None
    with tracing.span("llamarada.rag.lexical_search", {"llamarada.rag.candidates": wanted}):
        lexical_hits = index.lexical.search(query, wanted, allowed)

    fused: dict[int, float] = {}
    dense: dict[int, float] = {}
    lexical: dict[int, float] = {}
    dense_rank: dict[int, int] = {}
    lexical_rank: dict[int, int] = {}
    for rank, row in enumerate(dense_rows):
        position = index.positions.get(row.id)
        if position is None:  # stored after this index was built; next revision has it
            continue
        dense[position] = 1.0 - (row.distance or 0.0)
        dense_rank[position] = rank
        fused[position] = fused.get(position, 0.0) + 1.0 / (RRF_K + rank + 1)
    for rank, hit in enumerate(lexical_hits):
        lexical[hit.position] = hit.coverage
        lexical_rank[hit.position] = rank
        fused[hit.position] = fused.get(hit.position, 0.0) + 1.0 / (RRF_K + rank + 1)

    ranked = sorted(fused, key=lambda p: -fused[p])[: max(reranked, k)]
    if trust_dense and compare:  # lexical finds lack a similarity: compare their stored vectors
        missing = [index.row(p).id for p in ranked if p not in dense]
        query_vector = np.asarray(vector, dtype=np.float32)
        for id_, stored in (await store.vectors(name, missing)).items():
            if id_ in index.positions:
                dense[index.positions[id_]] = float(stored @ query_vector)
        ranked = [p for p in ranked if index.rows[p] is not None]  # removed while we waited
    query_language = detect(query)
    found = [
        evidence(
            query,
            index.row(p).text,
            _heading(index.row(p).metadata),
            dense.get(p, 0.0) if trust_dense else 0.0,
            index.lexical.idf,
            index.lexical.language(p),
            query_language,
        )
        for p in ranked
    ]
    return Candidates(
        positions=ranked,
        fused=[fused[p] for p in ranked],
        dense=dense,
        lexical=lexical,
        found=found,
        unheld=unheld_share(query, index.lexical),
        dense_rank=dense_rank,
        lexical_rank=lexical_rank,
    )


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
    rerank: bool = True,
    weights: Weights = WEIGHTS,
) -> list[Hit]:
    """The `k` best chunks whose relevance reaches `min_score`: fused by rank, then reranked."""
    if not index.lexical.live:
        return []
    with tracing.span("llamarada.rag.candidates"):
        found = await candidates(
            store,
            index,
            name,
            query,
            vector,
            k=k,
            sources=sources,
            trust_dense=trust_dense,
            compare=rerank,
        )
    with tracing.span("llamarada.rag.rerank", {"llamarada.rag.fused": len(found.positions)}):
        bar = BAR if trust_dense else Bar(dense=0.0, coverage=1.0)
        if not trust_dense:
            weights = replace(weights, dense=0.0)
        penalty = UNHELD_PENALTY * found.unheld
        picked = (
            order(found.found, found.fused, weights)
            if rerank
            else list(range(len(found.positions)))
        )
    hits = []
    for i in picked:
        position = found.positions[i]
        row = index.row(position)
        hits.append(
            Hit(
                id=row.id,
                text=row.text,
                metadata=row.metadata,
                dense=found.dense.get(position),
                lexical=found.lexical.get(position),
                rank_score=found.fused[i],
                score=max(found.found[i].relevance(bar) - penalty, 0.0),
            )
        )
    return [hit for hit in hits if hit.score >= min_score][:k]


def _heading(metadata: Metadata) -> str:
    """The heading path a structure-aware splitter recorded, if any."""
    return " ".join(str(metadata[key]) for key in ("heading", "section") if key in metadata)


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
