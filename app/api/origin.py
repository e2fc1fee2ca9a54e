"""Browser requests: writes from other sites are refused, and bodies must say they are JSON.

A page on another site can make a browser send a "simple" request (a POST with a text, form
or multipart body, `mode: "no-cors"`) without asking CORS first; with no API keys set, nothing
else would stop it. Browsers name where every such request comes from (`Sec-Fetch-Site`,
`Origin`); curl and the SDKs send neither. So, for every route:

- POST, PUT, PATCH and DELETE from another site get 403 unless LLAMARADA_CORS_ORIGINS lists
  the origin (the decision of Go's `net/http.CrossOriginProtection`: `Sec-Fetch-Site` when
  sent, else `Origin` against `Host`; `Origin: null` is never the same site);
- a body must be JSON or a type its route documents in the OpenAPI schema (multipart uploads,
  JSONL); 415 otherwise. A body with no type, or a form or text type, is read as JSON, as
  Ollama does (`curl -d`), only when no browser sent it.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.errors import error_response

CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
JSON = "application/json"
# What curl -d and the Ollama clients send, or nothing: read as JSON when no browser sent it.
UNDECLARED = frozenset({"", "application/x-www-form-urlencoded", "text/plain"})
_SAME = frozenset({"same-origin", "none"})  # `none`: the user's own navigation


def cross_site(origin: str | None, fetch_site: str | None, host: str) -> str | None:
    """The header that shows a request came from another site, or None when it did not."""
    if fetch_site is not None:
        return None if fetch_site in _SAME else f"Sec-Fetch-Site: {fetch_site}"
    if origin is None:
        return None  # not a browser, or an old one on its own origin
    netloc = urlsplit(origin).netloc.lower() if origin != "null" else ""
    host = host.lower()
    if netloc and netloc == host:
        return None
    if netloc and _name(host) == host == _name(netloc):
        return None  # a proxy may pass Host without the port (nginx's $host): the name decides
    return f"Origin: {origin}"


def _name(netloc: str) -> str:
    """`host:port` -> `host` (`[::1]:80` -> `[::1]`)."""
    name, colon, port = netloc.rpartition(":")
    return name if colon and port.isdigit() else netloc


class OriginCheckMiddleware:
    """Refuses cross-site writes (403) and body types the route does not take (415)."""

    def __init__(self, app: ASGIApp, trusted: list[str]) -> None:
        self.app = app
        self.trusted = frozenset(trusted)
        self.any_origin = "*" in self.trusted
        self._documented: list[tuple[str, re.Pattern[str], frozenset[str]]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in CHANGES:
            await self.app(scope, receive, send)
            return
        origin = fetch_site = None
        host = kind = ""
        has_body = False
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"sec-fetch-site":
                fetch_site = value.decode("latin-1").lower()
            elif name == b"host":
                host = value.decode("latin-1")
            elif name == b"content-type":
                kind = value.decode("latin-1").split(";")[0].strip().lower()
            elif name == b"content-length":
                has_body = value.strip() not in (b"0", b"")
            elif name == b"transfer-encoding":
                has_body = True
        if not (self.any_origin or origin in self.trusted):
            reason = cross_site(origin, fetch_site, host)
            if reason is not None:
                message = (
                    f"a page on another site may not change anything here ({reason[:120]}); "
                    "list its origin in LLAMARADA_CORS_ORIGINS to allow it"
                )
                await _refuse(scope, receive, send, 403, "cross_site_request", message)
                return
        if has_body and scope["method"] in WITH_BODY and not _is_json(kind):
            browser = origin is not None or fetch_site is not None
            if kind in UNDECLARED and not browser:
                # Bodies without a declared type are JSON, as Ollama reads them.
                scope["headers"] = [(n, v) for n, v in scope["headers"] if n != b"content-type"] + [
                    (b"content-type", JSON.encode())
                ]
            else:
                accepted = self._accepted(scope)
                if accepted is not None and kind not in accepted:
                    message = (
                        f"the request body must be sent as {' or '.join(sorted(accepted))}"
                        f" (Content-Type: {kind or 'none'})"
                    )
                    await _refuse(scope, receive, send, 415, "unsupported_media_type", message)
                    return
        await self.app(scope, receive, send)

    def _accepted(self, scope: Scope) -> frozenset[str] | None:
        """The body types the OpenAPI schema documents for this route; None: no such route."""
        if self._documented is None:
            self._documented = documented_bodies(scope["app"])
        for method, pattern, types in self._documented:
            if method == scope["method"] and pattern.match(scope["path"]):
                return types
        return None


def documented_bodies(app: FastAPI) -> list[tuple[str, re.Pattern[str], frozenset[str]]]:
    """Each route's method, path pattern and documented body types (JSON when none is)."""
    paths = app.openapi().get("paths", {})
    table = []
    for route in iter_route_contexts(app.routes):  # included routers' routes too
        if not isinstance(route.original_route, APIRoute):
            continue
        for method in sorted((route.methods or set()) & WITH_BODY):
            operation = paths.get(route.path_format, {}).get(method.lower(), {})
            types = frozenset(operation.get("requestBody", {}).get("content", {})) | {JSON}
            table.append((method, route.path_regex, types))
    return table


def _is_json(kind: str) -> bool:
    return kind == JSON or kind.endswith("+json")


async def _refuse(
    scope: Scope, receive: Receive, send: Send, status: int, error_type: str, message: str
) -> None:
    header = "Content-Type" if status == 415 else None
    response = error_response(Request(scope), status, error_type, message, param=header)
    await response(scope, receive, send)
