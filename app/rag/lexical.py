"""BM25 over a collection's chunks, folding case and accents so "Título" matches "titulo"."""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

K1 = 1.2
B = 0.75
STEM_CHARS = 7
_WORD = re.compile(r"\w+")
# Words too common in English or Spanish questions and passages to say what a chunk is about.
_STOPWORDS = """
    a about al algo algun alguna algunas alguno algunos all also am an and ante antes any are as
    at be been but by cada como con contra cual cuales cuando cuanto de del desde did do does
    donde dos durante el ella ellas ellos en entre era eres es esa esas ese eso esos esta estan
    estas este esto estos for from fue fueron ha habia han has hasta have hay he her his how i
    if in into is it its la las le les lo los mas me mi mis mucho muy my nada ni no nos nosotros
    o of on or otra otro our para pero poco por porque puede que quien quienes se sea ser
    si sido sin sobre son su sus tambien te tiene tienen that the their them then there these
    they this those to tu tus un una unas uno unos usted was we were what when where which who
    why will with y ya yo you your
"""
STOPWORDS = frozenset(_STOPWORDS.split())


def fold(text: str) -> str:
    """Lower case without accents: "Canción" -> "cancion" (ñ becomes n too)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def stem(word: str) -> str:
    """Drop a plural ending, then keep 7 letters: "ciudades" -> "ciudad", "confundió" ~ "confunde".

    Truncation is a crude stemmer, but it works well for Spanish verbs and English suffixes,
    and needs no language detection.
    """
    if len(word) > 4 and word.endswith("es") and word[-3] in "dlnrsxz":
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    return word[:STEM_CHARS]


def terms(text: str) -> list[str]:
    """The indexable words of a text, folded and stemmed, without stopwords."""
    return [
        stem(word)
        for word in _WORD.findall(fold(text))
        if word not in STOPWORDS and (len(word) > 1 or word.isdigit())
    ]


@dataclass(frozen=True)
class LexicalHit:
    """A chunk's position in the index, its BM25 score and the share of the query it covers."""

    position: int
    bm25: float
    coverage: float


class LexicalIndex:
    """An inverted index with BM25 (Okapi, Lucene's idf) scoring in numpy."""

    def __init__(self, texts: Sequence[str]) -> None:
        self.size = len(texts)
        lengths = np.zeros(self.size, dtype=np.float32)
        postings: dict[str, tuple[list[int], list[int]]] = {}
        for position, text in enumerate(texts):
            counts = Counter(terms(text))
            lengths[position] = sum(counts.values())
            for term, count in counts.items():
                docs, freqs = postings.setdefault(term, ([], []))
                docs.append(position)
                freqs.append(count)
        average = float(lengths.mean()) if self.size else 0.0
        self._norm = K1 * (1 - B + B * lengths / max(average, 1e-9))
        self._postings = {
            term: (np.array(docs, dtype=np.int32), np.array(freqs, dtype=np.float32))
            for term, (docs, freqs) in postings.items()
        }

    def idf(self, term: str) -> float:
        """Lucene's idf: positive for every term, highest for one no chunk holds."""
        found = len(self._postings[term][0]) if term in self._postings else 0
        return math.log(1 + (self.size - found + 0.5) / (found + 0.5))

    def search(
        self, query: str, n: int, allowed: npt.NDArray[np.bool_] | None = None
    ) -> list[LexicalHit]:
        """The `n` best chunks holding at least one query term, best first."""
        wanted = set(terms(query))
        if not wanted or not self.size:
            return []
        scores = np.zeros(self.size, dtype=np.float32)
        covered = np.zeros(self.size, dtype=np.float64)
        total_idf = 0.0
        for term in wanted:
            idf = self.idf(term)
            total_idf += idf
            if term not in self._postings:
                continue
            docs, freqs = self._postings[term]
            scores[docs] += idf * freqs * (K1 + 1) / (freqs + self._norm[docs])
            covered[docs] += idf
        if allowed is not None:
            scores[~allowed] = 0
        candidates = np.flatnonzero(scores > 0)
        if len(candidates) > n:
            candidates = candidates[np.argpartition(-scores[candidates], n - 1)[:n]]
        ranked = candidates[np.argsort(-scores[candidates], kind="stable")]
        return [LexicalHit(int(i), float(scores[i]), float(covered[i]) / total_idf) for i in ranked]
