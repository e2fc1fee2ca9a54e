"""Uploaded bytes to text: the type decided by content, then sections with page or heading path."""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pypdf import PdfReader

from app.core.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from app.rag.manpage import is_manpage, manpage_sections
from app.rag.markup import HEADING_SEPARATOR, html_sections, markdown_sections
from app.rag.troff import is_troff, troff_sections

ZIP_MAX_UNPACKED = 200 * 1024 * 1024  # bytes a docx may unpack to
ZIP_MAX_RATIO = 100  # a larger member packed tighter than this is a bomb, not a document
_MARKDOWN = re.compile(r"^(#{1,6}[ \t]+\S|```|~~~|[-*+][ \t]+\S.*\n[-*+][ \t]+\S)", re.MULTILINE)
_HTML_TAG = re.compile(r"<(html|head|body|div|p|h[1-6]|article|section|table|ul|span)\b", re.I)


class DocType(StrEnum):
    """The document types Llamarada reads."""

    TXT = "txt"
    MD = "md"
    HTML = "html"
    PDF = "pdf"
    DOCX = "docx"


@dataclass(frozen=True)
class Section:
    """A run of text with where it sits: the pdf page or the heading path."""

    text: str
    page: int | None = None
    heading: str | None = None
    start: int | None = None  # where it begins in the file's text, when it is a slice of it


@dataclass(frozen=True)
class LoadedDocument:
    """A file's type and its text, section by section."""

    doc_type: DocType
    sections: list[Section]

    @property
    def chars(self) -> int:
        """Characters of text in every section."""
        return sum(len(section.text) for section in self.sections)


def load_document(
    data: bytes, name: str, max_chars: int, max_pages: int | None = None
) -> LoadedDocument:
    """Detect the type from the bytes and extract the text; 4xx errors name the file.

    Over a limit (pages, characters) is a 413; damaged or malformed is a 422.
    """
    if not data.strip():
        raise InvalidRequest(f"{name!r} is empty", field="files")
    if _is_pdf(data):
        doc_type, sections = DocType.PDF, _pdf_sections(data, name, max_chars, max_pages)
    elif data.startswith(b"PK\x03\x04"):
        doc_type, sections = DocType.DOCX, _docx_sections(data, name)
    else:
        text = decode_text(data, name)
        doc_type = detect_text_type(text)
        sections = _text_sections(text, doc_type)
    loaded = LoadedDocument(doc_type, [s for s in sections if s.text.strip()])
    if not loaded.sections:
        raise InvalidRequest(f"{name!r} holds no text to index", field="files")
    if loaded.chars > max_chars:
        raise _too_much_text(name, loaded.chars, max_chars)
    return loaded


def _too_much_text(name: str, chars: int, max_chars: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"{name!r} holds {'more than ' if chars > max_chars else ''}{chars} characters of text, "
        f"at most {max_chars} allowed"
    )


def load_text(text: str, doc_type: DocType | None) -> LoadedDocument:
    """Sections of text sent as JSON, its type given or detected."""
    doc_type = doc_type or detect_text_type(text)
    if doc_type in (DocType.PDF, DocType.DOCX):
        raise InvalidRequest("text can be txt, md or html", field="documents.type")
    return LoadedDocument(doc_type, [s for s in _text_sections(text, doc_type) if s.text.strip()])


def _is_pdf(data: bytes) -> bool:
    # The PDF spec lets the header sit anywhere in the first 1024 bytes.
    return b"%PDF-" in data[:1024]


def decode_text(data: bytes, name: str) -> str:
    """UTF-8 (or UTF-16 with a BOM, or Windows-1252); binary data is an unsupported type."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        text = data.decode("utf-16", errors="replace")
    elif b"\x00" in data:
        raise UnsupportedMediaType(
            f"{name!r} is not a supported type (txt, md, html, pdf, docx): it looks binary"
        )
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = data.decode("cp1252", errors="replace")
    controls = sum(1 for ch in text[:8192] if ord(ch) < 32 and ch not in "\n\r\t\f")
    if controls > len(text[:8192]) // 20:
        raise UnsupportedMediaType(
            f"{name!r} is not a supported type (txt, md, html, pdf, docx): it looks binary"
        )
    return text


def detect_text_type(text: str) -> DocType:
    """HTML when it starts like a page, Markdown when it has headings or fences, else text."""
    head = text[:4096].lstrip().lower()
    if head.startswith(("<!doctype html", "<html")) or (
        head.startswith("<") and _HTML_TAG.search(head)
    ):
        return DocType.HTML
    if _MARKDOWN.search(text[:200_000]):
        return DocType.MD
    return DocType.TXT


def _text_sections(text: str, doc_type: DocType) -> list[Section]:
    if doc_type is DocType.HTML:
        return [Section(body, heading=heading) for heading, body in html_sections(text)]
    if doc_type is DocType.MD:
        return [Section(body, None, heading, at) for heading, body, at in markdown_sections(text)]
    if is_troff(text):  # a manual page's source: sections of its plain text
        return [Section(body, heading=heading) for heading, body in troff_sections(text)]
    if is_manpage(text):
        return [Section(body, None, heading, at) for heading, body, at in manpage_sections(text)]
    return [Section(text, start=0)]


def _pdf_sections(data: bytes, name: str, max_chars: int, max_pages: int | None) -> list[Section]:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    if b"%%EOF" not in data[-2048:]:
        # pypdf would rebuild a cut file from whatever it finds; an upload cut short is an error.
        raise InvalidRequest(
            f"{name!r} is not a readable PDF: truncated (no end-of-file marker)", field="files"
        )
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise InvalidRequest(
                f"{name!r} is an encrypted PDF; upload it without a password", field="files"
            )
        if max_pages is not None:
            _check_pages(_declared_pages(reader), name, max_pages)  # free: what the file states
            _check_pages(len(reader.pages), name, max_pages)  # walks the page tree
        headings = _outline_headings(reader, len(reader.pages))
        pages: list[str] = []
        chars = 0
        for page in reader.pages:
            pages.append(page.extract_text() or "")
            chars += len(pages[-1])
            if chars > max_chars:  # stop extracting as soon as the answer is known
                raise _too_much_text(name, chars, max_chars)
    except (InvalidRequest, PayloadTooLarge):
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        # pypdf reports damage in many shapes; all of them mean the same to the uploader.
        raise InvalidRequest(f"{name!r} is not a readable PDF: {exc}", field="files") from None
    except RecursionError:
        raise InvalidRequest(f"{name!r} is a PDF nested too deeply", field="files") from None
    if not any(text.strip() for text in pages):
        raise InvalidRequest(
            f"{name!r} has no text layer (a scanned PDF?); OCR is not supported", field="files"
        )
    return [
        Section(text, page=number, heading=headings.get(number))
        for number, text in enumerate(pages, start=1)
    ]


def _check_pages(count: int, name: str, max_pages: int) -> None:
    if count > max_pages:
        raise PayloadTooLarge(f"{name!r} has {count} pages, at most {max_pages} allowed")


def _declared_pages(reader: PdfReader) -> int:
    """The page count the file's page tree states (0 if it states none)."""
    root: Any = reader.trailer["/Root"]
    count = root["/Pages"].get("/Count", 0)
    return count if isinstance(count, int) else 0


def _outline_headings(reader: PdfReader, pages: int) -> dict[int, str]:
    """Page number -> the heading path of the outline (bookmarks) in force on that page."""
    from pypdf.errors import PyPdfError

    starts: dict[int, str] = {}

    def walk(items: list[Any], path: tuple[str, ...]) -> None:
        last: tuple[str, ...] = path
        for item in items:
            if isinstance(item, list):  # the children of the item before
                walk(item, last)
                continue
            title = " ".join(str(getattr(item, "title", "") or "").split())
            number = reader.get_destination_page_number(item)
            last = (*path, title) if title else path
            if number is not None and 0 <= number < pages and last:
                starts.setdefault(number + 1, HEADING_SEPARATOR.join(last))

    try:
        walk(reader.outline, ())
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return {}  # a broken outline costs the headings, not the document
    headings: dict[int, str] = {}
    current = None
    for number in range(1, pages + 1):
        current = starts.get(number, current)
        if current:
            headings[number] = current
    return headings


def _docx_sections(data: bytes, name: str) -> list[Section]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        raise InvalidRequest(f"{name!r} is a damaged zip archive", field="files") from None
    if "word/document.xml" not in {member.filename for member in members}:
        raise UnsupportedMediaType(
            f"{name!r} is a zip archive but not a Word document; "
            "supported types: txt, md, html, pdf, docx"
        )
    # zipfile stops at each member's declared size, so the declared sizes bound the work.
    unpacked = sum(member.file_size for member in members)
    packed_tight = any(
        member.file_size > 1024 * 1024
        and member.file_size > ZIP_MAX_RATIO * max(member.compress_size, 1)
        for member in members
    )
    if unpacked > ZIP_MAX_UNPACKED or packed_tight:
        raise PayloadTooLarge(f"{name!r} unpacks to {unpacked} bytes; refused as a zip bomb")
    from docx import Document
    from docx.table import Table

    try:
        document = Document(io.BytesIO(data))
        sections: list[Section] = []
        path: list[tuple[int, str]] = []
        lines: list[str] = []

        def flush() -> None:
            if lines:
                heading = HEADING_SEPARATOR.join(title for _, title in path) or None
                sections.append(Section("\n".join(lines), heading=heading))
                lines.clear()

        for block in document.iter_inner_content():
            if isinstance(block, Table):
                lines.extend(" | ".join(cell.text for cell in row.cells) for row in block.rows)
                continue
            level = _heading_level(block.style.name if block.style is not None else "")
            if level is not None and block.text.strip():
                flush()
                path[:] = [(lvl, title) for lvl, title in path if lvl < level]
                path.append((level, block.text.strip()))
            lines.append(block.text)
        flush()
    except MemoryError:
        raise
    except (KeyError, ValueError, zipfile.BadZipFile, OSError, SyntaxError) as exc:
        # lxml's XMLSyntaxError is a SyntaxError: malformed XML, or libxml2 out of memory.
        if isinstance(exc, SyntaxError) and "memory" in str(exc).lower():
            raise MemoryError from None  # libxml2 ran out of room: too big, not malformed
        raise InvalidRequest(
            f"{name!r} is not a readable Word document: {exc}", field="files"
        ) from None
    return sections


def _heading_level(style: str | None) -> int | None:
    if not style:
        return None
    if style == "Title":
        return 0
    match = re.fullmatch(r"Heading (\d)", style)
    return int(match.group(1)) if match else None
