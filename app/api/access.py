"""Who may reach the API: the Host header allowlist, API keys and quotas, as ASGI middleware.

`/api/...`, `/v1/...` and `/mcp` need a key when keys are configured; `/health/*`, `/metrics`, the
browser app and the OpenAPI docs do not (nginx hides `/metrics` from the outside). The caller
found here reaches the routes as `request.state.principal` (`app.api.deps.PrincipalDep`).
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.errors import error_response
from app.core.auth import ANONYMOUS, KeyRing, Principal, presented_key
from app.core.errors import LlamaradaError, QuotaExceeded, Unauthorized
from app.core.quota import Quotas, Usage, usage_var

PROTECTED = ("/api/", "/v1/", "/mcp")
_MISSING = "an API key is needed: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'"
_INVALID = "the API key is not valid"


def host_of(header: str) -> str:
    """The host part of a Host header, lowercased: `[::1]:8000` -> `[::1]`."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[: header.find("]") + 1] if "]" in header else header
    name, colon, port = header.rpartition(":")
    return name if colon and port.isdigit() else header


def host_allowed(host: str, allowed: list[str]) -> bool:
    """Whether a host matches the allowlist: exact names, `*`, or `*.example.com`."""
    for pattern in allowed:
        if pattern == "*" or host == pattern:
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


class HostCheckMiddleware:
    """Answers 400 to a Host header outside the allowlist (a DNS-rebinding page gets nothing),
    and to a request with more than one: the parts behind a proxy could read different ones."""

    def __init__(self, app: ASGIApp, allowed: list[str]) -> None:
        self.app = app
        self.allowed = [host.lower() for host in allowed]
        self.any_host = "*" in self.allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            hosts = [value for name, value in scope["headers"] if name == b"host"]
            message = None
            if len(hosts) > 1:
                message = "a request may carry one Host header"
            elif not self.any_host:
                host = host_of(hosts[0].decode("latin-1") if hosts else "")
                if not host_allowed(host, self.allowed):
                    message = "this server does not answer for that Host header"
            if message is not None:
                response = error_response(Request(scope), 400, "invalid_host", message)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class AccessMiddleware:
    """Finds the caller of `/api` and `/v1` requests, applies its quotas, charges its tokens."""

    def __init__(self, app: ASGIApp, keys: KeyRing | None) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED):
            await self.app(scope, receive, send)
            return
        quotas: Quotas | None = getattr(scope["app"].state, "quotas", None)
        try:
            caller = self._caller(Headers(scope=scope))
            if quotas is not None:
                await quotas.admit(caller, generates=scope["method"] == "POST")
        except LlamaradaError as exc:
            await _refuse(scope, receive, send, exc)
            return
        scope.setdefault("state", {})["principal"] = caller
        usage = Usage()
        token = usage_var.set(usage)
        try:
            await self.app(scope, receive, send)
        finally:
            usage_var.reset(token)
            if quotas is not None:
                await quotas.charge(caller, usage.tokens)

    def _caller(self, headers: Headers) -> Principal:
        if self.keys is None:
            return ANONYMOUS
        key = presented_key(headers)
        if key is None:
            raise Unauthorized(_MISSING)
        caller = self.keys.authenticate(key)
        if caller is None:
            raise Unauthorized(_INVALID)
        return caller


async def _refuse(scope: Scope, receive: Receive, send: Send, exc: LlamaradaError) -> None:
    codes = {Unauthorized: "invalid_api_key", QuotaExceeded: "rate_limit_exceeded"}
    response = error_response(
        Request(scope),
        exc.status_code,
        exc.error_type,
        exc.message,
        retry_after=exc.retry_after,
        code=codes.get(type(exc)),
    )
    if isinstance(exc, Unauthorized):
        response.headers["WWW-Authenticate"] = 'Bearer realm="llamarada"'
    await response(scope, receive, send)
