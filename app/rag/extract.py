"""Extractive answers: the passages' sentences that best match the question, quoted with [n].

No model is asked, so nothing can be invented: the answer is the documents' own words, each
quote marked with the number of its source. Sentences score by the question's words they
share (weighted by how rare each word is among the candidates), ties going to the better
ranked passage.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from app.rag.lexical import terms

QUOTE_CHARS = 400  # a longer sentence is quoted up to here, with an ellipsis
_LEAD = {"en": "According to [{n}]:", "es": "Según [{n}]:"}
_QUOTES = {"en": ("“", "”"), "es": ("«", "»")}
_PARAGRAPH = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+(?=[\"“«¿¡(\[]?[A-ZÁÉÍÓÚÑÜ0-9])")


@dataclass(frozen=True)
class Quote:
    """A sentence of passage `n` and how well it matches the question."""

    n: int
    text: str
    score: float
    order: int  # where it sits among all candidates: passage rank first, then position


def sentences(passage: str) -> list[str]:
    """The passage's sentences, each on one line (wrapped lines joined)."""
    found: list[str] = []
    for paragraph in _PARAGRAPH.split(passage):
        flat = " ".join(paragraph.split())
        found.extend(part for part in _SENTENCE_END.split(flat) if len(part.split()) >= 3)
    return found


def best_quotes(question: str, passages: Sequence[str], limit: int) -> list[Quote]:
    """Up to `limit` sentences, best first; at least the first sentence of the first passage."""
    candidates = [
        (n, sentence)
        for n, passage in enumerate(passages, start=1)
        for sentence in sentences(passage)
    ]
    if not candidates:
        return []
    wanted = set(terms(question))
    words = [set(terms(sentence)) for _, sentence in candidates]
    frequency = Counter(term for sentence_terms in words for term in sentence_terms & wanted)
    weight = {term: math.log(1 + len(candidates) / count) for term, count in frequency.items()}
    quotes = [
        Quote(n, sentence, sum(weight[t] for t in sentence_terms & wanted), order)
        for order, ((n, sentence), sentence_terms) in enumerate(zip(candidates, words, strict=True))
    ]
    ranked = sorted(quotes, key=lambda quote: (-quote.score, quote.order))
    best = ranked[0].score
    if best <= 0:
        return [quotes[0]]
    # Half the best score or better: a weak match quoted next to a strong one only distracts.
    return [quote for quote in ranked if quote.score >= best / 2][:limit]


def extractive_answer(
    question: str, passages: Sequence[str], language: str, limit: int
) -> tuple[str, list[int]]:
    """The answer text (quotes grouped by source, best source first) and the numbers it cites."""
    quotes = best_quotes(question, passages, limit)
    lang = language if language in _LEAD else "en"
    opening, closing = _QUOTES[lang]
    cited: list[int] = []
    by_source: dict[int, list[str]] = {}
    for quote in quotes:
        if quote.n not in by_source:
            cited.append(quote.n)
            by_source[quote.n] = []
        text = quote.text
        if len(text) > QUOTE_CHARS:
            text = text[: QUOTE_CHARS - 1].rstrip() + "…"
        by_source[quote.n].append(f"{opening}{text}{closing}")
    lines = [f"{_LEAD[lang].format(n=n)} {' '.join(by_source[n])}" for n in cited]
    return "\n\n".join(lines), cited
