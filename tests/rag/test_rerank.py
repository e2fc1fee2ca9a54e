"""Reranking: words close together, headings and similarity order candidates; relevance is 0..1."""

from __future__ import annotations

import pytest

from app.rag.rerank import Bar, Evidence, evidence, order


def idf(term: str) -> float:
    return 1.0


def test_query_words_close_together_count_more_than_scattered_ones() -> None:
    query = "default size of a tmpfs filesystem"
    together = "The default size of a tmpfs filesystem is half of the RAM."
    filler = "llamas hum softly " * 10
    scattered = f"Default values. {filler} tmpfs. {filler} size"
    close, far = (evidence(query, text, "", 0.5, idf) for text in (together, scattered))
    assert close.proximity == pytest.approx(1.0)
    assert far.coverage > 0.5
    assert far.proximity <= 0.25


def test_a_spanish_chunk_reads_the_query_with_spanish_stems() -> None:
    found = evidence("¿Qué pasada?", "Realiza 3 pasadas por defecto.", "", 0.0, idf)
    assert found.coverage == pytest.approx(1.0)


def test_a_heading_that_names_the_query_lifts_a_candidate() -> None:
    query = "mount options"
    plain = evidence(query, "Options apply when you mount it.", "", 0.4, idf)
    headed = evidence(query, "Options apply when you mount it.", "Mount options", 0.4, idf)
    assert headed.heading == pytest.approx(1.0)
    assert order([plain, headed], [0.5, 0.5]) == [1, 0]


def test_order_rescales_similarity_over_the_candidates() -> None:
    low = Evidence(dense=0.30, coverage=0.0, proximity=0.0, heading=0.0)
    high = Evidence(dense=0.32, coverage=0.0, proximity=0.0, heading=0.0)
    words = Evidence(dense=0.30, coverage=0.3, proximity=0.3, heading=0.0)
    # 0.02 of cosine is the whole spread here, so it outweighs a third of the query's words.
    assert order([low, high, words], [0.1, 0.1, 0.1]) == [1, 2, 0]


def test_relevance_stays_in_0_1_and_rises_with_evidence() -> None:
    bar = Bar(dense=0.35, coverage=0.65)
    none = Evidence(dense=0.0, coverage=0.0, proximity=0.0, heading=0.0)
    full = Evidence(dense=1.0, coverage=1.0, proximity=1.0, heading=1.0)
    some = Evidence(dense=0.5, coverage=0.5, proximity=0.5, heading=0.0)
    assert none.relevance(bar) == 0.0
    assert full.relevance(bar) == 1.0
    assert 0.0 < some.relevance(bar) < 1.0


def test_a_chunk_in_the_other_language_counts_the_words_both_share() -> None:
    query = "Which df option limits the listing to local file systems?"
    spanish = "-l, --local\n    limita el listado a los sistemas de ficheros locales"
    stemmed_only = evidence(query, spanish, "", 0.5, idf, "es")
    across = evidence(query, spanish, "", 0.5, idf, "es", query_language="en")
    assert stemmed_only.coverage < across.coverage
    # "limit(s/a)" and "local(es)" are shared, "listing/listado" and "systems/sistemas" not.
    assert across.coverage == pytest.approx(2 / 6)
    assert across.proximity == pytest.approx(across.coverage)


def test_a_chunk_in_the_query_language_ignores_word_beginnings() -> None:
    query = "Which option limits the listing?"
    text = "The limitless listener has options."  # shares "limit", "liste", "optio" only
    plain = evidence(query, text, "", 0.5, idf, "en")
    same = evidence(query, text, "", 0.5, idf, "en", query_language="en")
    assert same == plain
