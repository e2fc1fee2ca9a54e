"""The text around a retrieved chunk: its section, or a one-chunk section's siblings, bounded.

Chunks stay small so that search finds the exact passage; the reader (a person or the model)
gets the text around it. Chunks record their section (`section` in their metadata), its heading
path and their offsets in the document's text, so the text around a hit is rebuilt from the
chunks the collection's index holds in memory (no store round trip). A section held in a single
chunk (a manual page's option, a one-paragraph subsection) gives the reader nothing the chunk
does not; its context is its sibling sections, those under the same parent heading (the
options next to it), where the answer to a question about it often sits.
Chunks stored before sections were recorded get no context (None): they keep working as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.rag.index import CollectionIndex
from app.rag.markup import HEADING_SEPARATOR
from app.rag.retrieve import Hit
from app.rag.store import Row

SectionKey = tuple[str, int]  # document id, section number


def section_key(metadata: Mapping[str, Any]) -> SectionKey | None:
    """The chunk's document and section, when the chunk records them."""
    section = metadata.get("section")
    document = metadata.get("document_id")
    if isinstance(section, bool) or not isinstance(section, int) or document is None:
        return None
    return str(document), section


def section_contexts(
    index: CollectionIndex, hits: Sequence[Hit], max_chars: int
) -> list[str | None]:
    """For each hit, up to `max_chars` of the text around it (None: sections not recorded)."""
    contexts: list[str | None] = []
    for hit in hits:
        key = section_key(hit.metadata)
        if key is None or max_chars <= 0:
            contexts.append(None)
            continue
        rows = index.document_rows(key[0])
        same = [row for row in rows if row.metadata.get("section") == key[1]]
        parent = _parent(hit.metadata)
        if len(same) == 1 and parent is not None:  # the section is the chunk: take its siblings
            same = [row for row in rows if _parent(row.metadata) == parent]
        contexts.append(around(same, hit.id, max_chars))
    return contexts


def _parent(metadata: Mapping[str, Any]) -> str | None:
    heading = metadata.get("heading")
    if not isinstance(heading, str) or HEADING_SEPARATOR not in heading:
        return None
    return heading.rsplit(HEADING_SEPARATOR, 1)[0]


def around(rows: Sequence[Row], chunk_id: str, max_chars: int) -> str | None:
    """The chunk and as many neighbours (alternately before and after) as fit in `max_chars`."""
    position = next((i for i, row in enumerate(rows) if row.id == chunk_id), None)
    if position is None:
        return None
    low = high = position
    while True:
        grown = False
        for candidate in (low - 1, high + 1):
            if not 0 <= candidate < len(rows):
                continue
            first, last = min(low, candidate), max(high, candidate)
            if _end(rows[last]) - _start(rows[first]) <= max_chars:
                low, high, grown = first, last, True
        if not grown:
            return stitch(rows[low : high + 1])


def stitch(rows: Sequence[Row]) -> str:
    """Consecutive chunks of one text as one text: overlaps once, a gap as a line break."""
    parts: list[str] = []
    end: int | None = None
    for row in rows:
        start = _start(row)
        if end is None:
            parts.append(row.text)
        elif start >= end:
            parts.append("\n" + row.text)  # the splitter dropped the blank between them
        else:
            parts.append(row.text[end - start :])
        end = max(end or 0, _end(row))
    return "".join(parts)


def _start(row: Row) -> int:
    return int(row.metadata.get("start", 0))


def _end(row: Row) -> int:
    return int(row.metadata.get("end", _start(row) + len(row.text)))
