"""First-stage replay: a narrower stage rebuilt from a wide dump's recorded ranks."""

from __future__ import annotations

from typing import Any

import pytest

from app.rag.retrieve import RRF_K
from bench.rag_stage import narrowed


def candidate(name: str, dense_rank: int | None, lexical_rank: int | None) -> dict[str, Any]:
    return {"text": name, "dense_rank": dense_rank, "lexical_rank": lexical_rank, "fused": 0.0}


def test_a_narrower_stage_drops_finds_past_its_depth_and_keeps_the_best_fused() -> None:
    wide: dict[str, Any] = {
        "id": "q1",
        "candidates": [
            candidate("both", 0, 0),
            candidate("deep lexical", 1, 40),
            candidate("dense only", 2, None),
            candidate("too deep", 60, 70),
            candidate("lexical only", None, 3),
        ],
    }
    kept = narrowed(wide, depth=10, reranked=3)["candidates"]
    assert [c["text"] for c in kept] == ["both", "deep lexical", "dense only"]
    assert kept[0]["fused"] == pytest.approx(2 / (RRF_K + 1))
    assert kept[1]["fused"] == pytest.approx(1 / (RRF_K + 2))  # rank 40 is past the depth
    everything = narrowed(wide, depth=100, reranked=10)["candidates"]
    assert [c["text"] for c in everything][:2] == ["both", "deep lexical"]
    assert len(everything) == 5
    assert wide["candidates"][0]["fused"] == 0.0  # the dump itself is left as it was
