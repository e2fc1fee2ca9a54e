"""Loaders: the type comes from the bytes, pages and headings come out right, bad files are 4xx."""

from __future__ import annotations

import pytest

from app.core.errors import InvalidRequest, LlamaradaError, PayloadTooLarge, UnsupportedMediaType
from app.rag.loaders import DocType, load_document
from app.rag.markup import html_sections, markdown_sections
from tests.rag.files import encrypt_pdf, make_docx, make_pdf, make_zip_bomb

LIMIT = 1_000_000
HTML = b"""<!DOCTYPE html><html><head><title>Guide</title><style>p {color: red}</style>
<script>var secret = "never indexed";</script></head><body>
<h1>Install</h1><p>Run the installer &amp; wait.</p><h2>Linux</h2><p>Use apt.</p>
<h1>Usage</h1><p>Start it.</p><noscript>enable JS</noscript></body></html>"""
MARKDOWN = (
    b"# Guide\n\nIntro.\n\n## Setup\n\nSteps.\n\n```\n# not a heading\n```\n\n## Use\n\nRun.\n"
)


@pytest.mark.parametrize(
    ("data", "misleading_name", "expected"),
    [
        (make_pdf(["hello pdf"]), "notes.txt", DocType.PDF),
        (make_docx([(None, "hello docx")]), "report.pdf", DocType.DOCX),
        (HTML, "page.md", DocType.HTML),
        (MARKDOWN, "readme.txt", DocType.MD),
        (b"Just some plain words.\nAnd more.", "data.html", DocType.TXT),
    ],
)
def test_load_document_type_comes_from_content(
    data: bytes, misleading_name: str, expected: DocType
) -> None:
    assert load_document(data, misleading_name, LIMIT).doc_type is expected


def test_load_document_pdf_sections_carry_their_page() -> None:
    data = make_pdf(["Llamas live in the Andes.", "Alpacas give fine wool.", "Canción y año."])
    loaded = load_document(data, "animals.pdf", LIMIT)
    assert [(s.page, s.text.strip()) for s in loaded.sections] == [
        (1, "Llamas live in the Andes."),
        (2, "Alpacas give fine wool."),
        (3, "Canción y año."),
    ]


def test_load_document_docx_sections_carry_their_heading_path() -> None:
    data = make_docx(
        [(1, "Manual"), (None, "Welcome."), (2, "Install"), (None, "Run setup."), (1, "FAQ")]
    )
    loaded = load_document(data, "manual.docx", LIMIT)
    assert [(s.heading, s.text.splitlines()[-1]) for s in loaded.sections] == [
        ("Manual", "Welcome."),
        ("Manual > Install", "Run setup."),
        ("FAQ", "cell one | cell two"),
    ]


def test_html_sections_drop_script_and_style_and_keep_heading_path() -> None:
    sections = html_sections(HTML.decode())
    text = "\n".join(body for _, body in sections)
    assert "never indexed" not in text
    assert "color: red" not in text
    assert "enable JS" not in text
    assert [heading for heading, _ in sections] == [None, "Install", "Install > Linux", "Usage"]
    assert "Run the installer & wait." in sections[1][1]


def test_markdown_sections_ignore_headings_in_code_and_keep_offsets() -> None:
    text = MARKDOWN.decode()
    sections = markdown_sections(text)
    assert [heading for heading, _, _ in sections] == ["Guide", "Guide > Setup", "Guide > Use"]
    for _, body, start in sections:
        assert text[start : start + len(body)] == body
    assert "# not a heading" in sections[1][1]


def test_load_document_reads_windows_1252_text() -> None:
    loaded = load_document("Año de la canción".encode("cp1252"), "viejo.txt", LIMIT)
    assert loaded.sections[0].text == "Año de la canción"


@pytest.mark.parametrize(
    ("data", "error", "needle"),
    [
        (b"", InvalidRequest, "is empty"),
        (b"   \n\t ", InvalidRequest, "is empty"),
        (b"%PDF-1.7\n1 0 obj << /Type /Catalog >> broken", InvalidRequest, "not a readable PDF"),
        (encrypt_pdf(make_pdf(["secret"]), "pw"), InvalidRequest, "encrypted PDF"),
        (make_pdf([""]), InvalidRequest, "no text layer"),
        (make_zip_bomb(20_000_000), PayloadTooLarge, "zip bomb"),
        (b"PK\x03\x04 not really a zip", InvalidRequest, "damaged zip"),
        (
            b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00",
            UnsupportedMediaType,
            "not a supported type",
        ),
        (bytes(range(1, 32)) * 40, UnsupportedMediaType, "looks binary"),
    ],
)
def test_load_document_rejects_bad_files_clearly(
    data: bytes, error: type[LlamaradaError], needle: str
) -> None:
    with pytest.raises(error) as caught:
        load_document(data, "upload.bin", LIMIT)
    assert needle in caught.value.message
    assert "upload.bin" in caught.value.message
    assert 400 <= caught.value.status_code < 500


def test_load_document_rejects_a_zip_that_is_not_a_word_document() -> None:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("photo.txt", "hi")
    with pytest.raises(UnsupportedMediaType, match="not a Word document"):
        load_document(out.getvalue(), "archive.docx", LIMIT)


def test_load_document_enforces_the_text_limit() -> None:
    with pytest.raises(PayloadTooLarge, match="at most 100 allowed"):
        load_document(b"word " * 100, "long.txt", 100)
