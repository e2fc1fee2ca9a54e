"""Graceful drain: on SIGTERM, unready at once, new requests refused, streams in flight finished.

Kubernetes (and compose) stop a replica with SIGTERM, then SIGKILL after a grace period. On the
first SIGTERM or SIGINT a process here turns unready (`/health/ready` answers 503, so the load
balancer stops sending to it), answers every new request with 503 and Retry-After on a closing
connection, and lets the requests in flight, streams included, run until they end or
`LLAMARADA_SERVER__DRAIN_TIMEOUT` passes. Then it hands the signal to uvicorn, whose own
shutdown closes the listener, cancels what is left and runs the lifespan's shutdown. A second
signal skips the wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Paths still answered while draining: the probes must see the state, Prometheus the end.
PROBES = frozenset({"/health/live", "/health/ready", "/metrics"})
RETRY_AFTER = 1  # seconds: another replica is ready to take the retry


class Drain:
    """One process's drain state and its count of requests in flight."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.draining = False
        self.in_flight = 0
        self._watcher: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def on_signals(self) -> Iterator[None]:
        """While open, the first SIGTERM/SIGINT starts a drain before the server's own handler
        runs; the previous handlers come back when it closes."""
        loop = asyncio.get_running_loop()
        previous: dict[int, Any] = {sig: signal.getsignal(sig) for sig in SIGNALS}

        def handle(sig: int, frame: FrameType | None) -> None:
            if self.draining:  # a second signal: stop waiting
                _call(previous[sig], sig, frame)
                return
            self.draining = True
            loop.call_soon_threadsafe(self._watch_soon, previous[sig], sig)

        for signum in SIGNALS:
            signal.signal(signum, handle)
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)
            if self._watcher is not None:
                self._watcher.cancel()

    def _watch_soon(self, handler: Any, sig: int) -> None:
        self._watcher = asyncio.get_running_loop().create_task(self._watch(handler, sig))

    async def _watch(self, handler: Any, sig: int) -> None:
        """Wait for the requests in flight (or the deadline), then let the server stop."""
        started = time.monotonic()
        logger.info(
            "draining: unready, refusing new requests, finishing those in flight",
            extra={"in_flight": self.in_flight, "deadline_s": self.timeout},
        )
        while self.in_flight > 0 and time.monotonic() - started < self.timeout:
            await asyncio.sleep(0.05)
        logger.info(
            "drained" if self.in_flight == 0 else "drain deadline passed",
            extra={"in_flight": self.in_flight, "seconds": round(time.monotonic() - started, 2)},
        )
        _call(handler, sig, None)


def _call(handler: Any, sig: int, frame: FrameType | None) -> None:
    """Run a previous signal handler, whatever kind it was."""
    if callable(handler):
        handler(sig, frame)
    elif handler == signal.SIG_DFL:
        signal.signal(sig, signal.SIG_DFL)
        signal.raise_signal(sig)


class DrainMiddleware:
    """Counts requests in flight; while draining, answers new ones (not probes) with 503."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self.app = app
        self.drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.drain.draining and scope["path"] not in PROBES:
            body = json.dumps(
                {
                    "error": {
                        "type": "server_draining",
                        "message": "this server is shutting down; retry, another one will answer",
                    }
                }
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"retry-after", str(RETRY_AFTER).encode()),
                        (b"connection", b"close"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        self.drain.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.drain.in_flight -= 1
