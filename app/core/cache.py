"""The response cache: Redis when configured, an in-process TTL+LRU otherwise.

Both fail open: any failure of Redis (down, slow, out of pooled connections, a broken socket)
raises `CacheUnavailable`, the caller serves the request uncached, and the cache is tried again
after a short pause, so it comes back by itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, cast

from cachetools import TTLCache

from app.core.errors import CacheUnavailable
from app.core.outage import Outage, redis_client

logger = logging.getLogger(__name__)

# Bump when the meaning of a key's inputs or the stored value's shape changes.
KEY_VERSION = 1
KEY_PREFIX = f"llamarada:response:v{KEY_VERSION}:"


def cache_key(inputs: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of everything that shapes a response."""
    canonical = json.dumps(
        {"key_version": KEY_VERSION, **inputs},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
    return KEY_PREFIX + hashlib.sha256(canonical.encode()).hexdigest()


class ResponseCache(Protocol):
    """Bytes by key with a TTL; `get` and `set` raise `CacheUnavailable` when it can't answer."""

    name: str

    async def get(self, key: str) -> bytes | None:
        """The stored value, or None."""

    async def set(self, key: str, value: bytes) -> None:
        """Store a value for the configured TTL."""

    async def check(self) -> None:
        """Raise `CacheUnavailable` unless the cache answers now."""

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

    async def get(self, key: str) -> bytes | None:
        """The stored value, or None."""
        return cast(bytes | None, await self._call(lambda: self._client.get(key)))

    async def set(self, key: str, value: bytes) -> None:
        """Store a value for the TTL."""
        await self._call(lambda: self._client.set(key, value, ex=self._ttl))

    async def check(self) -> None:
        """Ping Redis, whatever the pause."""
        await self._call(self._client.ping, pause=False)

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
