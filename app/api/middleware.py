"""ASGI middleware: request ids and access logs, and the request body size limit.

The access log line holds the method, path (never the query string), status, duration, cache
result and the caller's key name: no header, so no key, ever reaches the logs.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Mapping

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import error_response
from app.api.tracing import end_server_span, server_span
from app.core.logging import request_id_var

logger = logging.getLogger("app.access")

_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class RequestContextMiddleware:
    """Takes or makes `X-Request-ID`, echoes it, and logs one line per request when it ends;
    while tracing is on, the request is a server span, and the line carries its ids."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])  # built in C: no Python step a header
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _VALID_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status: int | None = None
        cache = None

        async def send_with_id(message: Message) -> None:
            nonlocal status, cache
            if message["type"] == "http.response.start":
                status = message["status"]
                answer = MutableHeaders(scope=message)
                answer["X-Request-ID"] = request_id
                # No browser may read an API answer as HTML, whatever text it holds.
                answer.setdefault("X-Content-Type-Options", "nosniff")
                cache = answer.get("x-cache")
            await send(message)

        with server_span(scope, headers) as span:
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                end_server_span(span, scope, status)
                logger.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": 500 if status is None else status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                        "cache": cache,
                        "key": _caller_name(scope),
                    },
                )
                request_id_var.reset(token)


def _caller_name(scope: Scope) -> str | None:
    """The name of the key that made the request (never the key), once AccessMiddleware ran."""
    principal = scope.get("state", {}).get("principal")
    return getattr(principal, "name", None)


class BodyLimitMiddleware:
    """Answers 413 when a request body is over the limit, declared or streamed.

    `overrides` maps path prefixes to their own limits (uploads need more than JSON calls);
    the longest matching prefix wins.
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, overrides: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.overrides = sorted((overrides or {}).items(), key=lambda item: -len(item[0]))

    def limit_for(self, path: str) -> int:
        """The body limit for a request path."""
        for prefix, limit in self.overrides:
            if path.startswith(prefix):
                return limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes = self.limit_for(scope["path"])
        declared = Headers(scope=scope).get("content-length")
        if declared and declared.isdigit() and int(declared) > max_bytes:
            await _too_large(scope, send, max_bytes)
            return
        seen = 0
        too_large = False

        async def counting_receive() -> Message:
            nonlocal seen, too_large
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > max_bytes:
                    # Stop the app reading; it sees a client that left, and we answer 413.
                    too_large = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not too_large:
                await send(message)

        await self.app(scope, counting_receive, guarded_send)
        if too_large:
            await _too_large(scope, send, max_bytes)


async def _too_large(scope: Scope, send: Send, max_bytes: int) -> None:
    message = f"the request body is over the {max_bytes}-byte limit"
    # The route's own dialect of the error body (Anthropic's on /v1/messages).
    response = error_response(Request(scope), 413, "payload_too_large", message)
    await send({"type": "http.response.start", "status": 413, "headers": response.raw_headers})
    await send({"type": "http.response.body", "body": response.body})
