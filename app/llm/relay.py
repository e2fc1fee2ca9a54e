"""Single flight across processes: a short Redis lease per key, the leader's chunks on a Stream.

The first process to ask for a key takes the lease and generates, adding each chunk to a Redis
Stream named after the key and its lease; the others read that stream as it grows, so they
stream the same answer at the same pace. A leader that dies stops renewing its lease: once it
lapses, a waiting process that has sent nothing yet takes over. Redis failing means each process
generates on its own, as without Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncGenerator, Callable
from dataclasses import fields
from typing import Any, cast

import orjson
import redis.asyncio as aioredis

from app.core.errors import UpstreamError, UpstreamUnavailable
from app.core.outage import Outage
from app.llm.base import Chunk

logger = logging.getLogger(__name__)

LEASE_PREFIX = "llamarada:flight:v1:"
STREAM_PREFIX = "llamarada:flight-stream:v1:"
STREAM_KEEP_MS = 60_000  # a finished stream stays readable this long for late followers
_DEFAULTS = {f.name: f.default for f in fields(Chunk)}

# Renew or drop the lease only while it is still ours (it may have lapsed and been taken).
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class LeaderLost(Exception):
    """The leader's lease lapsed before its stream ended."""


def pack_chunk(chunk: Chunk) -> bytes:
    """A chunk as compact JSON (only the fields that differ from the defaults)."""
    return orjson.dumps({k: v for k, v in vars(chunk).items() if v != _DEFAULTS[k]})


class Relay:
    """Shares one generation per key between every process on the same Redis."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        lease: float,
        outage: Outage | None = None,
        poll: float = 0.5,
    ) -> None:
        self._client = client
        self._lease_ms = max(1, int(lease * 1000))
        self._poll_ms = max(1, int(min(poll, lease / 2) * 1000))
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._ending: set[asyncio.Task[None]] = set()
        # The cache's, when it shares its Redis: one outage, one warning.
        self._outage = outage or Outage(
            logger,
            "flight relay unavailable, generating per process",
            "flight relay available again",
        )

    async def source(
        self, key: str, produce: Callable[[], AsyncGenerator[Chunk, None]]
    ) -> AsyncGenerator[Chunk, None]:
        """The answer for `key`: generated here as the leader, or read from the leader's stream."""
        sent = 0
        while True:
            token = secrets.token_hex(8)
            try:
                if self._outage.pausing:
                    raise ConnectionError("paused after a failure")
                lead = await self._client.set(LEASE_PREFIX + key, token, nx=True, px=self._lease_ms)
                leader: Any = None if lead else await self._client.get(LEASE_PREFIX + key)
                self._outage.succeeded()
            except Exception as exc:  # Redis is optional here: generate as if alone
                self._outage.failed(exc)
                if sent:
                    raise UpstreamUnavailable("lost the shared generation") from exc
                async for chunk in produce():
                    yield chunk
                return
            if lead:
                async for chunk in self._lead(key, token, produce):
                    yield chunk
                return
            if leader is None:  # released between the two commands: ask again
                continue
            try:
                async for chunk in self._follow(key, leader.decode()):
                    sent += 1
                    yield chunk
                return
            except LeaderLost:
                if sent:  # the client has part of an answer no new generation would continue
                    raise UpstreamUnavailable("the generating process stopped") from None
                logger.warning("leader of a generation lost, taking over", extra={"key": key})
            except UpstreamError:
                raise
            except Exception as exc:
                self._outage.failed(exc)
                if sent:
                    raise UpstreamUnavailable("lost the shared generation") from exc

    async def _lead(
        self, key: str, token: str, produce: Callable[[], AsyncGenerator[Chunk, None]]
    ) -> AsyncGenerator[Chunk, None]:
        """Generate, publishing each chunk, while a task keeps the lease alive."""
        lease, stream = LEASE_PREFIX + key, f"{STREAM_PREFIX}{key}:{token}"
        renewing = asyncio.create_task(self._keep(lease, token))
        publishing = True
        failure: str | None = "the generation was stopped"
        try:
            async for chunk in produce():
                if publishing:
                    publishing = await self._publish(stream, {"c": pack_chunk(chunk)})
                yield chunk
            failure = None
        except Exception as exc:
            failure = getattr(exc, "message", None) or "the model backend failed"
            raise
        finally:
            renewing.cancel()
            # In the background: the answer is whole, and storing it must not wait on these.
            told = failure if publishing else None
            ending = asyncio.create_task(self._end(lease, stream, token, told))
            self._ending.add(ending)
            ending.add_done_callback(self._ending.discard)

    async def _end(self, lease: str, stream: str, token: str, failure: str | None) -> None:
        """Tell the followers of a failure, keep the stream a while, drop the lease."""
        with contextlib.suppress(Exception):
            if failure:
                await self._publish(stream, {"error": failure})
            await self._client.pexpire(stream, STREAM_KEEP_MS)
            await self._release(keys=[lease], args=[token])

    async def _publish(self, stream: str, entry: dict[str, bytes | str]) -> bool:
        """Add an entry; False (stop publishing) when Redis fails: followers then take over."""
        try:
            await self._client.xadd(stream, entry)  # type: ignore[arg-type]
        except Exception as exc:
            self._outage.failed(exc)
            return False
        return True

    async def _keep(self, lease: str, token: str) -> None:
        """Renew the lease a few times per lease period until cancelled."""
        while True:
            await asyncio.sleep(self._lease_ms / 3000)
            with contextlib.suppress(Exception):
                await self._renew(keys=[lease], args=[token, self._lease_ms])

    async def _follow(self, key: str, token: str) -> AsyncGenerator[Chunk, None]:
        """The leader's chunks from the first, as they are added; LeaderLost if it dies."""
        lease, stream = LEASE_PREFIX + key, f"{STREAM_PREFIX}{key}:{token}"
        last = "0-0"
        while True:
            read = await self._read(stream, last, self._poll_ms)
            if not read:
                if await self._client.get(lease) == token.encode():
                    continue
                # The leader drops its lease after its last entry: read once more before
                # calling it lost.
                read = await self._read(stream, last, None)
                if not read:
                    raise LeaderLost(key)
            for entry_id, entry in read:
                last = entry_id.decode()
                if b"error" in entry:
                    raise UpstreamError(entry[b"error"].decode())
                chunk = Chunk(**orjson.loads(entry[b"c"]))
                yield chunk
                if chunk.done:
                    return

    async def _read(
        self, stream: str, after: str, block: int | None
    ) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """The stream's entries after `after`, waiting up to `block` ms for the first."""
        read: Any = await self._client.xread({stream: after}, count=256, block=block)
        return cast(list[tuple[bytes, dict[bytes, bytes]]], read[0][1] if read else [])
