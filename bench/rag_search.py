"""Hybrid search at 1k, 10k and 100k chunks: latency with and without reranking, the first
query after an upload, Chroma's recall@10, BM25 vs rank-bm25.

Run: `python -m bench.rag_search [sizes...]` (default 1000 10000 100000).

Stored vectors are synthetic (a Gaussian mixture, like clustered text embeddings) and texts are
Zipf-distributed pseudo-words: embedding 100k real chunks would take most of an hour here.
The query path is the real one: the multilingual model embeds each query, Chroma and BM25
search, RRF fuses, the reranker orders the best 30.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from app.core.auth import ANONYMOUS
from app.core.config import RagSettings
from app.core.metrics import Metrics
from app.rag.language import detect
from app.rag.lexical import QUERY_ANALYZERS, LexicalIndex, terms
from app.rag.multilingual import MultilingualEmbedder
from app.rag.namespace import storage_name
from app.rag.schemas import CollectionCreate, TextDocument, TextUpload
from app.rag.service import KnowledgeBase
from app.rag.store import ChromaStore

DIMENSIONS = 512
LATENT = 32
PROJECTION = np.random.default_rng(1).normal(size=(LATENT, DIMENSIONS)) / np.sqrt(LATENT)
QUERIES = 200
SIZES = (1000, 10_000, 100_000)
WORDS_PER_CHUNK = 60


def vocabulary(size: int, rng: np.random.Generator) -> list[str]:
    """Pronounceable pseudo-words."""
    syllables = [c + v for c in "bcdfglmnprstvz" for v in "aeiou"]
    return ["".join(rng.choice(syllables, size=int(rng.integers(2, 4)))) for _ in range(size)]


def synthetic(n: int, rng: np.random.Generator) -> tuple[list[str], npt.NDArray[np.float32]]:
    """`n` texts and unit vectors: 64 clusters in a 32-dimensional space, mapped to 384.

    Sentence embeddings have a low intrinsic dimension; uniform 384-d noise would make every
    point nearly equidistant and any approximate index look worse than it is on real text.
    """
    words = np.array(vocabulary(8000, rng))
    ranks = np.minimum(rng.zipf(1.3, size=(n, WORDS_PER_CHUNK)), len(words)) - 1
    texts = [" ".join(words[row]) for row in ranks]
    centres = rng.normal(size=(64, LATENT))
    latent = centres[rng.integers(0, 64, size=n)] + 0.5 * rng.normal(size=(n, LATENT))
    vectors = latent @ PROJECTION + 0.02 * rng.normal(size=(n, DIMENSIONS))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return texts, vectors.astype(np.float32)


async def measure(
    n: int, rng: np.random.Generator, embedder: MultilingualEmbedder
) -> dict[str, Any]:
    """Fill a collection with `n` chunks, then time queries and check Chroma's recall."""
    texts, vectors = synthetic(n, rng)
    with tempfile.TemporaryDirectory() as folder:
        store = ChromaStore.persistent(Path(folder) / "chroma")
        knowledge = KnowledgeBase(store, embedder, RagSettings(), Metrics())
        await knowledge.create_collection(CollectionCreate(name="bench"), caller=ANONYMOUS)
        storage = storage_name(ANONYMOUS.name, "bench")  # what the store calls it
        metadatas: list[dict[str, str | int | float | bool]] = [
            {"document_id": f"d{i // 10}", "source": f"doc{i // 10}.txt", "chunk_index": i % 10}
            for i in range(n)
        ]
        started = time.perf_counter()
        await store.upsert(storage, [f"c{i}" for i in range(n)], vectors, texts, metadatas)
        add_s = time.perf_counter() - started
        await store.set_metadata(storage, {"revision": "filled"})

        queries = [" ".join(rng.choice(texts[int(rng.integers(n))].split(), 4)) for _ in range(5)]
        started = time.perf_counter()
        await knowledge.retrieve("bench", queries[0], caller=ANONYMOUS)  # builds the lexical index
        index_s = time.perf_counter() - started
        asked = [
            " ".join(rng.choice(texts[int(i)].split(), 4)) for i in rng.integers(n, size=QUERIES)
        ]
        latencies, plain = [], []
        for query in asked:  # alternated, so both see the same machine
            started = time.perf_counter()
            await knowledge.retrieve("bench", query, k=3, caller=ANONYMOUS)
            latencies.append(time.perf_counter() - started)
            started = time.perf_counter()
            await knowledge.retrieve("bench", query, k=3, caller=ANONYMOUS, rerank=False)
            plain.append(time.perf_counter() - started)

        # An upload moves the revision on; the index follows it in place, not rebuilt.
        upload = TextUpload(documents=[TextDocument(text=texts[0] + " fresh words", source="new")])
        await knowledge.index(await knowledge.prepare_texts("bench", upload, caller=ANONYMOUS))
        started = time.perf_counter()
        await knowledge.retrieve("bench", asked[0], k=3, caller=ANONYMOUS)
        after_upload_ms = (time.perf_counter() - started) * 1000

        probes = vectors[rng.integers(n, size=QUERIES)] + 0.05 * rng.normal(
            size=(QUERIES, DIMENSIONS)
        ).astype(np.float32)
        probes /= np.linalg.norm(probes, axis=1, keepdims=True)
        exact = np.argsort(-(probes @ vectors.T), axis=1)[:, :10]
        hits = 0
        for probe, truth in zip(probes, exact, strict=True):
            rows = await store.query(storage, probe.tolist(), 10)
            hits += len({int(row.id[1:]) for row in rows} & set(truth.tolist()))
        await knowledge.store.aclose()
    latencies.sort()
    return {
        "chunks": n,
        "add_s": add_s,
        "lexical_index_s": index_s,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1000,
        "no_rerank_p50_ms": statistics.median(plain) * 1000,
        "after_upload_ms": after_upload_ms,
        "chroma_recall_at_10": hits / (10 * QUERIES),
    }


def bm25_versus_rank_bm25(n: int, rng: np.random.Generator) -> dict[str, float]:
    """Index build and query time of app.rag.lexical against rank-bm25, scoring alike.

    rank-bm25's BM25Okapi is given Lucene's idf and k1=1.2 (what app.rag.lexical uses), so the
    two should agree on every score; `same_top_score` checks that they do.
    """
    try:
        from rank_bm25 import BM25Okapi
    except ImportError:
        raise SystemExit("the BM25 comparison needs rank-bm25: pip install '.[bench]'") from None

    class LuceneIdf(BM25Okapi):  # type: ignore[misc]
        def _calc_idf(self, nd: dict[str, int]) -> None:
            for word, found in nd.items():
                self.idf[word] = math.log(1 + (self.corpus_size - found + 0.5) / (found + 0.5))

    # Texts analysed as English only: rank-bm25 has one analysis for all, ours one per language.
    texts = [text for text in synthetic(n, rng)[0] if detect(text) == "en"]
    queries = [" ".join(rng.choice(texts[int(i)].split(), 4)) for i in rng.integers(n, size=50)]
    started = time.perf_counter()
    ours = LexicalIndex(texts)
    ours_build = time.perf_counter() - started
    started = time.perf_counter()
    theirs = LuceneIdf([terms(text, "en") for text in texts], k1=1.2, b=0.75)
    theirs_build = time.perf_counter() - started
    ours_q, theirs_q, agree = [], [], 0
    for query in queries:
        started = time.perf_counter()
        top = ours.search(query, 10)
        ours_q.append(time.perf_counter() - started)
        started = time.perf_counter()
        scores = theirs.get_scores(list(dict.fromkeys(QUERY_ANALYZERS["en"].terms(query))))
        theirs_q.append(time.perf_counter() - started)
        agree += bool(top) and abs(top[0].bm25 - float(scores.max())) < 1e-3 * top[0].bm25
    return {
        "chunks": len(texts),
        "ours_build_s": ours_build,
        "rank_bm25_build_s": theirs_build,
        "ours_query_ms": statistics.median(ours_q) * 1000,
        "rank_bm25_query_ms": statistics.median(theirs_q) * 1000,
        "query_speedup": statistics.median(theirs_q) / statistics.median(ours_q),
        "same_top_score": agree / len(queries),
    }


async def run(sizes: tuple[int, ...] = SIZES) -> dict[str, Any]:
    """Every measurement, by collection size."""
    rng = np.random.default_rng(7)
    embedder = MultilingualEmbedder.load()
    try:
        scale = [await measure(n, rng, embedder) for n in sizes]
    finally:
        await embedder.aclose()
    return {"scale": scale, "bm25": bm25_versus_rank_bm25(10_000, rng)}


def main() -> int:
    """Measure and print."""
    sizes = tuple(int(arg) for arg in sys.argv[1:]) or SIZES
    result = asyncio.run(run(sizes))
    print(
        "chunks  add_s  lexical_index_s  p50_ms  p99_ms  no_rerank_p50_ms  after_upload_ms  "
        "chroma_recall@10"
    )
    for row in result["scale"]:
        print(
            f"{row['chunks']:>6}  {row['add_s']:5.1f}  {row['lexical_index_s']:15.2f}  "
            f"{row['p50_ms']:6.1f}  {row['p99_ms']:6.1f}  {row['no_rerank_p50_ms']:16.1f}  "
            f"{row['after_upload_ms']:15.1f}  {row['chroma_recall_at_10']:.3f}"
        )
    bm25 = result["bm25"]
    print(
        f"BM25 at {bm25['chunks']} chunks: query {bm25['ours_query_ms']:.2f} ms vs rank-bm25 "
        f"{bm25['rank_bm25_query_ms']:.2f} ms ({bm25['query_speedup']:.1f}x), build "
        f"{bm25['ours_build_s']:.2f} s vs {bm25['rank_bm25_build_s']:.2f} s, "
        f"same top score {bm25['same_top_score']:.0%}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
