"""Reranking of fused candidates: meaning, words covered, words close together, headings.

No cross-encoder: a multilingual one costs ~30 ms a candidate on two cores, over the latency
budget for twenty. Instead each candidate gets evidence the first stage only approximates, and
a weighted sum orders them. Ordering compares candidates with each other (similarity is
rescaled over the candidates); `relevance` compares a candidate with a fixed bar (refusals).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from app.rag.language import Language, detect
from app.rag.lexical import ANALYZERS, QUERY_ANALYZERS

WINDOW = 16  # terms: about a sentence, where an answer's words sit together


@dataclass(frozen=True)
class Weights:
    """How much each kind of evidence counts in the order of candidates."""

    # Chosen on the dev questions from a flat optimum (evidence@5 within one question).
    dense: float = 1.5  # similarity, rescaled to 0..1 over the candidates
    coverage: float = 0.5
    proximity: float = 1.5
    heading: float = 0.25
    fused: float = 0.5  # the first stage's reciprocal-rank score, rescaled likewise


@dataclass(frozen=True)
class Bar:
    """How relevance is made from absolute evidence.

    Chosen with the refusal threshold (RagSettings.min_score) on the dev questions: of the
    weightings that refuse at most 5% of answerable questions, the one refusing most of the
    unanswerable ones.
    """

    dense: float = 0.35
    coverage: float = 0.65


WEIGHTS = Weights()
BAR = Bar()


@dataclass(frozen=True)
class Evidence:
    """What one candidate has for the query, each in 0..1 (dense: cosine similarity)."""

    dense: float
    coverage: float
    proximity: float
    heading: float

    def relevance(self, bar: Bar = BAR) -> float:
        """An absolute relevance in 0..1, comparable across queries."""
        return min(max(bar.dense * self.dense + bar.coverage * self.coverage, 0.0), 1.0)


def evidence(
    query: str,
    text: str,
    heading: str,
    dense: float,
    idf: Callable[[str], float],
    language: Language | None = None,
) -> Evidence:
    """The candidate's evidence; the query is read in the language of the chunk."""
    language = language or detect(text)
    wanted = {term: idf(term) for term in QUERY_ANALYZERS[language].terms(query)}
    total = sum(wanted.values())
    if not total:
        return Evidence(max(dense, 0.0), 0.0, 0.0, 0.0)
    analyzer = ANALYZERS[language]
    words = analyzer.terms(text)
    present = {term for term in words if term in wanted}
    heading_terms = set(analyzer.terms(heading)) if heading else set()
    return Evidence(
        dense=max(dense, 0.0),
        coverage=sum(wanted[term] for term in present) / total,
        proximity=_best_window(words, wanted) / total,
        heading=sum(w for term, w in wanted.items() if term in heading_terms) / total,
    )


def order(
    found: Sequence[Evidence], fused: Sequence[float], weights: Weights = WEIGHTS
) -> list[int]:
    """Candidate indexes, best first."""
    if not found:
        return []
    dense = _rescaled([e.dense for e in found])
    first = _rescaled(list(fused))
    scores = [
        weights.dense * dense[i]
        + weights.coverage * e.coverage
        + weights.proximity * e.proximity
        + weights.heading * e.heading
        + weights.fused * first[i]
        for i, e in enumerate(found)
    ]
    return sorted(range(len(found)), key=lambda i: -scores[i])


def _rescaled(values: list[float]) -> list[float]:
    array = np.asarray(values, dtype=np.float64)
    spread = float(array.max() - array.min())
    if spread < 1e-9:
        return [1.0] * len(values)
    rescaled: list[float] = ((array - array.min()) / spread).tolist()
    return rescaled


def _best_window(words: Sequence[str], wanted: dict[str, float]) -> float:
    """The most query weight found within WINDOW consecutive terms (each term counted once)."""
    hits = [(i, term) for i, term in enumerate(words) if term in wanted]
    best = 0.0
    counts: dict[str, int] = {}
    weight = 0.0
    start = 0
    for position, term in hits:
        counts[term] = counts.get(term, 0) + 1
        if counts[term] == 1:
            weight += wanted[term]
        while position - hits[start][0] >= WINDOW:
            old = hits[start][1]
            counts[old] -= 1
            if counts[old] == 0:
                weight -= wanted[old]
            start += 1
        best = max(best, weight)
    return best
