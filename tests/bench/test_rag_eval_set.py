"""The knowledge-base evaluation set: evidence found in its documents, counts and split kept."""

from __future__ import annotations

from collections import Counter
from functools import cache

import pytest

from app.rag.loaders import load_document
from bench.rag_eval_set import (
    CORPUS,
    DATA,
    KINDS,
    LANGS,
    SPLITS,
    Question,
    document_lang,
    load_questions,
    normalise,
)

MAX_CORPUS_BYTES = 8 * 1024 * 1024
MIN_ANSWERABLE_PER_LANG = 65  # about 70 asked
MIN_UNANSWERABLE_PER_LANG = 10
SPLIT_PUBLISHED = 200  # questions q001..q200 were split in halves; later ones are dev only


@cache
def extracted(name: str) -> str:
    """A corpus file's text as the upload route's loader extracts it, whitespace collapsed."""
    loaded = load_document((CORPUS / name).read_bytes(), name, max_chars=5_000_000)
    return normalise("\n".join(section.text for section in loaded.sections))


@pytest.fixture(scope="module")
def questions() -> list[Question]:
    """Every question of both splits."""
    return load_questions()


def test_corpus_is_bilingual_small_and_loadable() -> None:
    files = sorted(CORPUS.iterdir())
    langs = Counter(document_lang(path.name) for path in files)
    assert 40 <= len(files) <= 60
    assert set(langs) == set(LANGS)
    assert abs(langs["es"] - langs["en"]) <= len(files) // 10
    assert sum(path.stat().st_size for path in files) < MAX_CORPUS_BYTES
    assert all(extracted(path.name) for path in files)


def test_sources_md_lists_every_corpus_file() -> None:
    listed = (DATA / "SOURCES.md").read_text(encoding="utf-8")
    missing = [path.name for path in CORPUS.iterdir() if f"`{path.name}`" not in listed]
    assert missing == []


def test_question_ids_unique_and_fields_valid(questions: list[Question]) -> None:
    assert len({q.id for q in questions}) == len(questions)
    assert len({normalise(q.question).lower() for q in questions}) == len(questions)
    for q in questions:
        assert q.split in SPLITS, q.id
        assert q.lang in LANGS, q.id
        assert q.kind in KINDS, q.id


def test_labels_agree_with_kind_and_corpus(questions: list[Question]) -> None:
    for q in questions:
        if q.kind == "unanswerable":
            assert (q.source, q.evidence, q.doc_lang) == (None, None, None), q.id
            continue
        assert q.source is not None, q.id
        assert (CORPUS / q.source).is_file(), q.id
        assert q.doc_lang == document_lang(q.source), q.id
        # cross_lingual: asked in the other language; direct and paraphrase: the same one
        assert (q.doc_lang != q.lang) == (q.kind == "cross_lingual"), q.id


def test_every_evidence_is_in_its_documents_extracted_text(questions: list[Question]) -> None:
    misses = [
        q.id
        for q in questions
        if q.source is not None
        and (not q.evidence or normalise(q.evidence) not in extracted(q.source))
    ]
    assert misses == []
    assert all(len(q.evidence) < 300 for q in questions if q.evidence is not None)


def test_counts_meet_the_minimums(questions: list[Question]) -> None:
    kinds = Counter(q.kind for q in questions)
    per_lang = Counter((q.lang, q.answerable) for q in questions)
    assert len(questions) >= 160
    assert kinds["paraphrase"] >= 0.3 * len(questions)
    assert kinds["cross_lingual"] >= 20
    for lang in LANGS:
        assert per_lang[lang, True] >= MIN_ANSWERABLE_PER_LANG, lang
        assert per_lang[lang, False] >= MIN_UNANSWERABLE_PER_LANG, lang
        assert {q.kind for q in questions if q.lang == lang} == set(KINDS), lang


def test_split_is_disjoint_halved_and_stratified(questions: list[Question]) -> None:
    dev = [q for q in questions if q.split == "dev"]
    test = [q for q in questions if q.split == "test"]
    assert not {q.id for q in dev} & {q.id for q in test}
    assert not {normalise(q.question) for q in dev} & {normalise(q.question) for q in test}
    published = [q for q in questions if int(q.id[1:]) <= SPLIT_PUBLISHED]
    added = [q for q in questions if int(q.id[1:]) > SPLIT_PUBLISHED]
    assert all(q.split == "dev" for q in added)  # the test split never grows under tuning
    assert [q.id for q in questions] == sorted(q.id for q in questions)  # ids continue
    assert abs(sum(q.split == "dev" for q in published) - len(test)) <= 1
    strata = Counter((q.lang, q.kind, q.split) for q in published)
    for lang in LANGS:
        for kind in KINDS:
            assert abs(strata[lang, kind, "dev"] - strata[lang, kind, "test"]) <= 1, (lang, kind)
