"""ASGI middleware: one server span per HTTP request, continuing the client's `traceparent`.

The span holds the method, route, path (never the query string) and status; no header, so no
key, ever reaches it. Added only when tracing is on (`app.core.tracing`).
"""

from __future__ import annotations

from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core import tracing

_PROPAGATED = (b"traceparent", b"tracestate")


class TracingMiddleware:
    """Wraps each HTTP request in a server span named `METHOD /route/template`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not tracing.enabled():
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])  # built in C: no Python step a header
        parent = None
        if b"traceparent" in headers:  # tracestate means nothing without it
            carried = {
                name.decode("latin-1"): headers[name].decode("latin-1")
                for name in _PROPAGATED
                if name in headers
            }
            parent = tracing.context_from(carried)
        parent = parent or tracing.root_context()
        method = scope["method"]
        attributes = {"http.request.method": method, "url.path": scope["path"]}
        with tracing.span(method, attributes, kind=SpanKind.SERVER, parent=parent) as span:

            async def send_traced(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status = message["status"]
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                await send(message)

            try:
                await self.app(scope, receive, send_traced)
            finally:
                route = getattr(scope.get("route"), "path", None)
                if route:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
