"""The response cache: Redis when configured, an in-process TTL+LRU otherwise.

Both fail open: any failure of Redis (down, slow, out of pooled connections, a broken socket)
raises `CacheUnavailable`, the caller serves the request uncached, and the cache is tried again
after a short pause, so it comes back by itself.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Any, Protocol, cast

import orjson
import redis.asyncio as aioredis
from cachetools import TTLCache

from app.core.config import Settings
from app.core.errors import CacheUnavailable
from app.core.outage import Outage, redis_client

logger = logging.getLogger(__name__)

# Bump when the meaning of a key's inputs, their encoding or the stored value's shape changes.
# v3: the model's name leads the digest, so one model's entries can be counted and dropped.
KEY_VERSION = 3
KEY_PREFIX = f"llamarada:response:v{KEY_VERSION}:"


class CacheStatus(StrEnum):
    """What the response cache did for a request (the `X-Cache` header)."""

    HIT = "HIT"
    MISS = "MISS"
    BYPASS = "BYPASS"


@dataclass(frozen=True)
class CacheHit:
    """How a HIT was found (`X-Cache-Kind`) and, for a semantic one, how similar the question
    was (`X-Cache-Similarity`)."""

    kind: str  # exact | semantic
    similarity: float | None = None


EXACT_HIT = CacheHit("exact")


@dataclass(frozen=True)
class CachePolicy:
    """Whether a request may read and write the cache, from its `Cache-Control` header."""

    read: bool = True
    write: bool = True

    @classmethod
    def from_header(cls, cache_control: str | None) -> CachePolicy:
        """`no-cache` skips the read, `no-store` the write."""
        if not cache_control:
            return DEFAULT_POLICY
        directives = {part.strip().lower() for part in cache_control.split(",")}
        return cls(read="no-cache" not in directives, write="no-store" not in directives)


DEFAULT_POLICY = CachePolicy()


def cache_key(inputs: Mapping[str, Any]) -> str:
    """The model's name and the SHA-256 of the canonical JSON of everything that shapes a
    response."""
    canonical = orjson.dumps({"key_version": KEY_VERSION, **inputs}, option=orjson.OPT_SORT_KEYS)
    return f"{KEY_PREFIX}{inputs.get('model', '')}:{hashlib.sha256(canonical).hexdigest()}"


def key_model(key: str, prefix: str = KEY_PREFIX) -> str:
    """The model a key (made by `cache_key`, or alike under `prefix`) belongs to."""
    return key.removeprefix(prefix).rsplit(":", 1)[0]


def glob_escape(text: str) -> str:
    """`text` matched literally in a Redis SCAN pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class ResponseCache(Protocol):
    """Bytes by key with a TTL; `get` and `set` raise `CacheUnavailable` when it can't answer."""

    name: str

    async def get(self, key: str) -> bytes | None:
        """The stored value, or None."""

    async def set(self, key: str, value: bytes) -> None:
        """Store a value for the configured TTL."""

    async def check(self) -> None:
        """Raise `CacheUnavailable` unless the cache answers now."""

    async def keys(self, prefix: str) -> list[str]:
        """Every stored key that starts with `prefix`."""

    async def delete(self, keys: list[str]) -> int:
        """Drop entries; how many there were."""

    async def aclose(self) -> None:
        """Close connections."""


class MemoryCache:
    """In-process TTL + LRU cache, for one process without Redis."""

    name = "memory"

    def __init__(self, ttl: int, max_entries: int) -> None:
        self._entries: TTLCache[str, bytes] = TTLCache(maxsize=max_entries, ttl=ttl)

    async def get(self, key: str) -> bytes | None:
        """The stored value, or None."""
        return self._entries.get(key)

    async def set(self, key: str, value: bytes) -> None:
        """Store a value; the oldest unused entry goes when full."""
        self._entries[key] = value

    async def check(self) -> None:
        """Always available."""

    async def keys(self, prefix: str) -> list[str]:
        """Every stored key that starts with `prefix`."""
        self._entries.expire()
        return [key for key in list(self._entries) if key.startswith(prefix)]

    async def delete(self, keys: list[str]) -> int:
        """Drop entries; how many there were."""
        return sum(self._entries.pop(key, None) is not None for key in keys)

    async def aclose(self) -> None:
        """Nothing to close."""


class RedisCache:
    """Redis-backed cache that reports an outage once and retries after a pause."""

    name = "redis"

    def __init__(
        self,
        url: str,
        ttl: int,
        *,
        max_connections: int = 64,
        timeout: float = 2.0,
        retry_pause: float = 1.0,
    ) -> None:
        self._client = redis_client(url, max_connections=max_connections, timeout=timeout)
        self._ttl = ttl
        self._outage = Outage(
            logger,
            "response cache unavailable, serving uncached",
            "response cache available again",
            retry_pause=retry_pause,
        )

    @property
    def outage(self) -> Outage:
        """Redis's outage state, shared with what uses the same client."""
        return self._outage

    @property
    def client(self) -> aioredis.Redis:
        """The Redis client, shared with what lives next to the cache (leases, vectors)."""
        return self._client

    async def get(self, key: str) -> bytes | None:
        """The stored value, or None."""
        return cast(bytes | None, await self._call(lambda: self._client.get(key)))

    async def set(self, key: str, value: bytes) -> None:
        """Store a value for the TTL."""
        await self._call(lambda: self._client.set(key, value, ex=self._ttl))

    async def check(self) -> None:
        """Ping Redis, whatever the pause."""
        await self._call(self._client.ping, pause=False)

    async def keys(self, prefix: str) -> list[str]:
        """Every stored key that starts with `prefix` (SCAN: Redis keeps serving meanwhile)."""

        async def scan() -> list[str]:
            found = self._client.scan_iter(match=glob_escape(prefix) + "*", count=1000)
            return [key.decode() async for key in found]

        return cast(list[str], await self._call(scan))

    async def delete(self, keys: list[str]) -> int:
        """Drop entries; how many there were."""
        deleted = 0
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            deleted += cast(int, await self._call(partial(self._client.unlink, *batch)))
        return deleted

    async def _call(self, command: Callable[[], Awaitable[Any]], *, pause: bool = True) -> Any:
        """Run a Redis command, or raise `CacheUnavailable` (at once while paused)."""
        if pause and self._outage.pausing:
            raise CacheUnavailable("redis is down")
        try:
            result = await command()
        except Exception as exc:  # whatever went wrong, a cache that fails is a miss
            self._outage.failed(exc)
            raise CacheUnavailable(str(exc)) from exc
        self._outage.succeeded()
        return result

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


def build_cache(settings: Settings) -> ResponseCache | None:
    """Redis when configured, in-process otherwise; None when the TTL is 0."""
    if settings.cache_ttl == 0:
        return None
    if settings.redis_url is not None:
        return RedisCache(
            settings.redis_url.get_secret_value(),
            settings.cache_ttl,
            max_connections=settings.redis_max_connections,
        )
    return MemoryCache(settings.cache_ttl, settings.cache_max_entries)
