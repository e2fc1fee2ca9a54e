"""Run every benchmark and write docs/BENCHMARKS.md (`make bench`)."""

from __future__ import annotations

import asyncio
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import (
    batch_throughput,
    cache_hit,
    dialects,
    embed_threads,
    hot_path,
    http_protocol,
    proxy_overhead,
    rag_ingest,
    rag_parse,
    rag_search,
    schema_guard,
    stream_rate,
    tracing_overhead,
)

DOC = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"


def main() -> int:
    """Measure, print and write the table."""
    print("cache hit vs bare Redis GET ...", flush=True)
    cache = cache_hit.run()
    print(cache, flush=True)
    print("streamed tokens/s vs raw llama-cpp-python ...", flush=True)
    stream = stream_rate.run()
    print(stream, flush=True)
    print("gateway overhead vs direct, and vs LiteLLM's proxy ...", flush=True)
    proxy = proxy_overhead.run()
    print(proxy, flush=True)
    print("hot path: the gateway's own cost per request, misses and hits, 1 and 2 workers ...")
    hot = hot_path.run()
    print(hot, flush=True)
    print("HTTP protocol: guarded httptools vs uvicorn's httptools and h11 ...", flush=True)
    protocol = http_protocol.run()
    print(protocol, flush=True)
    print("knowledge bases: ingestion, retrieval quality, search at scale ...", flush=True)
    ingest = asyncio.run(rag_ingest.run())
    search = asyncio.run(rag_search.run())
    print(ingest, search, flush=True)
    print("embedder: one BLAS thread vs two, cores free and busy ...", flush=True)
    threads = embed_threads.run()
    print(threads, flush=True)
    print("upload parsing: a bounded child vs in process, time to refuse hostile files ...")
    parse = asyncio.run(rag_parse.run())
    print(parse, flush=True)
    print("batch throughput: API concurrency, 1 and 2 workers, vs sequential ...", flush=True)
    batch = batch_throughput.run()
    print(batch, flush=True)
    print("format schemas: the check per request, the child process per new schema ...", flush=True)
    schemas = schema_guard.run()
    print(schemas, flush=True)
    print("tracing: every request sampled and exported vs tracing off ...", flush=True)
    traced = tracing_overhead.run()
    print(traced, flush=True)
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    rows = [
        (
            "Cache hit, `/api/chat` non-streamed, vs a bare Redis `GET` of the same entry",
            f"{cache['gateway_hit_ms']:.2f} ms vs {cache['redis_get_ms']:.3f} ms",
            f"{cache['ratio']:.1f}x the time",
            "lower is better; the gap is HTTP, JSON and the ASGI stack",
        ),
        (
            "Streamed tokens/s through `/api/chat` vs raw llama-cpp-python, same prompt",
            f"{stream['gateway_tokens_per_s']:.1f} vs {stream['raw_tokens_per_s']:.1f} tok/s",
            f"{stream['ratio']:.3f}",
            "goal >= 0.95",
        ),
    ]
    rows += _proxy_rows(proxy)
    rows += hot_path.rows(hot)
    rows += http_protocol.rows(protocol)
    rows += _rag_rows(ingest, search)
    rows += embed_threads.rows(threads)
    rows += rag_parse.rows(parse)
    rows += batch_throughput.rows(batch)
    rows += schema_guard.rows(schemas)
    rows += tracing_overhead.rows(traced)
    table = "\n".join(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows)
    DOC.parent.mkdir(exist_ok=True)
    # Sections kept by hand below the table (`## ...`, e.g. the retrieval evaluation) survive.
    previous = DOC.read_text() if DOC.exists() else ""
    kept = previous[previous.index("\n## ") :] if "\n## " in previous else ""
    DOC.write_text(
        f"""# Benchmarks

Measured side by side in one run on {when}, {platform.machine()} with
{_cores()} cores, Python {platform.python_version()}. Reproduce with `make bench`
(`python -m bench`), which rewrites this file. Both sides of each ratio are measured in the same
run, interleaved round by round where they can be, so the machine's load affects them alike;
figures are medians unless marked p99. Servers run in their own processes, as clients meet them.

| what | measured | ratio | note |
| --- | --- | --- | --- |
{table}
"""
        + kept
    )
    print("API dialects: /v1/messages and /v1/responses vs /api/chat ...", flush=True)
    cpu = dialects.cpu_per_request()
    dialects.update_doc(dialects.section(dialects.run(), cpu, hot_path.DURATION, 3))
    print(f"wrote {DOC}")
    return 0


def _proxy_rows(proxy: dict[str, float]) -> list[tuple[str, str, str, str]]:
    added = proxy["llamarada_p50_ms"] - proxy["direct_p50_ms"]
    rows = [
        (
            "Added p50 latency, `/v1/chat/completions`, one client, vs the upstream directly",
            f"+{added:.2f} ms (p50 {proxy['llamarada_p50_ms']:.2f} ms, "
            f"p99 {proxy['llamarada_p99_ms']:.2f} ms; direct {proxy['direct_p50_ms']:.2f} ms)",
            f"{proxy['llamarada_p50_ms'] / proxy['direct_p50_ms']:.1f}x direct",
            "scripted upstream, cache off",
        ),
        (
            f"Throughput, {proxy_overhead.CLIENTS} clients, vs the upstream directly",
            f"{proxy['llamarada_rps']:.0f} vs {proxy['direct_rps']:.0f} req/s",
            f"{proxy['llamarada_rps'] / proxy['direct_rps']:.2f}",
            "higher is better",
        ),
        (
            "Time to first chunk through `/api/chat` vs direct, paced upstream (50 ms/chunk)",
            f"{proxy['llamarada_ttft_ms']:.1f} vs {proxy['direct_ttft_ms']:.1f} ms",
            f"{proxy['llamarada_ttft_ms'] / proxy['direct_ttft_ms']:.2f}",
            "near 1: nothing waits for more chunks",
        ),
        (
            "Median gap between chunks through `/api/chat` vs direct, same upstream",
            f"{proxy['llamarada_gap_ms']:.1f} vs {proxy['direct_gap_ms']:.1f} ms",
            f"{proxy['llamarada_gap_ms'] / proxy['direct_gap_ms']:.2f}",
            "near 1: chunks are passed on as they come",
        ),
    ]
    if "litellm_p50_ms" in proxy:
        theirs = proxy["litellm_p50_ms"] - proxy["direct_p50_ms"]
        rows += [
            (
                "Added p50 latency: Llamarada vs LiteLLM's proxy, same upstream, same run",
                f"+{added:.2f} ms vs +{theirs:.2f} ms (LiteLLM p99 "
                f"{proxy['litellm_p99_ms']:.2f} ms)",
                f"{added / theirs:.2f}",
                "goal <= 0.5",
            ),
            (
                f"Throughput, {proxy_overhead.CLIENTS} clients: Llamarada vs LiteLLM's proxy",
                f"{proxy['llamarada_rps']:.0f} vs {proxy['litellm_rps']:.0f} req/s",
                f"{proxy['llamarada_rps'] / proxy['litellm_rps']:.2f}",
                "higher is better",
            ),
        ]
    else:
        rows.append(("LiteLLM's proxy", "not installed: `make bench` installs it", "-", "-"))
    return rows


def _rag_rows(ingest: dict[str, Any], search: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    speed = ingest["throughput"]
    rows = [
        (
            "Ingestion: parse + split + embed + store vs embedding alone (USE multilingual v3)",
            f"{speed['pipeline_chunks_per_s']:.1f} vs {speed['embedder_chunks_per_s']:.1f} "
            f"chunks/s ({speed['documents']} documents, {speed['chunks']} chunks)",
            f"{speed['ratio']:.2f}",
            "near 1: the embedder is the cost",
        ),
        (
            "Embedding: multilingual (USE v3, numpy) vs the former MiniLM int8 ONNX, same chunks",
            f"{speed['embedder_chunks_per_s']:.1f} vs {speed['former_chunks_per_s']:.1f} "
            f"chunks/s ({speed['mean_chunk_chars']:.0f} characters a chunk)",
            f"{speed['vs_former']:.2f}",
            "goal >= 20 chunks/s of ~1000 characters on 2 cores",
        ),
    ]
    for name, quality in ingest["quality"].items():
        rows.append(
            (
                f"Retrieval recall@3 / recall@5, {name} (labelled questions in tests/data/rag)",
                f"{quality['recall@3']:.2f} / {quality['recall@5']:.2f}",
                "-",
                "hybrid = dense + BM25 fused by reciprocal rank",
            )
        )
    for row in search["scale"]:
        rows.append(
            (
                f"Hybrid search over {row['chunks']:,} chunks, reranked: query p50 / p99 "
                "(without reranking), first query after an upload, Chroma recall@10",
                f"{row['p50_ms']:.1f} / {row['p99_ms']:.1f} ms ({row['no_rerank_p50_ms']:.1f} ms), "
                f"{row['after_upload_ms']:.0f} ms, recall {row['chroma_recall_at_10']:.4f}",
                f"{row['p50_ms'] / row['no_rerank_p50_ms']:.2f}",
                "goal p50 <= 50 ms at 10k, <= 100 ms at 100k; synthetic vectors, real embedding",
            )
        )
    bm25 = search["bm25"]
    rows.append(
        (
            f"BM25 query at {bm25['chunks']:,} chunks vs rank-bm25",
            f"{bm25['ours_query_ms']:.2f} vs {bm25['rank_bm25_query_ms']:.2f} ms, same top "
            f"score {bm25['same_top_score']:.0%}",
            f"{bm25['query_speedup']:.1f}x faster",
            "same idf and k1",
        )
    )
    return rows


def _cores() -> int:
    import os

    return os.cpu_count() or 1


if __name__ == "__main__":
    sys.exit(main())
