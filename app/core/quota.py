"""Per-key quotas: requests and tokens per minute, counted in Redis, or per process without it.

Each budget is a sliding window of one minute, estimated from two fixed windows (this minute's
count plus the last minute's, weighted by how much of it still overlaps the last 60 s): smooth
at the boundary, two counters per key, one atomic script per check. A request is counted when it
is admitted; its tokens are counted when its answers end (`record_tokens`, from the final chunk's
counters) and checked before the key's next request that may generate (a POST).

When Redis cannot answer (down, slow, out of pooled connections, any error at all), the counts
move to this process: limits stay on (each process then counts alone, so N processes allow up to
N times the budget until Redis is back), the outage is logged once, and Redis is tried again
after a short pause.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol, TypeVar, cast

from app.core.auth import Principal
from app.core.config import QuotaSettings
from app.core.errors import QuotaExceeded
from app.core.outage import Outage, redis_client

logger = logging.getLogger(__name__)

T = TypeVar("T")
WINDOW = 60  # seconds
KEY_PREFIX = "llamarada:quota:"
# KEYS: last window's counter, this window's. ARGV: limit, cost, weight of the last window,
# whether to count the cost when it fits, TTL. Returns {fits, last, this}.
_TAKE = """
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local this = tonumber(redis.call('GET', KEYS[2]) or '0')
local limit, cost, weight = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if last * weight + this + cost > limit then
  return {0, last, this}
end
if ARGV[4] == '1' then
  redis.call('INCRBY', KEYS[2], cost)
  redis.call('EXPIRE', KEYS[2], ARGV[5])
end
return {1, last, this}
"""


@dataclass
class Usage:
    """Tokens the current request's answers used, filled in by the completion pipeline."""

    tokens: int = 0


usage_var: ContextVar[Usage | None] = ContextVar("llamarada_usage", default=None)


def record_tokens(count: int) -> None:
    """Add tokens to the current request's usage (nothing outside a metered request)."""
    usage = usage_var.get()
    if usage is not None and count > 0:
        usage.tokens += count


def wait_seconds(last: int, this: int, elapsed: float, limit: int, cost: int) -> float:
    """Seconds until `cost` more fits under `limit`; 0 when it fits now.

    The estimate is `last * (1 - t / WINDOW) + this` at `t` seconds into this window.
    """
    if last * (1 - elapsed / WINDOW) + this + cost <= limit:
        return 0.0
    if this + cost <= limit:  # wait for the last window's share to fade enough
        return WINDOW * (1 - (limit - this - cost) / last) - elapsed
    if cost > limit:
        return float(WINDOW)  # never fits: say a minute rather than forever
    # This window alone is over: the next one starts, then this one's share must fade.
    return WINDOW - elapsed + WINDOW * max(0.0, 1 - (limit - cost) / this)


class Counters(Protocol):
    """Counts per key and window."""

    async def take(
        self, key: str, window: int, weight: float, limit: int, cost: int, count: bool
    ) -> tuple[bool, int, int]:
        """Whether `cost` fits (counting it if asked), and the two windows' counts before."""

    async def add(self, key: str, window: int, amount: int) -> None:
        """Count `amount` in the window whatever the limit."""


class MemoryCounters:
    """One process's counts: the fallback, and the store when there is no Redis."""

    def __init__(self) -> None:
        self._counts: dict[str, dict[int, int]] = {}

    async def take(
        self, key: str, window: int, weight: float, limit: int, cost: int, count: bool
    ) -> tuple[bool, int, int]:
        """Whether `cost` fits (counting it if asked), and the two windows' counts before."""
        counts = self._windows(key, window)
        last, this = counts.get(window - 1, 0), counts.get(window, 0)
        fits = last * weight + this + cost <= limit
        if fits and count:
            counts[window] = this + cost
        return fits, last, this

    async def add(self, key: str, window: int, amount: int) -> None:
        """Count `amount` in the window whatever the limit."""
        counts = self._windows(key, window)
        counts[window] = counts.get(window, 0) + amount

    def _windows(self, key: str, window: int) -> dict[int, int]:
        counts = self._counts.setdefault(key, {})
        for old in [w for w in counts if w < window - 1]:
            del counts[old]
        return counts


class RedisCounters:
    """Counts shared by every process, in Redis."""

    def __init__(self, url: str, *, max_connections: int = 64, timeout: float = 2.0) -> None:
        self._client = redis_client(url, max_connections=max_connections, timeout=timeout)
        self._take = self._client.register_script(_TAKE)

    async def take(
        self, key: str, window: int, weight: float, limit: int, cost: int, count: bool
    ) -> tuple[bool, int, int]:
        """Whether `cost` fits (counting it if asked), and the two windows' counts before."""
        keys = [f"{KEY_PREFIX}{key}:{window - 1}", f"{KEY_PREFIX}{key}:{window}"]
        args: list[int | str] = [limit, cost, repr(weight), "1" if count else "0", 2 * WINDOW + 10]
        fits, last, this = cast(list[int], await self._take(keys=keys, args=args))
        return bool(fits), int(last), int(this)

    async def add(self, key: str, window: int, amount: int) -> None:
        """Count `amount` in the window whatever the limit."""
        name = f"{KEY_PREFIX}{key}:{window}"
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.incrby(name, amount)
            pipe.expire(name, 2 * WINDOW + 10)
            await pipe.execute()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


class Quotas:
    """Admits requests within each key's budgets and charges the tokens they used."""

    def __init__(
        self,
        settings: QuotaSettings,
        redis_url: str | None = None,
        *,
        max_connections: int = 64,
        clock: Callable[[], float] = time.time,
        retry_pause: float = 1.0,
    ) -> None:
        self.settings = settings
        self._redis = (
            RedisCounters(redis_url, max_connections=max_connections) if redis_url else None
        )
        self._memory = MemoryCounters()
        self._clock = clock
        self._outage = Outage(
            logger,
            "quota store unavailable, counting in this process",
            "quota store available again",
            retry_pause=retry_pause,
        )

    @property
    def name(self) -> str:
        """Where the counts live now."""
        return "redis" if self._redis is not None and not self._outage.down else "memory"

    def limits(self, caller: Principal) -> tuple[int, int]:
        """The caller's requests and tokens per minute (0: no limit)."""
        rpm = self.settings.rpm if caller.rpm is None else caller.rpm
        tpm = self.settings.tpm if caller.tpm is None else caller.tpm
        return rpm, tpm

    async def admit(self, caller: Principal, *, generates: bool) -> None:
        """Count a request, or raise QuotaExceeded with the seconds to wait."""
        rpm, tpm = self.limits(caller)
        if tpm and generates:
            await self._take(f"tpm:{caller.name}", tpm, cost=1, count=False, what="tokens")
        if rpm:
            await self._take(f"rpm:{caller.name}", rpm, cost=1, count=True, what="requests")

    async def charge(self, caller: Principal, tokens: int) -> None:
        """Count the tokens a request's answers used."""
        if tokens <= 0 or not self.limits(caller)[1]:
            return
        window = int(self._clock() // WINDOW)
        await self._call(lambda counters: counters.add(f"tpm:{caller.name}", window, tokens))

    async def reserve(self, caller: Principal, tokens: int) -> int:
        """Take `tokens` of the caller's budget before generating (QuotaExceeded when they do
        not fit); returns what was taken, 0 without a token limit. `refund` gives back the part
        an answer did not use."""
        tpm = self.limits(caller)[1]
        if not tpm or tokens <= 0:
            return 0
        await self._take(f"tpm:{caller.name}", tpm, cost=tokens, count=True, what="tokens")
        return tokens

    async def refund(self, caller: Principal, tokens: int) -> None:
        """Give back reserved tokens that went unused."""
        if tokens > 0 and self.limits(caller)[1]:
            window = int(self._clock() // WINDOW)
            await self._call(lambda counters: counters.add(f"tpm:{caller.name}", window, -tokens))

    async def aclose(self) -> None:
        """Close the Redis connections."""
        if self._redis is not None:
            await self._redis.aclose()

    async def _take(self, key: str, limit: int, *, cost: int, count: bool, what: str) -> None:
        now = self._clock()
        window, elapsed = int(now // WINDOW), now % WINDOW
        weight = 1 - elapsed / WINDOW
        fits, last, this = await self._call(
            lambda counters: counters.take(key, window, weight, limit, cost, count)
        )
        if not fits:
            wait = wait_seconds(last, this, elapsed, limit, cost)
            raise QuotaExceeded(
                f"this API key used its {limit} {what} per minute; try again in "
                f"{math.ceil(wait)} s",
                retry_after=max(1, math.ceil(wait)),
            )

    async def _call(self, work: Callable[[Counters], Awaitable[T]]) -> T:
        """Run `work` on Redis, or on this process's counters while Redis is down."""
        if self._redis is not None and not self._outage.pausing:
            try:
                result = await work(self._redis)
            except Exception as exc:  # whatever went wrong, the counts move to this process
                self._outage.failed(exc)
            else:
                self._outage.succeeded()
                return result
        return await work(self._memory)
