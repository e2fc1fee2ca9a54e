"""What a question names that the collection never mentions: rare words no chunk holds.

Retrieval scores alone do not tell an answerable question from a plausible one the documents
do not answer: both find on-topic passages. What such a question often has is a name the
documents never use ("certbot", "PostgreSQL", "timedatectl"). A word counts when no chunk
holds it under either language's analysis and no everyday word of either language shares
its stem (the ~30,000 commonest words of each, from wordfreq's small lists: "lancé" meets
"lance", "diagnosticarlos" meets "diagnosticar"), so that a question phrased in other words
than the documents, or in the other language, is not taken for one about something else.
"""

from __future__ import annotations

import re
from functools import lru_cache

from app.rag.language import LANGUAGES, Language
from app.rag.lexical import ANALYZERS, QUERY_ANALYZERS, LexicalIndex

_WORD = re.compile(r"\w+")
_TOKEN = re.compile(r"\w(?:[\w.\-]*\w)?")  # a word, or a name with dots or hyphens inside


@lru_cache(maxsize=1)
def _everyday_stems() -> dict[Language, frozenset[str]]:
    """The stems of each language's commonest words (built once, about a second)."""
    from wordfreq import iter_wordlist

    return {
        language: frozenset(
            term
            for word in iter_wordlist(language, wordlist="small")
            for term in ANALYZERS[language].terms(word)
        )
        for language in LANGUAGES
    }


def everyday(word: str) -> bool:
    """Whether a word shares its stem with a common Spanish or English word."""
    stems = _everyday_stems()
    return any(
        term in stems[language]
        for language in LANGUAGES
        for term in ANALYZERS[language].terms(word)
    )


def unheld_words(question: str, index: LexicalIndex) -> tuple[list[str], list[str]]:
    """The question's content words, and those of them that name what no chunk holds.

    A name written in capitals or with a digit ("ACL", "TRIM", "mkfs.ext4", "IPv6") counts
    whole, and as unheld whenever no chunk holds it, even if its letters spell an everyday
    word: "TRIM" is not "trim".
    """
    content: list[str] = []
    unheld: list[str] = []
    for token in _TOKEN.findall(question):
        if _is_name(token):
            parts = [_terms(word) for word in _WORD.findall(token.casefold())]
            parts = [terms for terms in parts if terms]
            if parts:
                content.append(token.casefold())
                if not all(any(index.holds(term) for term in terms) for terms in parts):
                    unheld.append(token.casefold())
            continue
        for word in _WORD.findall(token.casefold()):
            terms = _terms(word)
            if not terms:  # a function word of either language
                continue
            content.append(word)
            if not any(index.holds(term) for term in terms) and not everyday(word):
                unheld.append(word)
    return content, unheld


def _terms(word: str) -> list[str]:
    return [term for analyzer in QUERY_ANALYZERS.values() for term in analyzer.terms(word)]


def _is_name(token: str) -> bool:
    letters = [ch for ch in token if ch.isalpha()]
    return any(ch.isdigit() for ch in token) or (len(letters) >= 2 and token.isupper())


def unheld_share(question: str, index: LexicalIndex) -> float:
    """The share of the question's content words that name what the collection never holds."""
    content, unheld = unheld_words(question, index)
    return len(unheld) / len(content) if content else 0.0


def warm() -> None:
    """Load the word lists now rather than in the first question's time."""
    everyday("warm")
