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

import asyncio
import hashlib
import logging

from app.core.auth import Principal
from app.core.errors import Conflict, NotFound, UpstreamError
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


class Namespaces:
    """Finds a caller's collection by its name, once the plain-named ones have been moved."""

    def __init__(self, store: ChromaStore) -> None:
        self._store = store
        self._migrated = False
        self._migrating = asyncio.Lock()

    async def ready(self) -> None:
        """Move collections stored under plain names into their namespaces (once a process)."""
        if self._migrated:
            return
        async with self._migrating:
            if not self._migrated:
                await migrate(self._store)
                self._migrated = True

    async def free(self, caller: Principal, name: str) -> str:
        """The stored name for the caller's new collection `name`; Conflict if it has one."""
        await self.ready()
        storage = storage_name(caller.name, name)
        if await self._get(storage) is not None:
            raise Conflict(f"collection {name!r} already exists")
        return storage

    async def find(self, name: str, caller: Principal) -> StoredCollection:
        """The caller's collection `name`, or NotFound (the same for a missing one).

        An admin with no collection of that name reaches another owner's, when only one has it.
        """
        await self.ready()
        stored = await self._get(storage_name(caller.name, name))
        if stored is None and caller.admin:
            theirs = [
                c
                for c in await self._store.collections()
                if display_name(c) == name and not is_shadow(c.metadata)
            ]
            if len(theirs) > 1:
                raise Conflict(f"several keys have a collection {name!r}; use the owner's key")
            stored = theirs[0] if theirs else None
        if stored is None or is_shadow(stored.metadata):
            raise NotFound(f"collection {name!r} not found")
        return stored

    async def _get(self, storage: str) -> StoredCollection | None:
        try:
            return await self._store.collection(storage)
        except NotFound:
            return None
