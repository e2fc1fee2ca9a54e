"""Rendered manual pages (`man` output as text) to sections: NAME, SYNOPSIS, ... and each option."""

from __future__ import annotations

import re
from collections import Counter

from app.rag.markup import HEADING_SEPARATOR

# Section names `man` prints at the left margin, in English and Spanish.
_KNOWN = frozenset(
    {
        "NAME", "NOMBRE", "SYNOPSIS", "SINOPSIS", "DESCRIPTION", "DESCRIPCIÓN", "DESCRIPCION",
        "OPTIONS", "OPCIONES", "SEE ALSO", "VÉASE TAMBIÉN", "VEASE TAMBIEN", "VÉASE TAMBIEN",
    }
)  # fmt: skip
_HEADER = re.compile(r"^(\S+\([0-9][^)\s]*\))\s.*\s\1\s*$")
_BESIDE = re.compile(r"(\S+(?: \S+)*?)( {2,})\S")
_TAG_START = re.compile(r"[-+0-9$]|[A-Z_]+\b")  # -a, +x, 16, $VAR, VARIABLE; never "Using"
_TAG_CHARS = 80  # an option entry's tag longer than this is prose, not a tag

ManSection = tuple[str, str, int]  # heading path, text, offset in the page's text


def is_manpage(text: str) -> bool:
    """Whether text looks like `man` output: its header line, or two known section names."""
    head = text[:20_000].splitlines()
    if any(_HEADER.match(line.strip()) for line in head[:5]):
        return True
    return sum(line.rstrip() in _KNOWN for line in head) >= 2


def manpage_sections(text: str) -> list[ManSection]:
    """Split at section names (left margin), subsections and option entries (a tag at the
    text's margin whose body is indented deeper); each piece keeps its exact slice of `text`."""
    lines = text.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    indents = [_indent(line) for line in lines]
    page = _page_name(lines)
    body_indent = _body_indent(indents)
    entry_indent = _body_indent([i if i and i > body_indent else None for i in indents])

    pieces: list[ManSection] = []
    path: list[str] = []
    begin = 0  # line where the piece in progress starts
    heading = page or ""

    def close(end: int) -> None:
        chunk = "".join(lines[begin:end])
        if chunk.strip():
            pieces.append((heading, chunk, starts[begin]))

    entry = False
    for number, line in enumerate(lines):
        indent = indents[number]
        if indent is None or (page and indent == 0 and line.strip().endswith(page)):
            continue  # blank, or the page's header or footer line
        if indent == 0:  # a section name
            close(number)
            path, entry = [line.strip()], False
        elif path and indent < body_indent:  # a subsection name
            close(number)
            path, entry = [path[0], line.strip()], False
        elif path and (tag := _entry_tag(lines, indents, number, body_indent, entry_indent)):
            close(number)
            begin, entry = number, True
            heading = _join(page, *path, tag)
            continue
        elif entry and indent <= body_indent:  # the entry is over: the section's prose again
            close(number)
            entry = False
        else:
            continue
        begin, heading = number, _join(page, *path)
    close(len(lines))
    return _merge_bare_headings(pieces)


def _merge_bare_headings(pieces: list[ManSection]) -> list[ManSection]:
    """A heading with no text of its own (`OPTIONS` right before its first entry) joins the
    piece that follows it when that piece sits under it."""
    merged: list[ManSection] = []
    for heading, text, start in pieces:
        if merged:
            before, before_text, before_start = merged[-1]
            bare = len([line for line in before_text.splitlines() if line.strip()]) == 1
            if bare and heading.startswith(before + HEADING_SEPARATOR):
                merged[-1] = (heading, before_text + text, before_start)
                continue
        merged.append((heading, text, start))
    return merged


def _join(*titles: str | None) -> str:
    return HEADING_SEPARATOR.join(title for title in titles if title)


def _indent(line: str) -> int | None:
    """Columns of leading blank (tabs every 8), or None for a blank line."""
    expanded = line.expandtabs(8)
    stripped = expanded.lstrip()
    return None if not stripped.strip() else len(expanded) - len(stripped)


def _entry_tag(
    lines: list[str], indents: list[int | None], number: int, margin: int, deeper: int
) -> str | None:
    """The tag of an option entry starting here, if one does: a short line at the margin,
    after a blank line or a heading, with deeper text under it (`-a, --all` then its
    description) or beside it at the description's column (`-C     list by columns`)."""
    line = lines[number].expandtabs(8).rstrip()
    before = indents[number - 1] if number > 0 else None
    if indents[number] != margin or (before is not None and before >= margin):
        return None
    beside = _BESIDE.match(line, margin)
    if beside and beside.end(2) == deeper and _TAG_START.match(beside.group(1)):
        return beside.group(1)
    after = next((indent for indent in indents[number + 1 :] if indent is not None), None)
    if after is not None and after > margin and len(line.strip()) <= _TAG_CHARS:
        return line.strip()
    return None


def _body_indent(indents: list[int | None]) -> int:
    """The usual smallest indent: the text's margin under section names (7 columns in `man`'s
    output), or, given only deeper lines, the column of option descriptions (14)."""
    counts = Counter(indent for indent in indents if indent)
    total = sum(counts.values())
    common = [indent for indent, count in counts.items() if count * 10 >= total]
    return min(common, default=7)


def _page_name(lines: list[str]) -> str | None:
    for line in lines[:5]:
        match = _HEADER.match(line.strip())
        if match:
            return match.group(1)
    return None
