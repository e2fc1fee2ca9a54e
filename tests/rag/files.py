"""Real pdf and docx files made with the libraries people make them with."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence

from docx import Document
from fpdf import FPDF
from pypdf import PdfReader, PdfWriter


def make_pdf(pages: Sequence[str]) -> bytes:
    """A PDF with one page per text (fpdf2, Helvetica: Latin-1 text)."""
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def encrypt_pdf(data: bytes, user_password: str) -> bytes:
    """The same PDF, encrypted (RC4, which pypdf writes without extra packages)."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_docx(blocks: Sequence[tuple[int | None, str]]) -> bytes:
    """A Word document: (level, text) makes a heading at that level, (None, text) a paragraph."""
    document = Document()
    for level, text in blocks:
        if level is None:
            document.add_paragraph(text)
        else:
            document.add_heading(text, level=level)
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "cell one"
    table.rows[0].cells[1].text = "cell two"
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_zip_bomb(unpacked_bytes: int) -> bytes:
    """A zip shaped like a docx whose document.xml inflates to `unpacked_bytes` of zeros."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"\0" * unpacked_bytes)
    return out.getvalue()
