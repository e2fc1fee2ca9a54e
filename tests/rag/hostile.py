"""Hostile and broken uploads, built in memory and small: what a clumsy or hostile client sends."""

from __future__ import annotations

import io
import random
import zipfile

from tests.rag.files import make_docx, make_pdf


def raw_pdf(objects: list[bytes]) -> bytes:
    """A PDF from its numbered objects (1 is the catalog) with a correct xref table."""
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\n" % (len(objects) + 1)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def many_pages_pdf(pages: int) -> bytes:
    """A PDF of `pages` empty pages: a few bytes each, as in a page-count bomb."""
    first = 3
    kids = b" ".join(b"%d 0 R" % (first + i) for i in range(pages))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Count %d /Kids [%s] >>" % (pages, kids),
    ]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 9 9] >>"] * pages
    return raw_pdf(objects)


def deeply_nested_pdf(depth: int) -> bytes:
    """A one-page PDF whose page holds an array nested `depth` levels deep."""
    nested = b"[" * depth + b"]" * depth
    return raw_pdf(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Count 1 /Kids [3 0 R] >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 9 9] /Deep " + nested + b" >>",
        ]
    )


def truncated_pdf() -> bytes:
    """A real PDF cut in the middle, as an interrupted download leaves it."""
    data = make_pdf(["Llamas hum to their young. " * 40] * 3)
    return data[: len(data) // 2]


def replace_member(docx: bytes, member: str, content: bytes) -> bytes:
    """The same archive with one member's content replaced."""
    source = zipfile.ZipFile(io.BytesIO(docx))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            data = content if info.filename == member else source.read(info)
            archive.writestr(info.filename, data)
    return out.getvalue()


def malformed_docx() -> bytes:
    """A real Word document whose document.xml is not well-formed XML."""
    docx = make_docx([(None, "A paragraph.")])
    xml = zipfile.ZipFile(io.BytesIO(docx)).read("word/document.xml")
    return replace_member(docx, "word/document.xml", xml[: len(xml) // 2] + b"<w:p><w:r>&bad;")


def huge_xml_docx(paragraphs: int) -> bytes:
    """A valid Word document with `paragraphs` formatted paragraphs: tens of MB of XML that
    compress about six times, far under any zip-bomb ratio, but costly to parse."""
    docx = make_docx([(None, "seed")])
    xml = zipfile.ZipFile(io.BytesIO(docx)).read("word/document.xml").decode()
    words = random.Random(7).choices([f"w{n:x}" for n in range(5000)], k=8 * 4096)
    lines = [" ".join(words[8 * n : 8 * n + 8]) for n in range(4096)]
    body = "".join(
        f'<w:p><w:r><w:rPr><w:b/><w:i/><w:sz w:val="24"/></w:rPr><w:t>{lines[n % 4096]}'
        "</w:t></w:r></w:p>"
        for n in range(paragraphs)
    )
    at = xml.index("<w:body>") + len("<w:body>")
    return replace_member(docx, "word/document.xml", (xml[:at] + body + xml[at:]).encode())


def binary_junk(size: int) -> bytes:
    """Random bytes, as a misnamed binary file carries."""
    return random.Random(3).randbytes(size)
