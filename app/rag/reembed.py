"""A change of embedding model: every chunk embedded again into a shadow, then swapped in.

The collection answers searches with its old vectors until the shadow holds every chunk; then
two renames swap them. Uploads or deletions made meanwhile are carried over before the swap.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from app.rag.embeddings import Embedder
from app.rag.store import ChromaStore, Metadata, Row

SHADOW_OF = "shadow_of"  # metadata key of a collection being filled to replace another
STEP = 64  # chunks embedded and stored per step (one progress event each)
CATCH_UP_ROUNDS = 3


def is_shadow(metadata: Metadata) -> bool:
    """Whether a collection is a re-embedding in progress (hidden from callers)."""
    return SHADOW_OF in metadata


async def reembed(
    store: ChromaStore, name: str, metadata: Metadata, embedder: Embedder
) -> AsyncIterator[tuple[int, int]]:
    """Re-embed `name` with `embedder`, yielding (done, total); the swap happens at the end.

    `metadata` is the collection's as read before; the result keeps it but for the model and a
    new revision. A shadow left by an interrupted run is dropped first.
    """
    for stale in await store.collections():
        if stale.metadata.get(SHADOW_OF) == name:
            await store.delete_collection(stale.name)
    tag = uuid.uuid4().hex[:12]
    shadow = f"{name[:490]}.reembed-{tag}"
    await store.create_collection(shadow, {**metadata, SHADOW_OF: name})
    try:
        copied: set[str] = set()
        revision = str(metadata.get("revision", ""))
        for _ in range(CATCH_UP_ROUNDS):
            rows = await store.get(name, texts=True)
            wanted = {row.id for row in rows}
            todo = [row for row in rows if row.id not in copied]
            async for done in _copy(store, shadow, todo, embedder):
                yield len(copied) + done, len(wanted)
            copied.update(row.id for row in todo)
            gone = sorted(copied - wanted)
            if gone:
                await store.delete_ids(shadow, gone)
                copied -= set(gone)
            now = str((await store.collection(name)).metadata.get("revision", ""))
            if now == revision:
                break
            revision = now  # changed while we copied: take the difference too
        current = (await store.collection(name)).metadata
        final = {**current, "embedding_model": embedder.model, "revision": uuid.uuid4().hex}
        retired = f"{name[:490]}.retired-{tag}"
        await store.rename(name, retired, {**current, SHADOW_OF: name})
        try:
            await store.rename(shadow, name, final)
        except BaseException:
            await store.rename(retired, name, current)
            raise
    except BaseException:
        await store.delete_collection(shadow)
        raise
    await store.delete_collection(retired)
    yield len(copied), len(copied)


async def _copy(
    store: ChromaStore, shadow: str, rows: list[Row], embedder: Embedder
) -> AsyncIterator[int]:
    for start in range(0, len(rows), STEP):
        batch = rows[start : start + STEP]
        vectors = await embedder.embed_documents([row.text for row in batch])
        await store.upsert(
            shadow,
            [row.id for row in batch],
            vectors,
            [row.text for row in batch],
            [row.metadata for row in batch],
        )
        yield start + len(batch)
