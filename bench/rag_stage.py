"""How wide the first stage should be, cross-validated over the dev questions' dumped features.

Run: `python -m bench.rag_features WIDE.json --depth 300 --reranked 600`, then
`python -m bench.rag_stage WIDE.json`.

The wide dump keeps each candidate's rank in the vector search and in BM25, so a narrower first
stage (`depth` finds from each side, the `reranked` best of them by reciprocal-rank fusion) is
replayed exactly as `retrieve.candidates` would build it. Each stage is scored with the shipped
reranking weights and refusal rule on all of dev (no choice made), with weights chosen by grid
search on four folds and scored on the fifth, and with the stage itself chosen that way too.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.core.config import RagSettings
from app.rag.rerank import BAR, WEIGHTS
from app.rag.retrieve import CANDIDATES, RERANKED, RRF_K, UNHELD_PENALTY
from bench.rag_cv import (
    Ranked,
    Record,
    Refusal,
    _mean_ranked,
    _ranked_each,
    choose_weights,
    cross_validate,
    ranking,
)

STAGES = (
    (CANDIDATES, RERANKED),
    (50, 20),
    (50, 40),
    (50, 50),
    (100, 30),
    (100, 50),
    (100, 80),
    (200, 50),
    (200, 100),
)


def narrowed(record: Record, depth: int, reranked: int) -> Record:
    """The record as a first stage of `depth` finds a side and `reranked` candidates gives it."""
    kept = []
    for candidate in record["candidates"]:
        ranks = (candidate["dense_rank"], candidate["lexical_rank"])
        fused = sum(1.0 / (RRF_K + r + 1) for r in ranks if r is not None and r < depth)
        if fused > 0:
            kept.append((fused, candidate))
    kept.sort(key=lambda pair: -pair[0])
    return {**record, "candidates": [{**c, "fused": f} for f, c in kept[:reranked]]}


def _shipped() -> tuple[float, ...]:
    w = WEIGHTS
    return (w.dense, w.coverage, w.proximity, w.heading, w.fused)


def report(records: Sequence[Record]) -> list[str]:
    """One row a stage: shipped weights on all of dev, grid weights cross-validated, refusals."""
    answerable = [r for r in records if r["source"]]
    unanswerable = [r for r in records if not r["source"]]
    rule = Refusal("coverage", BAR.dense, UNHELD_PENALTY, {"all": RagSettings().min_score})
    lines = [
        "| depth / reranked | shipped R@5 es / en / all | shipped evidence@5 es / en / all | "
        "shipped MRR@5 | grid (CV) R@5 / evidence@5 / MRR@5 | refused: unanswerable / answerable |",
        "| --- | --- | --- | ---: | --- | --- |",
    ]
    staged = {stage: [narrowed(r, *stage) for r in answerable] for stage in STAGES}
    for stage, mine in staged.items():
        shipped = _ranked_each(mine, _shipped())
        by = {
            lang: _mean_ranked(
                x for x, r in zip(shipped, mine, strict=True) if lang in (r["lang"], "all")
            )
            for lang in ("es", "en", "all")
        }
        held, _ = cross_validate(mine, choose_weights, _ranked_each)
        cv = _mean_ranked(held)
        refused_u = sum(rule.refuses(narrowed(r, *stage)) for r in unanswerable)
        refused_a = sum(rule.refuses(r) for r in mine)
        lines.append(
            f"| {stage[0]} / {stage[1]} | "
            + " / ".join(f"{by[g].recall5:.2f}" for g in by)
            + " | "
            + " / ".join(f"{by[g].evidence:.2f}" for g in by)
            + f" | {by['all'].mrr:.2f} | {cv.recall5:.2f} / {cv.evidence:.2f} / {cv.mrr:.2f} | "
            f"{refused_u}/{len(unanswerable)} / {refused_a}/{len(mine)} |"
        )
    held, chosen = cross_validate(answerable, _choose_stage, _score_stage)
    cv = _mean_ranked(held)
    lines += [
        "",
        f"stage and weights chosen together on four folds, scored on the fifth: R@5 "
        f"{cv.recall5:.2f}, evidence@5 {cv.evidence:.2f}, MRR@5 {cv.mrr:.2f}",
        "chosen per fold: " + "; ".join(f"{s} {w}" for s, w in chosen),
    ]
    return lines


def _choose_stage(records: Sequence[Record]) -> tuple[tuple[int, int], tuple[float, ...]]:
    best: tuple[float, tuple[tuple[int, int], tuple[float, ...]]] | None = None
    for stage in STAGES:  # the shipped stage first: ties keep it
        mine = [narrowed(r, *stage) for r in records]
        weights = choose_weights(mine)
        objective = ranking(mine, weights).objective
        if best is None or objective > best[0]:
            best = (objective, (stage, weights))
    assert best is not None
    return best[1]


def _score_stage(records: Sequence[Record], setting: Any) -> list[Ranked]:
    stage, weights = setting
    return _ranked_each([narrowed(r, *stage) for r in records], weights)


def main(argv: list[str] | None = None) -> int:
    """Print the stages' figures."""
    parser = argparse.ArgumentParser(prog="python -m bench.rag_stage", description=__doc__)
    parser.add_argument("features", type=Path, help="a wide dump of bench.rag_features")
    args = parser.parse_args(argv)
    print("\n".join(report(json.loads(args.features.read_text()))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
