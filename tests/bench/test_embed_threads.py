"""The embedder-threads benchmark measures one embedder end to end (a few queries, no figures)."""

from __future__ import annotations

import pytest

from bench import embed_threads


def test_the_embedder_threads_benchmark_measures_queries_and_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(embed_threads, "QUERIES", 5)
    monkeypatch.setattr(embed_threads, "BATCHES", 1)
    measured = embed_threads._measure(1)
    assert 0 < measured["query_p50_ms"] <= measured["query_p99_ms"]
    assert measured["query_cpu_p50_ms"] > 0
    assert measured["batch_chunks_per_s"] > 0
    result = {
        f"{load}_{threads}_threads": measured for load in ("idle", "busy") for threads in (1, 2)
    }
    rows = embed_threads.rows(result)
    assert [row[2] for row in rows] == ["1.00", "1.00"]
    assert "every core free" in rows[0][0]
    assert "every core busy" in rows[1][0]
