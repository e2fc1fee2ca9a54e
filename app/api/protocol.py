"""The HTTP/1.1 protocol `llamarada serve` runs: uvicorn's httptools one, bounded per request.

httptools has no header size limit (uvicorn hands its own only to h11) and uvicorn no read
timeout (only an idle one between requests), so one client could send an endless header, or
hold a connection for ever by sending a byte now and then. Here, as nginx does in compose:

- the request line and headers over `max_head` bytes get 431 and the connection closes;
- a head not complete `header_timeout` seconds after the connection opened (or after its first
  byte, on a kept-alive connection) gets 408;
- a body that stops arriving for `body_timeout` seconds gets 408 (time the app itself leaves
  the body unread does not count).

One timer per connection, re-armed only when it fires, keeps the cost per request to a few
attribute updates: nothing is scheduled or cancelled per request on a busy connection.
"""

from __future__ import annotations

import asyncio
import json
from enum import Enum
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

DEFAULT_MAX_HEAD = 16_384


class Owed(Enum):
    """What the server waits for from the client."""

    HEAD = "head"
    BODY = "body"
    NOTHING = "nothing"  # refused: the connection is closing


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a head size limit and head/body read timeouts."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        header_timeout: float = 15.0,
        body_timeout: float = 60.0,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        # `llamarada serve` passes its head limit to uvicorn under h11's name for it.
        self.max_head = config.h11_max_incomplete_event_size or DEFAULT_MAX_HEAD
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.owed = Owed.HEAD
        self.head_bytes = 0
        self.head_started: float | None = None  # None: no byte of the next head yet
        self.last_read = 0.0
        self.refused = False
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # A connection that never sends a head is closed too (uvicorn's idle timer starts
        # only after a first response).
        self.head_started = self.loop.time()
        self._arm(self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return
        if self.owed is Owed.HEAD:
            self.head_bytes += len(data)
        elif self.owed is Owed.BODY:
            self.last_read = self.loop.time()
        super().data_received(data)
        # Checked after parsing: a chunk that also holds the head's end and a body is fine
        # (on_headers_complete measured that head exactly).
        if self.owed is Owed.HEAD and self.head_bytes > self.max_head and not self.refused:
            self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.head_started is None:
            self.head_started = self.loop.time()
            self._arm(self.header_timeout)

    def on_headers_complete(self) -> None:
        if self.refused:  # a request pipelined behind a refused one
            return
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.max_head:
            self._refuse_head()
            return
        self.owed = Owed.BODY
        self.head_bytes = 0
        self.head_started = None
        self.last_read = self.loop.time()
        super().on_headers_complete()
        self._arm(self.body_timeout)

    def on_body(self, body: bytes) -> None:
        if not self.refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self.refused:
            return
        self.owed = Owed.HEAD
        super().on_message_complete()

    def _arm(self, delay: float) -> None:
        """Make sure the timer fires within `delay` seconds."""
        when = self.loop.time() + delay
        if self.timer is not None:
            if self.timer.when() <= when:
                return
            self.timer.cancel()
        self.timer = self.loop.call_at(when, self._check)

    def _check(self) -> None:
        """Fires at the earliest a deadline could pass; re-arms for what is left, or acts."""
        self.timer = None
        if self.refused or self.transport.is_closing() or self.transport.get_protocol() is not self:
            return  # done, or handed over (a WebSocket upgrade)
        now = self.loop.time()
        if self.flow.read_paused:  # the app has not taken what came: not the client's doing
            if self.head_started is not None:
                self.head_started = now
            self.last_read = now
        if self.owed is Owed.HEAD:
            if self.head_started is None:
                return  # idle between requests: uvicorn's keep-alive timer owns that
            left = self.head_started + self.header_timeout - now
            what = f"the request headers did not arrive within {self.header_timeout:g} s"
        elif self.owed is Owed.BODY:
            left = self.last_read + self.body_timeout - now
            what = f"the request body stopped arriving for {self.body_timeout:g} s"
        else:
            return
        if left > 0:
            self._arm(left)
        elif self.owed is Owed.HEAD and self.head_bytes == 0:
            self.transport.close()  # never sent a byte (a browser's spare connection)
        else:
            self._refuse(408, "request_timeout", what)

    def _refuse_head(self) -> None:
        message = f"the request line and headers are over the {self.max_head}-byte limit"
        self._refuse(431, "request_header_too_large", message)

    def _refuse(self, status: int, error_type: str, message: str) -> None:
        """Answer with the project's error body unless a response began, then close."""
        self.refused = True
        self.owed = Owed.NOTHING
        cycle = self.cycle
        started = cycle is not None and cycle.response_started and not cycle.response_complete
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app sees a client that left, and writes nothing
            cycle.message_event.set()
        if not started:
            body = json.dumps({"error": {"type": error_type, "message": message}}).encode()
            head = [
                STATUS_LINE[status],
                b"content-type: application/json\r\n",
                b"content-length: %d\r\n" % len(body),
                b"connection: close\r\n\r\n",
            ]
            self.transport.write(b"".join([*head, body]))
        self.transport.close()
