"""BM25: Spanish accents and case fold away, plurals match, scores rank what matters."""

from __future__ import annotations

import numpy as np
import pytest

from app.rag.lexical import LexicalIndex, fold, terms

TEXTS = [
    "La CANCIÓN del año se escuchó en todas las ciudades de España.",
    "The capital of France is Paris, on the Seine.",
    "Los niños juegan al fútbol en el parque.",
    "Paris hosts many museums; museums open late on Fridays.",
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Canción", "cancion"), ("AÑO", "ano"), ("Ärger", "arger"), ("ﬁn", "fin")],
)
def test_fold_drops_case_and_accents(text: str, expected: str) -> None:
    assert fold(text) == expected


def test_terms_drop_stopwords_and_plurals() -> None:
    assert terms("Las ciudades y los museos of the world") == ["ciudad", "museo", "world"]


@pytest.mark.parametrize(
    ("query", "best"),
    [
        ("cancion del ano", 0),
        ("¿En qué CIUDAD se escuchó la canción?", 0),
        ("niño futbol", 2),
        ("capital of france", 1),
        ("museum", 3),
    ],
)
def test_lexical_search_matches_without_accents_case_or_plural(query: str, best: int) -> None:
    hits = LexicalIndex(TEXTS).search(query, 3)
    assert hits[0].position == best
    assert 0 < hits[0].coverage <= 1


def test_lexical_search_coverage_is_the_share_of_query_weight_found() -> None:
    index = LexicalIndex(TEXTS)
    full = index.search("paris seine", 1)[0]
    partial = index.search("paris tokyo", 1)[0]
    assert full.coverage == pytest.approx(1.0)
    assert 0 < partial.coverage < 0.6


def test_lexical_search_respects_the_allowed_mask_and_no_match() -> None:
    index = LexicalIndex(TEXTS)
    allowed = np.array([False, False, False, True])
    assert [hit.position for hit in index.search("paris", 5, allowed)] == [3]
    assert index.search("zeppelin", 5) == []
    assert LexicalIndex([]).search("paris", 5) == []
