"""Ingestion is atomic per document: a store that fails part-way leaves none of its chunks."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import chromadb
import httpx
import pytest
from chromadb.api import ClientAPI
from chromadb.config import Settings as ChromaSettings

from app.core.auth import ANONYMOUS
from app.core.config import RagSettings
from app.core.errors import UpstreamUnavailable
from app.core.metrics import Metrics
from app.rag.embeddings import MiniLMEmbedder
from app.rag.ingest import Upload
from app.rag.namespace import storage_name
from app.rag.schemas import CollectionCreate
from app.rag.service import KnowledgeBase
from app.rag.store import ChromaStore


class FailingCollection:
    """A real collection whose second `upsert` call fails as a dropped connection would."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.upserts = 0

    def upsert(self, **kwargs: Any) -> None:
        """Store the first batch, then lose the connection."""
        self.upserts += 1
        if self.upserts == 2:
            raise httpx.ConnectError("connection reset by peer")
        self._inner.upsert(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class SmallBatchClient:
    """A real Chroma client that takes 5 chunks per call and hands out failing collections."""

    def __init__(self, inner: ClientAPI) -> None:
        self._inner = inner
        self.collections: dict[str, FailingCollection] = {}

    def get_max_batch_size(self) -> int:
        """Small batches, so one document needs several calls."""
        return 5

    def get_collection(self, name: str, **kwargs: Any) -> FailingCollection:
        """The collection, wrapped once."""
        if name not in self.collections:
            self.collections[name] = FailingCollection(self._inner.get_collection(name, **kwargs))
        return self.collections[name]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.fixture
async def knowledge(tmp_path: Path) -> Any:
    """A knowledge base over real embedded Chroma behind the failing client."""
    real = chromadb.PersistentClient(
        path=str(tmp_path / "chroma"), settings=ChromaSettings(anonymized_telemetry=False)
    )
    wrapped = SmallBatchClient(real)
    store = ChromaStore(lambda: cast(ClientAPI, wrapped), where="test")
    rag = RagSettings(chunk_size=100, chunk_overlap=0)
    knowledge = KnowledgeBase(store, MiniLMEmbedder(), rag, Metrics())
    yield knowledge
    await knowledge.aclose()


async def test_ingest_failing_part_way_leaves_no_chunks(knowledge: KnowledgeBase) -> None:
    await knowledge.create_collection(CollectionCreate(name="docs"), caller=ANONYMOUS)
    text = "".join(f"Sentence number {i} about llamas. " for i in range(40)).encode()
    batch = await knowledge.prepare_upload("docs", [Upload("long.txt", text)], caller=ANONYMOUS)
    assert len(batch.documents[0].chunks) > 10  # several batches of 5

    with pytest.raises(UpstreamUnavailable):
        await knowledge.index(batch)

    collection = await knowledge.get_collection("docs", caller=ANONYMOUS)
    assert (collection.documents, collection.chunks) == (0, 0)
    assert await knowledge.store.get(storage_name(ANONYMOUS.name, "docs")) == []
