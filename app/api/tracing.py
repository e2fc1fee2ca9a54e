"""The server span of an HTTP request, continuing the client's `traceparent`.

`RequestContextMiddleware` wraps each request in it (one layer for the request id, the access
line and the span: the line then carries the span's ids). The span holds the method, route, path
(never the query string) and status; no header, so no key, ever reaches it.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import Scope

from app.core import tracing

_PROPAGATED = (b"traceparent", b"tracestate")


def server_span(scope: Scope, headers: dict[bytes, bytes]) -> AbstractContextManager[tracing.Span]:
    """The request's span, named by its method until it is routed (a no-op while tracing is
    off); `headers`: the request's, as a dict."""
    if not tracing.enabled():
        return tracing.span("")  # the shared no-op: no span, no context
    parent = None
    if b"traceparent" in headers:  # tracestate means nothing without it
        carried = {
            name.decode("latin-1"): headers[name].decode("latin-1")
            for name in _PROPAGATED
            if name in headers
        }
        parent = tracing.context_from(carried)
    method = scope["method"]
    attributes = {"http.request.method": method, "url.path": scope["path"]}
    return tracing.span(
        method, attributes, kind=SpanKind.SERVER, parent=parent or tracing.root_context()
    )


def end_server_span(span: tracing.Span, scope: Scope, status: int | None) -> None:
    """Name the span by its route and give it the answer's status (None: no answer began)."""
    if not span.is_recording():
        return
    if status is not None:
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
    route = getattr(scope.get("route"), "path", None)
    if route:
        span.update_name(f"{scope['method']} {route}")
        span.set_attribute("http.route", route)
