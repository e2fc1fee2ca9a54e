"""What a question names that the collection never mentions: rare words no chunk holds.

Retrieval scores alone do not tell an answerable question from a plausible one the documents
do not answer: both find on-topic passages. What such a question often has is a name the
documents never use ("certbot", "PostgreSQL", "timedatectl"). A word counts when no chunk
holds it under either language's analysis and it is rare in everyday Spanish and English
(wordfreq's frequencies), so that a question phrased in other words than the documents, or
in the other language, is not taken for one about something else.
"""

from __future__ import annotations

import re
from functools import lru_cache

from app.rag.lexical import QUERY_ANALYZERS, LexicalIndex

RARE_ZIPF = 2.5  # at most ~3 uses per 10 million words: a name, not an everyday word
_WORD = re.compile(r"\w+")


@lru_cache(maxsize=50_000)
def everyday(word: str) -> bool:
    """Whether a word is common in Spanish or English text."""
    from wordfreq import zipf_frequency  # its word lists load on first use

    return max(zipf_frequency(word, "en"), zipf_frequency(word, "es")) >= RARE_ZIPF


def unheld_words(question: str, index: LexicalIndex) -> tuple[list[str], list[str]]:
    """The question's content words, and those of them that name what no chunk holds."""
    content: list[str] = []
    unheld: list[str] = []
    for word in _WORD.findall(question.casefold()):
        terms = [term for analyzer in QUERY_ANALYZERS.values() for term in analyzer.terms(word)]
        if not terms:  # a function word of either language
            continue
        content.append(word)
        if not any(index.holds(term) for term in terms) and not everyday(word):
            unheld.append(word)
    return content, unheld


def unheld_share(question: str, index: LexicalIndex) -> float:
    """The share of the question's content words that name what the collection never holds."""
    content, unheld = unheld_words(question, index)
    return len(unheld) / len(content) if content else 0.0


def warm() -> None:
    """Load the word lists now rather than in the first question's time."""
    everyday("warm")
