"""The section around a retrieved chunk: its neighbours in the same section, stitched, bounded.

Chunks stay small so that search finds the exact passage; the reader (a person or the model)
gets the text around it. Chunks record their section (`section` in their metadata) and their
offsets in the document's text, so the section is rebuilt from the stored chunks themselves.
Chunks stored before sections were recorded get no context (None): they keep working as before.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from app.rag.retrieve import Hit
from app.rag.store import ChromaStore, Row

SectionKey = tuple[str, int]  # document id, section number


def section_key(metadata: Mapping[str, Any]) -> SectionKey | None:
    """The chunk's document and section, when the chunk records them."""
    section = metadata.get("section")
    document = metadata.get("document_id")
    if isinstance(section, bool) or not isinstance(section, int) or document is None:
        return None
    return str(document), section


async def section_contexts(
    store: ChromaStore, collection: str, hits: Sequence[Hit], max_chars: int
) -> list[str | None]:
    """For each hit, up to `max_chars` of its section's text around it (None: not recorded)."""
    keys = {key for hit in hits if (key := section_key(hit.metadata)) is not None}
    if not keys or max_chars <= 0:
        return [None] * len(hits)
    clauses: list[dict[str, Any]] = [
        {"$and": [{"document_id": document}, {"section": section}]}
        for document, section in sorted(keys)
    ]
    where = clauses[0] if len(clauses) == 1 else {"$or": clauses}
    grouped: dict[SectionKey, list[Row]] = defaultdict(list)
    for row in await store.get(collection, where, texts=True):
        key = section_key(row.metadata)
        if key is not None:
            grouped[key].append(row)
    for rows in grouped.values():
        rows.sort(key=lambda row: int(row.metadata.get("start", 0)))
    contexts: list[str | None] = []
    for hit in hits:
        key = section_key(hit.metadata)
        contexts.append(around(grouped.get(key, []), hit.id, max_chars) if key else None)
    return contexts


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
