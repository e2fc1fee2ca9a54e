"""BM25 over a collection's chunks, each analysed as Spanish or English, updated in place.

A chunk's words are stemmed by the Snowball stemmer of its language (PyStemmer), then folded,
so "canciones" and "Canción" meet; stop words of that language are dropped. A query is analysed
both ways and each chunk is scored with the analysis of the chunk's own language.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import Stemmer

from app.rag.language import LANGUAGES, STOPWORDS, Language, detect, fold

K1 = 1.2
B = 0.75
_WORD = re.compile(r"\w+")
_STEMMERS = {"en": "english", "es": "spanish"}


class Analyzer:
    """Words to index terms for one language, remembering each word's term."""

    def __init__(self, language: Language, stop: frozenset[str]) -> None:
        self.language = language
        self._stemmer = Stemmer.Stemmer(_STEMMERS[language])
        self._stop = stop
        self._terms: dict[str, str] = {}

    def terms(self, text: str) -> list[str]:
        """The indexable words of a text, stemmed and folded, without stop words."""
        out = []
        for word in _WORD.findall(text.casefold()):
            term = self._terms.get(word)
            if term is None:
                folded = fold(word)
                if folded in self._stop or (len(folded) < 2 and not folded.isdigit()):
                    term = ""
                else:
                    term = fold(self._stemmer.stemWord(word))
                if len(self._terms) < 500_000:  # a vocabulary bound against junk text
                    self._terms[word] = term
            if term:
                out.append(term)
        return out


ANALYZERS = {language: Analyzer(language, STOPWORDS[language]) for language in LANGUAGES}
# A query is read both ways, so the function words of either language say nothing in it.
_ANY_STOPWORD = frozenset().union(*STOPWORDS.values())
QUERY_ANALYZERS = {language: Analyzer(language, _ANY_STOPWORD) for language in LANGUAGES}


def terms(text: str, language: Language | None = None) -> list[str]:
    """A text's terms in its language (detected when not given)."""
    return ANALYZERS[language or detect(text)].terms(text)


@dataclass(frozen=True)
class LexicalHit:
    """A chunk's position in the index, its BM25 score and the share of the query it covers."""

    position: int
    bm25: float
    coverage: float


class LexicalIndex:
    """An inverted index with BM25 (Okapi, Lucene's idf) scoring in numpy.

    Chunks are added and removed in place: a removed chunk keeps its position (masked out)
    until the owner rebuilds the index, so positions stay valid.
    """

    def __init__(self, texts: Sequence[str] = ()) -> None:
        self._lengths: list[int] = []
        self._languages: list[int] = []  # index into LANGUAGES
        self._alive: list[bool] = []
        self._postings: dict[str, tuple[list[int], list[int]]] = {}
        self._df: Counter[str] = Counter()
        self._arrays: dict[str, tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]] = {}
        self._stats: tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_], npt.NDArray[np.int8]]
        self._stats_fresh = False
        self.live = 0
        self.add(texts)

    @property
    def size(self) -> int:
        """Positions held, removed ones included."""
        return len(self._lengths)

    def language(self, position: int) -> Language:
        """The language a chunk was analysed in."""
        return LANGUAGES[self._languages[position]]

    @property
    def dead(self) -> int:
        """Removed positions still held."""
        return self.size - self.live

    def add(self, texts: Iterable[str]) -> list[int]:
        """Index chunks at the next positions; returns them."""
        added = []
        touched: set[str] = set()
        for text in texts:
            position = len(self._lengths)
            language = detect(text)
            counts = Counter(ANALYZERS[language].terms(text))
            self._lengths.append(sum(counts.values()))
            self._languages.append(LANGUAGES.index(language))
            self._alive.append(True)
            for term, count in counts.items():
                docs, freqs = self._postings.setdefault(term, ([], []))
                docs.append(position)
                freqs.append(count)
            self._df.update(counts.keys())
            touched.update(counts)
            added.append(position)
        self._forget(touched)
        self.live += len(added)
        return added

    def remove(self, positions: Iterable[int], texts: Iterable[str]) -> None:
        """Mask out chunks (their texts, as added, correct the document frequencies)."""
        touched: set[str] = set()
        for position, text in zip(positions, texts, strict=True):
            if not self._alive[position]:
                continue
            self._alive[position] = False
            self.live -= 1
            unique = set(ANALYZERS[LANGUAGES[self._languages[position]]].terms(text))
            self._df.subtract(unique)
            touched.update(unique)
        self._forget(touched)

    def _forget(self, touched: set[str]) -> None:
        for term in touched:
            self._arrays.pop(term, None)
        self._stats_fresh = False

    def _posting(self, term: str) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
        arrays = self._arrays.get(term)
        if arrays is None:
            docs, freqs = self._postings[term]
            arrays = (np.array(docs, dtype=np.int32), np.array(freqs, dtype=np.float32))
            self._arrays[term] = arrays
        return arrays

    def _statistics(
        self,
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_], npt.NDArray[np.int8]]:
        """Length norms, the live mask and the languages as arrays, remade after a change."""
        if not self._stats_fresh:
            lengths = np.array(self._lengths, dtype=np.float32)
            alive = np.array(self._alive, dtype=bool)
            average = float(lengths[alive].mean()) if self.live else 0.0
            norm = K1 * (1 - B + B * lengths / max(average, 1e-9))
            self._stats = (norm, alive, np.array(self._languages, dtype=np.int8))
            self._stats_fresh = True
        return self._stats

    def holds(self, term: str) -> bool:
        """Whether a live chunk holds the term."""
        return self._df.get(term, 0) > 0

    def idf(self, term: str) -> float:
        """Lucene's idf: positive for every term, highest for one no chunk holds."""
        found = self._df.get(term, 0)
        return math.log(1 + (self.live - found + 0.5) / (found + 0.5))

    def search(
        self, query: str, n: int, allowed: npt.NDArray[np.bool_] | None = None
    ) -> list[LexicalHit]:
        """The `n` best chunks holding at least one query term, best first."""
        if not self.live:
            return []
        norm, alive, languages = self._statistics()
        scores = np.zeros(self.size, dtype=np.float32)
        covered = np.zeros(self.size, dtype=np.float32)
        totals = np.zeros(len(LANGUAGES), dtype=np.float32)
        for code, language in enumerate(LANGUAGES):
            for term in set(QUERY_ANALYZERS[language].terms(query)):
                idf = self.idf(term)
                totals[code] += idf
                if self._df.get(term, 0) <= 0:
                    continue
                docs, freqs = self._posting(term)
                mine = languages[docs] == code  # chunks read in this language only
                docs, freqs = docs[mine], freqs[mine]
                scores[docs] += idf * freqs * (K1 + 1) / (freqs + norm[docs])
                covered[docs] += idf
        keep = alive if allowed is None else alive & allowed
        scores[~keep] = 0
        candidates = np.flatnonzero(scores > 0)
        if len(candidates) > n:
            candidates = candidates[np.argpartition(-scores[candidates], n - 1)[:n]]
        ranked = candidates[np.argsort(-scores[candidates], kind="stable")]
        return [
            LexicalHit(
                int(i), float(scores[i]), float(covered[i] / max(totals[languages[i]], 1e-9))
            )
            for i in ranked
        ]
