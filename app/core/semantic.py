"""The semantic cache: a stored answer for a question asked before in other words.

Entries point at exact-cache entries (so they share their TTL and their fail-open store). Each
partition (everything in the exact key but the question's text) keeps its vectors in Redis, in
a sorted set by time, bounded in size; each process mirrors the partitions it is asked about in
an HNSW index (faiss), which `bench/semantic_lookup.py` chose by measurement. A hit needs the
similarity to reach the calibrated threshold and every guard of `app.core.paraphrase` to agree.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import orjson
import redis.asyncio as aioredis
from cachetools import LRUCache, TTLCache

from app.core.cache import glob_escape, key_model
from app.core.errors import CacheUnavailable
from app.core.outage import Outage
from app.core.paraphrase import Traits, traits, veto

logger = logging.getLogger(__name__)

SEMANTIC_PREFIX = "llamarada:semantic:v1:"
CANDIDATES = 4  # nearest entries checked against the guards, best first
HNSW_LINKS = 16  # faiss HNSW's M: links per node (bench/semantic_lookup.py)
HNSW_SEARCH = 64  # its efSearch: candidates kept while searching

Embed = Callable[[str], Awaitable[Sequence[float]]]


@dataclass(frozen=True)
class SemanticQuery:
    """A question, and the partition of everything else its answer depends on."""

    model: str
    partition: str  # a digest
    text: str

    @property
    def name(self) -> str:
        """The partition's Redis key."""
        return f"{SEMANTIC_PREFIX}{self.model}:{self.partition}"


@dataclass(frozen=True)
class SemanticHit:
    """The exact-cache key of an answer to a question close enough, and how close."""

    key: str
    similarity: float


@dataclass
class _Partition:
    """One partition's entries in this process, searchable by vector."""

    dimensions: int
    keys: list[str] = field(default_factory=list)
    traits: list[Traits] = field(default_factory=list)
    added: list[float] = field(default_factory=list)
    known: set[str] = field(default_factory=set)
    synced: float = 0.0  # score (ms) of the newest entry read from Redis
    index: Any = None

    def __post_init__(self) -> None:
        import faiss  # imported on first use: only the semantic cache needs it

        self.index = faiss.IndexHNSWFlat(self.dimensions, HNSW_LINKS, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efSearch = HNSW_SEARCH

    def trimmed(self, keep: int, oldest: float) -> _Partition:
        """A new index with the newest `keep` entries not older than `oldest` (HNSW cannot
        drop entries, so a partition grown past its bound is rebuilt)."""
        fresh = _Partition(self.dimensions)
        for at in range(max(0, len(self.keys) - keep), len(self.keys)):
            if self.added[at] >= oldest:
                vector = self.index.reconstruct(at)
                fresh.add(self.keys[at], "", vector, self.added[at])
                fresh.traits[-1] = self.traits[at]
        fresh.synced = self.synced
        return fresh

    def add(self, key: str, text: str, vector: npt.NDArray[np.float32], added: float) -> None:
        """Index an entry once."""
        if key in self.known:
            return
        self.known.add(key)
        self.keys.append(key)
        self.traits.append(traits(text))
        self.added.append(added)
        self.index.add(vector.reshape(1, -1))


class SemanticCache:
    """Similar questions' answers, by partition; fails open like the exact cache."""

    def __init__(
        self,
        embed: Embed,
        *,
        threshold: float,
        ttl: int,
        max_entries: int,
        client: aioredis.Redis | None = None,
        outage: Outage | None = None,
        max_partitions: int = 1024,
    ) -> None:
        self._embed = embed
        self.threshold = threshold
        self._ttl = ttl
        self._max_entries = max_entries
        self._client = client
        self._partitions: TTLCache[str, _Partition] = TTLCache(max_partitions, ttl)
        self._vectors: LRUCache[str, npt.NDArray[np.float32]] = LRUCache(256)
        # The exact cache's, as they share one Redis: one outage, one warning.
        self._outage = outage or Outage(
            logger,
            "semantic cache unavailable, serving uncached",
            "semantic cache available again",
        )

    async def vector(self, text: str) -> npt.NDArray[np.float32]:
        """The question's unit vector (remembered: a miss is stored right after its lookup)."""
        found = self._vectors.get(text)
        if found is None:
            found = np.asarray(await self._embed(text), dtype=np.float32)
            found /= max(float(np.linalg.norm(found)), 1e-12)
            self._vectors[text] = found
        return found

    async def lookup(self, query: SemanticQuery) -> SemanticHit | None:
        """The nearest earlier question that passes the threshold and every guard."""
        vector = await self.vector(query.text)
        partition = await self._partition(query, len(vector))
        if partition is None or not partition.keys:
            return None
        scores, ids = partition.index.search(vector.reshape(1, -1), CANDIDATES)
        asked = traits(query.text)
        oldest = time.time() - self._ttl
        for score, at in zip(scores[0], ids[0], strict=True):
            if at < 0 or score < self.threshold:
                break
            if partition.added[at] >= oldest and veto(asked, partition.traits[at]) is None:
                return SemanticHit(partition.keys[at], float(score))
        return None

    async def add(self, query: SemanticQuery, key: str) -> None:
        """Remember that `key` answers the query's question."""
        vector = await self.vector(query.text)
        now = time.time()
        if self._client is not None:
            member = orjson.dumps(
                {"k": key, "t": query.text, "v": base64.b64encode(vector.tobytes()).decode()}
            )
            await self._call(lambda: self._store(query.name, member, now))
        partition = await self._partition(query, len(vector))
        if partition is not None:
            partition.add(key, query.text, vector, now)

    async def _store(self, name: str, member: bytes, now: float) -> None:
        async with self._client.pipeline(transaction=False) as pipe:  # type: ignore[union-attr]
            pipe.zadd(name, {member: now * 1000})
            pipe.zremrangebyscore(name, "-inf", (now - self._ttl) * 1000)
            pipe.zremrangebyrank(name, 0, -self._max_entries - 1)
            pipe.expire(name, self._ttl)
            await pipe.execute()

    async def _partition(self, query: SemanticQuery, dimensions: int) -> _Partition | None:
        """This process's mirror of a partition, brought up to date from Redis."""
        partition = self._partitions.get(query.name)
        if partition is None:
            partition = self._partitions[query.name] = _Partition(dimensions)
        elif len(partition.keys) > 2 * self._max_entries:
            oldest = time.time() - self._ttl
            partition = partition.trimmed(self._max_entries, oldest)
            self._partitions[query.name] = partition
        if self._client is not None:
            since = partition.synced
            found = await self._call(
                lambda: self._client.zrangebyscore(  # type: ignore[union-attr]
                    query.name, f"({since}" if since else "-inf", "+inf", withscores=True
                )
            )
            for member, score in cast(list[tuple[bytes, float]], found):
                entry = orjson.loads(member)
                vector = np.frombuffer(base64.b64decode(entry["v"]), dtype=np.float32)
                if len(vector) == dimensions:
                    partition.add(entry["k"], entry["t"], vector, score / 1000)
                partition.synced = max(partition.synced, score)
        return partition

    async def _call(self, command: Callable[[], Awaitable[Any]]) -> Any:
        if self._outage.pausing:
            raise CacheUnavailable("redis is down")
        try:
            result = await command()
        except Exception as exc:  # a semantic cache that fails is a miss
            self._outage.failed(exc)
            raise CacheUnavailable(str(exc)) from exc
        self._outage.succeeded()
        return result

    async def counts(self) -> dict[str, int]:
        """Entries by model."""
        counts: dict[str, int] = {}
        if self._client is None:
            for name, partition in list(self._partitions.items()):
                model = key_model(name, SEMANTIC_PREFIX)
                counts[model] = counts.get(model, 0) + len(partition.keys)
            return counts
        client = self._client
        for name in await self._names(None):
            size = cast(int, await self._call(partial(client.zcard, name)))
            model = key_model(name, SEMANTIC_PREFIX)
            counts[model] = counts.get(model, 0) + size
        return counts

    async def drop(self, model: str | None) -> int:
        """Forget every entry, or one model's; how many there were."""
        counts = await self.counts()
        dropped = counts.get(model, 0) if model else sum(counts.values())
        prefix = SEMANTIC_PREFIX + (f"{model}:" if model else "")
        for name in [name for name in self._partitions if name.startswith(prefix)]:
            self._partitions.pop(name, None)
        if self._client is not None:
            names = await self._names(model)
            if names:
                await self._call(lambda: self._client.unlink(*names))  # type: ignore[union-attr]
        return dropped

    async def _names(self, model: str | None) -> list[str]:
        """The partitions in Redis, all or one model's."""
        pattern = glob_escape(SEMANTIC_PREFIX + (f"{model}:" if model else "")) + "*"

        async def scan() -> list[str]:
            found = self._client.scan_iter(match=pattern, count=1000)  # type: ignore[union-attr]
            return [name.decode() async for name in found]

        return cast(list[str], await self._call(scan))
