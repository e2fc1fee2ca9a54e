"""Cluster-wide upstream slots: the pool's per-server cap and queue as leases in Redis.

Without Redis every process applies `max_concurrency` and `max_queue` on its own, so N
replicas could send N times the cap to one server. With Redis each running request holds a
lease, a member of a sorted set per server scored by its expiry (Redis' own clock, so replicas
need not agree on the time). A Lua script takes a lease only while fewer than the cap are
alive; a background task pushes the expiry of the leases a process holds forward every third
of the lease time, so a replica that dies (SIGKILL, lost node) stops refreshing and its leases
lapse within `lease_seconds`. Waiters are counted the same way in a second set per server.

When Redis fails, the process falls back to its own limits (logged once, by `Outage`) and
tries Redis again after a pause; leases taken before the outage simply expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import uuid
from collections import defaultdict

from redis.exceptions import RedisError

from app.core.outage import Outage, redis_client

logger = logging.getLogger(__name__)

PREFIX = "llamarada:slots:"
# Seconds between Redis polls of a waiter while the server is full cluster-wide; a release
# in this process wakes local waiters at once.
POLL = 0.05

# Drop expired leases, then take one if fewer than the cap are alive. ARGV: cap, ttl ms, member.
_TAKE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[2]))
return 1
"""

# Push the held leases' expiry forward; XX: a lease released meanwhile is not brought back.
# ARGV: ttl ms, members...
_REFRESH = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[1]))
return #ARGV - 1
"""


def slot_key(server: str) -> str:
    """The sorted set of a server's running leases."""
    return f"{PREFIX}run:{server}"


def queue_key(server: str) -> str:
    """The sorted set of a server's waiters."""
    return f"{PREFIX}wait:{server}"


class ClusterSlots:
    """Leases on upstream servers shared by every process on one Redis; with no Redis URL,
    every call grants at once and the pool's own per-process counts are the only limit."""

    def __init__(
        self,
        redis_url: str | None,
        *,
        max_concurrency: int,
        max_queue: int,
        lease_seconds: float,
        max_connections: int = 16,
    ) -> None:
        self._cap = max_concurrency
        self._max_queue = max_queue
        self._ttl_ms = int(lease_seconds * 1000)
        self._lease_seconds = lease_seconds
        self._redis = (
            None
            if redis_url is None
            else redis_client(
                redis_url,
                max_connections=max_connections,
                timeout=min(2.0, lease_seconds / 3),
            )
        )
        self._outage = Outage(
            logger,
            "Redis is unreachable: upstream limits are per process until it is back",
            "Redis is back: upstream limits are cluster-wide again",
        )
        # Who holds a lease, for operators reading Redis; the random part tells apart two
        # pools of one process.
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._ids = itertools.count()
        self._held: dict[str, list[str]] = defaultdict(list)  # server -> leases held here
        self._unleased: dict[str, int] = defaultdict(int)  # taken while Redis was down
        self._waiting: dict[str, list[str]] = defaultdict(list)
        self._pending: set[asyncio.Task[None]] = set()
        self._refresher: asyncio.Task[None] | None = None

    @property
    def shared(self) -> bool:
        """Whether the limits hold across processes (Redis configured)."""
        return self._redis is not None

    async def start(self) -> None:
        """Keep the leases this process holds alive while it runs."""
        if self._redis is not None:
            self._refresher = asyncio.create_task(self._refresh_loop())

    async def aclose(self) -> None:
        """Stop refreshing, let pending releases land, close the client."""
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        if self._redis is not None:
            await self._redis.aclose()

    def _member(self) -> str:
        return f"{self._owner}:{next(self._ids)}"

    def _reachable(self) -> bool:
        return self._redis is not None and not self._outage.pausing

    async def take(self, server: str) -> bool:
        """Take one of the server's slots; False when the cap is reached cluster-wide."""
        if self._redis is None or not self._reachable():
            self._unleased[server] += 1
            return True
        member = self._member()
        try:
            taken = await self._redis.eval(
                _TAKE, 1, slot_key(server), self._cap, self._ttl_ms, member
            )
        except RedisError as exc:
            self._outage.failed(exc)
            self._unleased[server] += 1
            return True
        self._outage.succeeded()
        if taken:
            self._held[server].append(member)
        return bool(taken)

    def release(self, server: str) -> None:
        """Give back one slot taken by `take` (any one: this process's leases are alike)."""
        if self._unleased[server] > 0:
            self._unleased[server] -= 1
            return
        if self._held[server]:
            self._forget(slot_key(server), self._held[server].pop())

    async def enter_queue(self, server: str) -> bool:
        """Count a waiter for the server; False when its queue is full cluster-wide."""
        if self._redis is None or not self._reachable():
            return True
        member = self._member()
        try:
            entered = await self._redis.eval(
                _TAKE, 1, queue_key(server), self._max_queue, self._ttl_ms, member
            )
        except RedisError as exc:
            self._outage.failed(exc)
            return True
        self._outage.succeeded()
        if entered:
            self._waiting[server].append(member)
        return bool(entered)

    def leave_queue(self, server: str) -> None:
        """A waiter got its slot or gave up."""
        if self._waiting[server]:
            self._forget(queue_key(server), self._waiting[server].pop())

    async def wait(self, freed: asyncio.Event) -> None:
        """Until a slot may be free: a local release, or the next poll when shared."""
        if self._redis is None:
            await freed.wait()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(freed.wait(), POLL)

    def _forget(self, key: str, member: str) -> None:
        """Remove a lease in the background: a release must not wait on, or fail with, Redis."""
        if self._redis is None or not self._reachable():
            return  # it expires on its own
        task = asyncio.get_running_loop().create_task(self._remove(key, member))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _remove(self, key: str, member: str) -> None:
        assert self._redis is not None
        try:
            await self._redis.zrem(key, member)
        except RedisError as exc:
            self._outage.failed(exc)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self._lease_seconds / 3)
            try:
                await self.refresh()
            except Exception:  # the loop must outlive any one failure, or the leases lapse
                logger.exception("refreshing the upstream leases failed")

    async def refresh(self) -> None:
        """Push forward the expiry of every lease and wait this process holds."""
        if self._redis is None or self._outage.pausing:
            return
        held = [(slot_key(s), list(m)) for s, m in self._held.items() if m]
        held += [(queue_key(s), list(m)) for s, m in self._waiting.items() if m]
        try:
            for key, members in held:
                await self._redis.eval(_REFRESH, 1, key, self._ttl_ms, *members)
        except RedisError as exc:
            self._outage.failed(exc)
            return
        self._outage.succeeded()
