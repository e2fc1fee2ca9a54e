"""Reranking of fused candidates: meaning, words covered, words close together, headings.

No cross-encoder: a multilingual one costs ~30 ms a candidate on two cores, over the latency
budget for twenty. Instead each candidate gets evidence the first stage only approximates, and
a weighted sum orders them. Ordering compares candidates with each other (similarity is
rescaled over the candidates); `relevance` compares a candidate with a fixed bar (refusals).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from app.rag.language import STOPWORDS, Language, detect, fold
from app.rag.lexical import ANALYZERS, QUERY_ANALYZERS

WINDOW = 16  # terms: about a sentence, where an answer's words sit together
# Across languages a word is its first letters: "local"/"locales", "limits"/"limita", and the
# names both languages share ("logrotate", "speakup", "--local"). Chosen on the dev questions.
COGNATE_LETTERS = 5
_WORD = re.compile(r"\w+")
_ANY_STOPWORD = frozenset().union(*STOPWORDS.values())
_COGNATES: dict[str, str] = {}  # word -> its cognate key, remembered across calls


@dataclass(frozen=True)
class Weights:
    """How much each kind of evidence counts in the order of candidates."""

    # Chosen on the dev questions, the middle of a flat optimum of recall@5 and evidence@5
    # (dense : proximity about 1 : 2; the heading weight and coverage barely move them, and
    # the first stage's rank only hurts once the candidates are chosen).
    dense: float = 1.0  # similarity, rescaled to 0..1 over the candidates
    coverage: float = 0.5
    proximity: float = 2.0
    heading: float = 1.0
    fused: float = 0.0  # the first stage's reciprocal-rank score, rescaled likewise


@dataclass(frozen=True)
class Bar:
    """How relevance is made from absolute evidence.

    Chosen with the refusal threshold (RagSettings.min_score) and the unheld-word penalty
    (retrieve.UNHELD_PENALTY) on the dev questions by `python -m bench.rag_cv`: of a grid of
    weightings, each with the bar refusing at most 5% of the answerable questions, the one
    refusing most unanswerable ones; the same choice made on four fifths of the questions and
    scored on the rest refuses 13 of 22 unanswerable and 6 of 97 answerable questions (the bar
    sits mid-way between the last unanswerable question refused and the next answerable one).
    """

    dense: float = 0.6
    coverage: float = 0.4


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
    query_language: Language | None = None,
) -> Evidence:
    """The candidate's evidence; the query is read in the language of the chunk.

    A chunk in another language than the query also gets its evidence from shared word
    beginnings (the better of the two counts): stems of one language never meet the other's.
    """
    language = language or detect(text)
    found = _stemmed_evidence(query, text, heading, dense, idf, language)
    if query_language is None or query_language == language:
        return found
    cognate = _cognate_evidence(query, text, heading, dense)
    return Evidence(
        dense=found.dense,
        coverage=max(found.coverage, cognate.coverage),
        proximity=max(found.proximity, cognate.proximity),
        heading=max(found.heading, cognate.heading),
    )


def _stemmed_evidence(
    query: str,
    text: str,
    heading: str,
    dense: float,
    idf: Callable[[str], float],
    language: Language,
) -> Evidence:
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


def _cognates(text: str) -> list[str]:
    """Folded words of either language cut to their first letters, function words left out."""
    out = []
    for word in _WORD.findall(text.casefold()):
        cognate = _COGNATES.get(word)
        if cognate is None:
            folded = fold(word)
            cognate = folded[:COGNATE_LETTERS] if len(folded) > 2 else ""
            cognate = "" if folded in _ANY_STOPWORD else cognate
            if len(_COGNATES) < 500_000:  # a vocabulary bound against junk text
                _COGNATES[word] = cognate
        if cognate:
            out.append(cognate)
    return out


def _cognate_evidence(query: str, text: str, heading: str, dense: float) -> Evidence:
    """Evidence from word beginnings, each query word weighing the same."""
    wanted = dict.fromkeys(_cognates(query), 1.0)
    if not wanted:
        return Evidence(max(dense, 0.0), 0.0, 0.0, 0.0)
    words = _cognates(text)
    heading_terms = set(_cognates(heading)) if heading else set()
    total = len(wanted)
    return Evidence(
        dense=max(dense, 0.0),
        coverage=len(wanted.keys() & set(words)) / total,
        proximity=_best_window(words, wanted) / total,
        heading=len(wanted.keys() & heading_terms) / total,
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
