"""Ingestion throughput against the bare embedder, and retrieval recall of each search side.

Run: `python -m bench.rag_ingest`. Uses the labelled corpus in tests/data/rag (English and
Spanish), the default (multilingual) embedder with embedded Chroma, and the former MiniLM
embedder on the same chunks, side by side, for the ratio.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from app.core.auth import ANONYMOUS
from app.core.config import RagSettings
from app.core.metrics import Metrics
from app.rag.embeddings import LocalEmbedder, MiniLMEmbedder
from app.rag.ingest import Upload
from app.rag.lexical import LexicalIndex
from app.rag.multilingual import MultilingualEmbedder
from app.rag.schemas import CollectionCreate
from app.rag.service import KnowledgeBase
from app.rag.store import ChromaStore
from tests.rag.corpus import Question, corpus_uploads, questions

COPIES = 8  # the corpus, each copy made distinct, so ingestion runs long enough to time


def copies(uploads: list[Upload]) -> list[Upload]:
    """`COPIES` distinct versions of every document (one line differs, so none is a duplicate)."""
    return [
        Upload(f"{n}-{u.name}", f"Copy {n}.\n\n".encode() + u.data)
        for n in range(COPIES)
        for u in uploads
    ]


async def throughput(embedder: LocalEmbedder, former: LocalEmbedder) -> dict[str, float]:
    """Chunks per second through the whole pipeline, the embedder alone, and the former one."""
    uploads = copies(corpus_uploads())
    with tempfile.TemporaryDirectory() as folder:
        store = ChromaStore.persistent(Path(folder) / "chroma")
        knowledge = KnowledgeBase(store, embedder, RagSettings(max_files=1000), Metrics())
        await knowledge.create_collection(CollectionCreate(name="bench"), caller=ANONYMOUS)
        started = time.perf_counter()
        batch = await knowledge.prepare_upload("bench", uploads, caller=ANONYMOUS)
        result = await knowledge.index(batch)
        pipeline_s = time.perf_counter() - started
        chunks = sum(d.chunks for d in result.documents)
        texts = [chunk.text for document in batch.documents for chunk in document.chunks]
        started = time.perf_counter()
        await embedder.embed_documents(texts)
        embed_s = time.perf_counter() - started
        started = time.perf_counter()
        await former.embed_documents(texts)
        former_s = time.perf_counter() - started
        await store.aclose()
    return {
        "documents": len(uploads),
        "chunks": chunks,
        "pipeline_chunks_per_s": chunks / pipeline_s,
        "embedder_chunks_per_s": chunks / embed_s,
        "ratio": (chunks / pipeline_s) / (chunks / embed_s),
        "former_chunks_per_s": chunks / former_s,
        "vs_former": former_s / embed_s,
        "mean_chunk_chars": sum(map(len, texts)) / len(texts),
    }


async def quality(embedder: LocalEmbedder) -> dict[str, dict[str, float]]:
    """Recall@3 and @5 per language for dense only, lexical only and the hybrid."""
    answerable, _ = questions()
    with tempfile.TemporaryDirectory() as folder:
        store = ChromaStore.persistent(Path(folder) / "chroma")
        knowledge = KnowledgeBase(store, embedder, RagSettings(), Metrics())
        await knowledge.create_collection(CollectionCreate(name="corpus"), caller=ANONYMOUS)
        await knowledge.index(
            await knowledge.prepare_upload("corpus", corpus_uploads(), caller=ANONYMOUS)
        )
        rows = await store.get("corpus", texts=True)
        lexical_index = LexicalIndex([row.text for row in rows])
        table: dict[str, dict[str, float]] = {}
        for lang in ("en", "es"):
            asked = [q for q in answerable if q.lang == lang]
            for k in (3, 5):
                found = {"dense": 0, "lexical": 0, "hybrid": 0}
                for item in asked:
                    vector = await embedder.embed_query(item.question)
                    dense = await store.query("corpus", vector, k)
                    lexical = lexical_index.search(item.question, k)
                    hybrid = await knowledge.retrieve(
                        "corpus", item.question, k=k, caller=ANONYMOUS
                    )
                    found["dense"] += _has(item, [str(r.metadata["source"]) for r in dense])
                    found["lexical"] += _has(
                        item, [str(rows[h.position].metadata["source"]) for h in lexical]
                    )
                    found["hybrid"] += _has(item, [str(h.metadata["source"]) for h in hybrid])
                for side, count in found.items():
                    table.setdefault(f"{lang} {side}", {})[f"recall@{k}"] = count / len(asked)
        await store.aclose()
    return table


def _has(item: Question, sources: list[str]) -> bool:
    return item.source in sources


async def run() -> dict[str, Any]:
    """Both measurements."""
    embedder = MultilingualEmbedder.load()
    former = MiniLMEmbedder.load()
    try:
        return {
            "throughput": await throughput(embedder, former),
            "quality": await quality(embedder),
        }
    finally:
        await embedder.aclose()
        await former.aclose()


def main() -> int:
    """Measure and print."""
    result = asyncio.run(run())
    speed = result["throughput"]
    print(
        f"ingestion: {speed['documents']} documents, {speed['chunks']} chunks, "
        f"{speed['pipeline_chunks_per_s']:.1f} chunks/s through parse+split+embed+store vs "
        f"{speed['embedder_chunks_per_s']:.1f} chunks/s embedding alone "
        f"(ratio {speed['ratio']:.2f}); the former MiniLM embedder "
        f"{speed['former_chunks_per_s']:.1f} chunks/s (multilingual / MiniLM "
        f"{speed['vs_former']:.2f}), {speed['mean_chunk_chars']:.0f} characters a chunk"
    )
    for name, row in result["quality"].items():
        print(f"{name:>11}: recall@3 {row['recall@3']:.2f}  recall@5 {row['recall@5']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
