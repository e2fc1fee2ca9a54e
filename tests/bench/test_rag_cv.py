"""Cross-validated tuning: folds stratified, bars calibrated, choices scored on held-out folds."""

from __future__ import annotations

from collections import Counter
from typing import Any

from bench.rag_cv import (
    FOLDS,
    Refusal,
    calibrated_bar,
    cross_validate,
    folds,
    ranking,
    refusal_grid,
)


def record(id_: str, lang: str, kind: str, source: str | None, **features: Any) -> dict[str, Any]:
    """A dumped question with one candidate (features default to nothing found)."""
    candidate = {
        "source": source or "other.txt",
        "evidence_in_text": source is not None,
        "evidence_in_context": source is not None,
        "dense": 0.0,
        "coverage": 0.0,
        "proximity": 0.0,
        "heading_share": 0.0,
        "fused": 0.0,
        **features,
    }
    return {
        "id": id_,
        "lang": lang,
        "kind": kind,
        "source": source,
        "unheld": 0.0,
        "candidates": [candidate],
    }


def test_folds_cut_each_language_and_kind_evenly() -> None:
    records = [record(f"q{i}", "es" if i % 2 else "en", "direct", "a.txt") for i in range(50)]
    fold_of = folds(records)
    assert set(fold_of) == set(range(FOLDS))
    for lang in ("es", "en"):
        counts = Counter(f for f, r in zip(fold_of, records, strict=True) if r["lang"] == lang)
        assert max(counts.values()) - min(counts.values()) <= 1
    assert folds(records) == fold_of  # deterministic


def test_calibrated_bar_refuses_at_most_five_percent() -> None:
    scores = [i / 100 for i in range(1, 101)]
    bar = calibrated_bar(scores)
    assert sum(score < bar for score in scores) == 5


def test_ranking_counts_the_labelled_source_and_evidence() -> None:
    hit = record("q1", "en", "direct", "a.txt", dense=0.9)
    assert ranking([hit], (1.0, 0.0, 0.0, 0.0, 0.0)).recall5 == 1.0
    assert ranking([hit], (1.0, 0.0, 0.0, 0.0, 0.0)).evidence == 1.0


def test_refusal_grid_separates_what_the_evidence_separates_on_held_out_folds() -> None:
    answerable = [
        record(f"a{i}", "es" if i % 2 else "en", "paraphrase", "a.txt", dense=0.6, coverage=0.6)
        for i in range(40)
    ]
    unanswerable = [
        record(f"u{i}", "es" if i % 2 else "en", "unanswerable", None, dense=0.1, coverage=0.1)
        for i in range(10)
    ]
    records = answerable + unanswerable
    held, chosen = cross_validate(
        records,
        refusal_grid(["coverage"], per_language=False),
        lambda rs, rule: [rule.refuses(r) for r in rs],
    )
    assert len(chosen) == FOLDS
    assert all(isinstance(rule, Refusal) for rule in chosen)
    assert all(held[len(answerable) :])  # every unanswerable one refused
    assert not any(held[: len(answerable)])  # no answerable one
