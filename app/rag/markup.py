"""Markdown and HTML to sections of text, each with its heading path ("Guide > Install")."""

from __future__ import annotations

import re
from html.parser import HTMLParser

HEADING_SEPARATOR = " > "  # between the titles of a heading path, in every loader's sections
_ATX = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_FENCE = re.compile(r"^(```|~~~)")
_SKIPPED = frozenset({"script", "style", "noscript", "template", "svg", "head"})
_BLOCKS = frozenset(
    {
        "p", "div", "br", "li", "ul", "ol", "tr", "table", "section", "article", "header",
        "footer", "nav", "aside", "blockquote", "pre", "hr", "dd", "dt", "figcaption", "main",
    }
)  # fmt: skip
_HEADINGS = {f"h{level}": level for level in range(1, 7)}

Sections = list[tuple[str | None, str]]


def markdown_sections(text: str) -> list[tuple[str | None, str, int]]:
    """Split at ATX headings outside code fences: (heading path, text, offset in `text`).

    Each section keeps its heading lines; a heading with no text of its own before the next
    one stays with the section that follows it.
    """
    sections: list[tuple[str | None, str, int]] = []
    path: list[tuple[int, str]] = []
    lines: list[str] = []
    start = position = 0
    has_body = fenced = False

    def flush() -> None:
        body = "".join(lines)
        if body.strip():
            sections.append(
                (HEADING_SEPARATOR.join(title for _, title in path) or None, body, start)
            )

    for line in text.splitlines(keepends=True):
        if _FENCE.match(line):
            fenced = not fenced
        match = None if fenced else _ATX.match(line.rstrip("\r\n"))
        if match:
            if has_body:
                flush()
                lines.clear()
                start, has_body = position, False
            level = len(match.group(1))
            path[:] = [(lvl, title) for lvl, title in path if lvl < level]
            path.append((level, match.group(2).strip()))
        elif line.strip():
            has_body = True
        lines.append(line)
        position += len(line)
    flush()
    return sections


def html_sections(html: str) -> Sections:
    """Visible text of a page (no script, style or head) split at its h1-h6 headings."""
    parser = _SectionParser()
    parser.feed(html)
    parser.close()
    parser.flush()
    return parser.sections


class _SectionParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: Sections = []
        self._path: list[tuple[int, str]] = []
        self._parts: list[str] = []
        self._skipping: list[str] = []
        self._heading: tuple[int, list[str]] | None = None
        self._title: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title" and not self._skipping[1:]:
            self._title = []
        if tag in _SKIPPED:
            self._skipping.append(tag)
        elif tag in _HEADINGS and not self._skipping:
            self.flush()
            self._heading = (_HEADINGS[tag], [])
        elif tag in _BLOCKS:
            self._parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._title is not None:
            title = " ".join("".join(self._title).split())
            if title:
                self._parts.append(title + "\n")
            self._title = None
        if self._skipping and tag == self._skipping[-1]:
            self._skipping.pop()
        elif tag in _HEADINGS and self._heading is not None:
            level, words = self._heading
            title = " ".join("".join(words).split())
            self._heading = None
            if title:
                self._path[:] = [(lvl, text) for lvl, text in self._path if lvl < level]
                self._path.append((level, title))
                self._parts.append(title + "\n")
        elif tag in _BLOCKS:
            self._parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._title is not None:
            self._title.append(data)
        elif self._skipping:
            return
        elif self._heading is not None:
            self._heading[1].append(data)
        else:
            self._parts.append(data)

    def flush(self) -> None:
        """Close the section in progress."""
        raw = "".join(self._parts)
        self._parts.clear()
        lines = [" ".join(line.split()) for line in raw.splitlines()]
        text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
        if text:
            heading = HEADING_SEPARATOR.join(title for _, title in self._path) or None
            self.sections.append((heading, text))
