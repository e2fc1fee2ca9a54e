"""Collection names per owner: each key has its own namespace, stored under a derived name.

A caller names a collection (`docs`); Chroma stores it as `kb-<digest of owner and name>`, with
the caller's name and the owner in its metadata. Two keys may therefore both have `docs`, and
creating one tells nothing about the other's. The stored name is fixed-length and reveals
neither the owner nor the name.

Collections made before names were per owner are stored under their plain name; `migrate`
renames each into its owner's namespace (ownerless ones, from before keys recorded owners, into
the namespace of no owner, which admins reach as before).
"""

from __future__ import annotations

import hashlib
import logging

from app.core.errors import NotFound, UpstreamError
from app.rag.reembed import is_shadow
from app.rag.store import ChromaStore, StoredCollection

logger = logging.getLogger(__name__)

NAME = "name"  # metadata key: the name its owner gave the collection
OWNER = "owner"  # metadata key: the key name that created it
PREFIX = "kb-"


def storage_name(owner: str, name: str) -> str:
    """The Chroma name of `owner`'s collection `name`."""
    digest = hashlib.sha256(f"{owner}\0{name}".encode()).hexdigest()[:40]
    return PREFIX + digest


def display_name(stored: StoredCollection) -> str:
    """The name the owner knows the collection by."""
    name = stored.metadata.get(NAME)
    return name if isinstance(name, str) else stored.name


def owner_of(stored: StoredCollection) -> str | None:
    """Who created the collection (None or "": before collections had owners)."""
    owner = stored.metadata.get(OWNER)
    return owner if isinstance(owner, str) else None


def is_legacy(stored: StoredCollection) -> bool:
    """Whether the collection is still stored under its plain, global name."""
    return NAME not in stored.metadata and not is_shadow(stored.metadata)


async def migrate(store: ChromaStore) -> int:
    """Move every collection stored under a plain name into its owner's namespace; how many.

    Safe to run from several processes at once: a collection another one moved first is skipped.
    """
    moved = 0
    for stored in await store.collections():
        if not is_legacy(stored):
            continue
        owner = owner_of(stored) or ""
        target = storage_name(owner, stored.name)
        try:
            await store.rename(stored.name, target, {**stored.metadata, NAME: stored.name})
        except (NotFound, UpstreamError) as exc:  # moved meanwhile, or the target exists
            logger.warning(
                "collection not moved", extra={"collection": stored.name, "error": str(exc)}
            )
            continue
        moved += 1
    if moved:
        logger.info("collections moved into their owners' namespaces", extra={"moved": moved})
    return moved
