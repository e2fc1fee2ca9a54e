"""A collection's chunks in memory with their BM25 index, kept current with each change."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from app.rag.lexical import LexicalIndex
from app.rag.store import ChromaStore, Row

COMPACT_SHARE = 0.25  # rebuild an index once this share of its positions are removed chunks


class CollectionIndex:
    """A collection's chunks at one revision, with their BM25 index, updated in place."""

    def __init__(self, revision: str, rows: list[Row]) -> None:
        self.revision = revision
        self.rows: list[Row | None] = list(rows)
        self.positions = {row.id: position for position, row in enumerate(rows)}
        self._sources = [str(row.metadata.get("source", "")) for row in rows]
        self._source_array: npt.NDArray[np.object_] | None = None
        self._documents: dict[str, list[int]] | None = None  # positions in text order
        self.lexical = LexicalIndex([row.text for row in rows])

    @property
    def live_rows(self) -> list[Row]:
        """The chunks held now."""
        return [row for row in self.rows if row is not None]

    def row(self, position: int) -> Row:
        """The chunk at a position (a live one: searches skip removed positions)."""
        found = self.rows[position]
        assert found is not None
        return found

    def sources(self) -> npt.NDArray[np.object_]:
        """The source name of every position, for filters."""
        if self._source_array is None:
            self._source_array = np.array(self._sources, dtype=object)
        return self._source_array

    def document_rows(self, document_id: str) -> list[Row]:
        """A document's chunks held now, in the order of its text."""
        if self._documents is None:
            documents: dict[str, list[int]] = {}
            for position, row in enumerate(self.rows):
                if row is not None:
                    key = str(row.metadata.get("document_id", ""))
                    documents.setdefault(key, []).append(position)
            for positions in documents.values():
                positions.sort(key=lambda p: int(self.row(p).metadata.get("start", 0)))
            self._documents = documents
        return [self.row(p) for p in self._documents.get(document_id, [])]

    def add(self, rows: Sequence[Row]) -> None:
        """Add chunks (one already held under the same id is replaced)."""
        self.remove([row.id for row in rows if row.id in self.positions])
        positions = self.lexical.add(row.text for row in rows)
        for position, row in zip(positions, rows, strict=True):
            self.rows.append(row)
            self.positions[row.id] = position
            self._sources.append(str(row.metadata.get("source", "")))
        self._source_array = None
        self._documents = None

    def remove(self, ids: Sequence[str]) -> None:
        """Drop chunks by id (unknown ids are ignored)."""
        positions = [self.positions.pop(id_) for id_ in ids if id_ in self.positions]
        self.lexical.remove(positions, [self.row(p).text for p in positions])
        for position in positions:
            self.rows[position] = None
        self._documents = None

    def remove_document(self, document_id: str) -> None:
        """Drop every chunk of a document."""
        self.remove(
            [
                row.id
                for row in self.rows
                if row is not None and row.metadata.get("document_id") == document_id
            ]
        )

    def needs_compaction(self) -> bool:
        """Whether removed chunks hold so many positions that a rebuild pays."""
        return self.lexical.dead > COMPACT_SHARE * max(self.lexical.size, 1)


class IndexCache:
    """One index per collection: built from Chroma once, then updated with each change."""

    def __init__(self) -> None:
        self._indexes: dict[str, CollectionIndex] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, store: ChromaStore, name: str, revision: str) -> CollectionIndex:
        """The index of `name` at `revision`, built from Chroma if not held."""
        index = self._indexes.get(name)
        if index is not None and index.revision == revision:
            return index
        async with self._locks.setdefault(name, asyncio.Lock()):
            index = self._indexes.get(name)
            if index is None or index.revision != revision:
                rows = await store.get(name, texts=True)
                index = await asyncio.to_thread(CollectionIndex, revision, rows)
                self._indexes[name] = index
            return index

    def holds(self, name: str, revision: str) -> bool:
        """Whether the index of `name` is held at `revision` (worth updating in place)."""
        index = self._indexes.get(name)
        return index is not None and index.revision == revision

    async def update(
        self,
        name: str,
        old: str,
        new: str,
        *,
        added: Sequence[Row] = (),
        removed_document: str | None = None,
    ) -> None:
        """Apply one change made here between revisions `old` and `new`.

        An index held at another revision (another process wrote too) is dropped instead:
        the next search rebuilds it from Chroma.
        """
        async with self._locks.setdefault(name, asyncio.Lock()):
            index = self._indexes.get(name)
            if index is None:
                return
            if index.revision != old:
                self._indexes.pop(name, None)
                return

            # In place, between two awaits, so no search sees half a change.
            if removed_document is not None:
                index.remove_document(removed_document)
            index.add(added)
            index.revision = new
            if index.needs_compaction():
                self._indexes[name] = await asyncio.to_thread(CollectionIndex, new, index.live_rows)

    def forget(self, name: str) -> None:
        """Drop a collection's index (it was deleted)."""
        self._indexes.pop(name, None)
