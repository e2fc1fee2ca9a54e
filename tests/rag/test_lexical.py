"""BM25: stemmed per language, accents and case fold away, updated in place."""

from __future__ import annotations

import numpy as np
import pytest

from app.rag.language import fold
from app.rag.lexical import LexicalIndex, terms

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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Las ciudades y los museos del mundo", ["ciudad", "muse", "mund"]),
        ("The museums of the world are resolving files", ["museum", "world", "resolv", "file"]),
        ("¿Cuántas canciones?", ["cuant", "cancion"]),
    ],
)
def test_terms_are_stemmed_in_the_text_language_without_its_stopwords(
    text: str, expected: list[str]
) -> None:
    assert terms(text) == expected


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


def test_a_query_in_one_language_scores_chunks_with_their_own_analysis() -> None:
    index = LexicalIndex(["El sistema de ficheros se monta al arrancar.", "Mounting filesystems."])
    # "ficheros" only means something to the Spanish chunk; "mounting" to the English one.
    assert [hit.position for hit in index.search("ficheros", 5)] == [0]
    assert [hit.position for hit in index.search("how is it mounted", 5)] == [1]


def test_added_and_removed_chunks_update_scores_without_a_rebuild() -> None:
    index = LexicalIndex(TEXTS)
    assert index.search("zeppelin", 5) == []
    [position] = index.add(["The zeppelin floated over Paris."])
    assert position == len(TEXTS)
    assert index.search("zeppelin", 5)[0].position == position
    [paris] = terms("Paris", "en")
    before = index.idf(paris)
    index.remove([1], [TEXTS[1]])
    assert sorted(hit.position for hit in index.search("paris", 5)) == [3, position]
    assert index.idf(paris) > before  # a smaller share of the chunks holds it
    assert (index.live, index.dead) == (len(TEXTS), 1)


def test_an_index_built_in_steps_scores_as_one_built_at_once() -> None:
    stepwise = LexicalIndex(TEXTS[:2])
    stepwise.add(TEXTS[2:])
    whole = LexicalIndex(TEXTS)
    for query in ("paris museums", "canción ciudad", "niños"):
        assert [(h.position, round(h.bm25, 5)) for h in stepwise.search(query, 4)] == [
            (h.position, round(h.bm25, 5)) for h in whole.search(query, 4)
        ]
