"""Splitting and file names: offsets point into the text, names are never paths."""

from __future__ import annotations

import itertools

import pytest

from app.core.errors import InvalidRequest
from app.rag.ingest import source_name, split_document
from app.rag.loaders import DocType, load_document, load_text


def test_split_document_offsets_point_into_the_files_text() -> None:
    text = "# Guide\n\n" + "Llamas are camelids. " * 80 + "\n\n## Care\n\n" + "Feed hay. " * 60
    loaded = load_text(text, DocType.MD)
    chunks = split_document(loaded.sections, 500, 100)
    assert len(chunks) > 4
    assert [c.index for c in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert len(chunk.text) <= 500
    assert {c.heading for c in chunks} == {"Guide", "Guide > Care"}


def test_split_document_overlaps_neighbours() -> None:
    loaded = load_document(("word " * 1000).encode(), "words.txt", 10_000)
    chunks = split_document(loaded.sections, 1000, 200)
    assert all(b.start < a.end for a, b in itertools.pairwise(chunks))
    assert all(a.end - b.start <= 200 for a, b in itertools.pairwise(chunks))


def test_split_document_keeps_pdf_pages() -> None:
    from tests.rag.files import make_pdf

    loaded = load_document(make_pdf(["one " * 300, "two " * 300]), "two.pdf", 100_000)
    pages = {chunk.page for chunk in split_document(loaded.sections, 400, 50)}
    assert pages == {1, 2}


@pytest.mark.parametrize(
    "name", ["../etc/passwd", "a/b.txt", "..", "C:\\x\\y.txt", "a\x00b.txt", ""]
)
def test_source_name_refuses_paths_and_control_characters(name: str) -> None:
    with pytest.raises(InvalidRequest):
        source_name(name)


def test_source_name_keeps_a_plain_name() -> None:
    assert source_name("Informe año 2024 (final).pdf") == "Informe año 2024 (final).pdf"
