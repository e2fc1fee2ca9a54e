"""The one wrapper around Chroma: sync calls on worker threads, its errors turned into ours."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import httpx
import numpy as np
import numpy.typing as npt

from app.core.errors import NotFound, UpstreamError, UpstreamUnavailable

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

logger = logging.getLogger(__name__)

T = TypeVar("T")
Metadata = dict[str, str | int | float | bool]
PAGE = 5000  # rows per `get` when reading a whole collection


@dataclass(frozen=True)
class StoredCollection:
    """A collection's name, metadata and chunk count."""

    name: str
    metadata: Metadata
    count: int


@dataclass(frozen=True)
class Row:
    """One stored chunk; `distance` is set by queries."""

    id: str
    text: str
    metadata: Metadata
    distance: float | None = None


class ChromaStore:
    """Chroma, embedded (a persistent client in a folder) or a server (`chroma run`)."""

    def __init__(
        self,
        connect: Callable[[], ClientAPI],
        *,
        where: str,
        retry_after: int = 5,
        threads: int = 4,
    ) -> None:
        self.where = where
        self._connect = connect
        self._client: ClientAPI | None = None
        self._lock = threading.Lock()
        self._retry_after = retry_after
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="chroma")

    @classmethod
    def persistent(cls, path: Path, *, retry_after: int = 5) -> ChromaStore:
        """Embedded Chroma storing in `path`."""

        def connect() -> ClientAPI:
            import chromadb
            from chromadb.config import Settings

            path.mkdir(parents=True, exist_ok=True)
            settings = Settings(anonymized_telemetry=False, allow_reset=False)
            return chromadb.PersistentClient(path=str(path), settings=settings)

        return cls(connect, where=str(path), retry_after=retry_after)

    @classmethod
    def server(cls, url: str, *, retry_after: int = 5, timeout: float = 30.0) -> ChromaStore:
        """A Chroma server at `url` (http[s]://host:port)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http(s) URL")
        port = parts.port or (443 if parts.scheme == "https" else 8000)

        def connect() -> ClientAPI:
            import chromadb
            from chromadb.config import Settings

            settings = Settings(anonymized_telemetry=False)
            client = chromadb.HttpClient(
                host=parts.hostname or "",
                port=port,
                ssl=parts.scheme == "https",
                settings=settings,
            )
            for session in _http_sessions(client):
                session.timeout = httpx.Timeout(timeout, connect=min(timeout, 3.0))
            return client

        return cls(connect, where=url, retry_after=retry_after)

    async def aclose(self) -> None:
        """Close the client and stop the worker threads."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        client, self._client = self._client, None
        if client is None:
            return
        close = getattr(client, "close", None)
        if close is not None:
            close()
        for session in _http_sessions(client):
            session.close()

    async def heartbeat(self) -> None:
        """Raise UpstreamUnavailable unless Chroma answers now."""
        await self._run(lambda client: client.heartbeat())

    async def create_collection(self, name: str, metadata: Metadata) -> StoredCollection:
        """A new collection for vectors compared by cosine distance."""

        def create(client: ClientAPI) -> StoredCollection:
            collection = client.create_collection(
                name,
                metadata=metadata,
                configuration={"hnsw": {"space": "cosine"}},
                embedding_function=None,
            )
            return StoredCollection(name, dict(collection.metadata or {}), 0)

        return await self._run(create)

    async def collection(self, name: str) -> StoredCollection:
        """One collection, or NotFound."""

        def get(client: ClientAPI) -> StoredCollection:
            collection = self._open(client, name)
            return StoredCollection(name, dict(collection.metadata or {}), collection.count())

        return await self._run(get)

    async def collections(self) -> list[StoredCollection]:
        """Every collection, by name."""

        def list_all(client: ClientAPI) -> list[StoredCollection]:
            found = [
                StoredCollection(c.name, dict(c.metadata or {}), c.count())
                for c in client.list_collections()
            ]
            return sorted(found, key=lambda c: c.name)

        return await self._run(list_all)

    async def delete_collection(self, name: str) -> None:
        """Drop a collection and its vectors."""
        await self._run(lambda client: (self._open(client, name), client.delete_collection(name)))

    async def set_metadata(self, name: str, updates: Metadata) -> None:
        """Merge `updates` into the collection's metadata."""

        def modify(client: ClientAPI) -> None:
            collection = self._open(client, name)
            collection.modify(metadata={**(collection.metadata or {}), **updates})

        await self._run(modify)

    async def rename(self, name: str, new_name: str, metadata: Metadata) -> None:
        """Give a collection another name and, whole, other metadata."""

        def modify(client: ClientAPI) -> None:
            self._open(client, name).modify(name=new_name, metadata=metadata)

        await self._run(modify)

    async def upsert(
        self,
        name: str,
        ids: Sequence[str],
        vectors: Sequence[Sequence[float]] | npt.NDArray[np.float32],
        texts: Sequence[str],
        metadatas: Sequence[Metadata],
    ) -> None:
        """Store chunks in as few calls as Chroma allows (one call is applied whole)."""

        def upsert(client: ClientAPI) -> None:
            collection = self._open(client, name)
            step = client.get_max_batch_size()
            for start in range(0, len(ids), step):
                end = start + step
                collection.upsert(
                    ids=list(ids[start:end]),
                    embeddings=np.asarray(vectors[start:end], dtype=np.float32),
                    documents=list(texts[start:end]),
                    metadatas=[dict(m) for m in metadatas[start:end]],
                )

        await self._run(upsert)

    async def delete(self, name: str, where: Mapping[str, Any]) -> None:
        """Delete the chunks matching a metadata filter."""
        await self._run(lambda client: self._open(client, name).delete(where=dict(where)))

    async def delete_ids(self, name: str, ids: Sequence[str]) -> None:
        """Delete chunks by id."""
        await self._run(lambda client: self._open(client, name).delete(ids=list(ids)))

    async def get(
        self, name: str, where: Mapping[str, Any] | None = None, *, texts: bool = False
    ) -> list[Row]:
        """Every chunk matching the filter (all of them without one), page by page."""

        def read(client: ClientAPI) -> list[Row]:
            collection = self._open(client, name)
            include: Any = ["metadatas", "documents"] if texts else ["metadatas"]
            rows: list[Row] = []
            while True:
                page = collection.get(
                    where=dict(where) if where else None,
                    include=include,
                    limit=PAGE,
                    offset=len(rows),
                )
                documents = page["documents"] or [""] * len(page["ids"])
                metadatas = page["metadatas"] or [{}] * len(page["ids"])
                rows.extend(
                    Row(id_, text or "", _scalars(meta))
                    for id_, text, meta in zip(page["ids"], documents, metadatas, strict=True)
                )
                if len(page["ids"]) < PAGE:
                    return rows

        return await self._run(read)

    async def query(
        self, name: str, vector: Sequence[float], n: int, where: Mapping[str, Any] | None = None
    ) -> list[Row]:
        """The `n` nearest chunks to `vector`, nearest first."""

        def query(client: ClientAPI) -> list[Row]:
            collection = self._open(client, name)
            result = collection.query(
                query_embeddings=np.asarray([vector], dtype=np.float32),
                n_results=n,
                where=dict(where) if where else None,
                include=["metadatas", "distances"],
            )
            distances = (result["distances"] or [[]])[0]
            metadatas = (result["metadatas"] or [[]])[0]
            return [
                Row(id_, "", _scalars(meta), distance)
                for id_, meta, distance in zip(result["ids"][0], metadatas, distances, strict=True)
            ]

        return await self._run(query)

    async def vectors(self, name: str, ids: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]:
        """The stored vectors of some chunks, by id (missing ids are left out)."""
        if not ids:
            return {}

        def read(client: ClientAPI) -> dict[str, npt.NDArray[np.float32]]:
            page = self._open(client, name).get(ids=list(ids), include=["embeddings"])
            embeddings = page["embeddings"]
            if embeddings is None:
                return {}
            return {
                id_: np.asarray(vector, dtype=np.float32)
                for id_, vector in zip(page["ids"], embeddings, strict=True)
            }

        return await self._run(read)

    def _open(self, client: ClientAPI, name: str) -> Collection:
        from chromadb.errors import NotFoundError

        try:
            return client.get_collection(name, embedding_function=None)
        except NotFoundError:
            raise NotFound(f"collection {name!r} not found") from None

    async def _run(self, work: Callable[[ClientAPI], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._call, work)
        except RuntimeError as exc:
            if "shutdown" in str(exc):  # the app is stopping
                raise UpstreamUnavailable("the vector store is shutting down") from None
            raise

    def _call(self, work: Callable[[ClientAPI], T]) -> T:
        """Run `work` with a client, connecting first if needed; map Chroma's failures."""
        from chromadb.errors import ChromaError

        try:
            with self._lock:
                if self._client is None:
                    self._client = self._connect()
                client = self._client
            return work(client)
        except (httpx.TransportError, ConnectionError, TimeoutError) as exc:
            raise self._unavailable(exc) from None
        except httpx.HTTPStatusError as exc:
            raise self._unavailable(exc) from None
        except ValueError as exc:
            # HttpClient reports an unreachable server as a ValueError at construction.
            if "connect" in str(exc).lower():
                raise self._unavailable(exc) from None
            raise
        except ChromaError as exc:
            logger.warning("chroma error", extra={"error": str(exc), "store": self.where})
            raise UpstreamError(f"the vector store failed: {exc}") from None

    def _unavailable(self, exc: BaseException) -> UpstreamUnavailable:
        logger.warning("chroma unavailable", extra={"error": str(exc), "store": self.where})
        return UpstreamUnavailable(
            f"the vector store (Chroma at {self.where}) is unavailable: {exc}",
            retry_after=self._retry_after,
        )


def _scalars(metadata: Mapping[str, object] | None) -> Metadata:
    """A chunk's metadata with the plain values Llamarada stores (Chroma's type is wider)."""
    return {
        key: value
        for key, value in (metadata or {}).items()
        if isinstance(value, str | int | float | bool)
    }


def _http_sessions(client: object) -> list[httpx.Client]:
    """The httpx clients inside a Chroma HttpClient (its own and its admin client's).

    chromadb 1.5.9 creates them with no timeout (a hung server would hold a thread forever) and
    never closes them; this is the one place that reaches into its internals to fix both.
    """
    owners = [client, getattr(client, "_admin_client", None)]
    sessions = [getattr(getattr(o, "_server", None), "_session", None) for o in owners]
    return [s for s in sessions if isinstance(s, httpx.Client)]
