"""Outside systems that may go away: a Redis client on a bounded pool whose commands wait for a
connection, and the outage state, logged once and retried later."""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

# Seconds a command waits for a free pooled connection before failing. A full pool on a busy
# event loop drains in a few seconds; failing sooner would report an outage that is only load.
POOL_WAIT = 5.0


def redis_client(url: str, *, max_connections: int, timeout: float) -> aioredis.Redis:
    """A client on a bounded pool: commands wait for a free connection instead of failing,
    and a connection broken by a restart is reconnected and the command sent once more."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=POOL_WAIT,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        # redis-py's default retries a failing command ten times with back-off, holding its
        # connection for seconds while Redis is down: one immediate retry, for stale sockets.
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    )
    return aioredis.Redis.from_pool(pool)


class Outage:
    """Tracks one dependency's outages: one warning when it fails, one line when it is back,
    and a pause after each failure before it is tried again."""

    def __init__(
        self, logger: logging.Logger, down: str, up: str, *, retry_pause: float = 1.0
    ) -> None:
        self._logger = logger
        self._down_message = down
        self._up_message = up
        self._retry_pause = retry_pause
        self._retry_at = 0.0
        self.down = False

    @property
    def pausing(self) -> bool:
        """True while down and the pause since the last failure has not passed."""
        return self.down and time.monotonic() < self._retry_at

    def failed(self, exc: Exception) -> None:
        """Record a failure: start a pause, and warn if this begins an outage."""
        self._retry_at = time.monotonic() + self._retry_pause
        if not self.down:
            self.down = True
            self._logger.warning(self._down_message, extra={"error": str(exc)})

    def succeeded(self) -> None:
        """Record a success: the outage, if any, is over."""
        if self.down:
            self.down = False
            self._logger.info(self._up_message)
