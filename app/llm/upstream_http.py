"""What the pool's HTTP backends share: a streamed request, its failures as the project's errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from http.cookiejar import Cookie, CookieJar
from typing import Any

import httpx

from app.core import tracing
from app.core.errors import (
    InvalidRequest,
    LlamaradaError,
    ModelNotFound,
    Overloaded,
    UpstreamError,
    UpstreamUnavailable,
)
from app.llm.base import ModelInfo


class _NoJar(CookieJar):
    """A cookie jar that stores nothing, however a cookie is given to it."""

    def set_cookie(self, cookie: Cookie) -> None:
        """Store nothing."""


class _NoCookies(httpx.Cookies):
    """httpx's cookies over a jar that stores nothing; answers are not even read for them."""

    def __init__(self) -> None:
        super().__init__(_NoJar())

    def extract_cookies(self, response: httpx.Response) -> None:
        """Read nothing of the answer (httpx would copy the request's headers to look)."""


class UpstreamClient(httpx.AsyncClient):
    """The HTTP client of one model server: httpx's, keeping no cookies.

    The gateway calls a server for every caller, so a cookie one answer set must not go out
    with another caller's request. Keeping none also spares httpx, on every answer, a copy of
    the request's headers that costs it time in the square of their number."""

    @property
    def cookies(self) -> httpx.Cookies:
        """Always empty."""
        return _NO_COOKIES

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        raise TypeError("an upstream client keeps no cookies")


_NO_COOKIES = _NoCookies()


@asynccontextmanager
async def streamed(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    *,
    where: str,
    refused: Callable[[httpx.Response], Awaitable[LlamaradaError]],
    **kwargs: Any,
) -> AsyncIterator[httpx.Response]:
    """A streamed response with a 2xx status; `refused` names the error for any other, and a
    failure before the answer's head is `UpstreamUnavailable` (`where` names the server)."""
    request = client.build_request(method, path, **kwargs)
    # The trace goes on upstream. Set on the request built: passed to `build_request`, httpx
    # would merge it with the client's headers at three times the cost.
    for name, value in (tracing.outgoing_headers() or {}).items():
        request.headers[name] = value
    try:
        response = await client.send(request, stream=True)
        try:
            if not response.is_success:
                await response.aread()
                raise await refused(response)
            yield response
        finally:
            await response.aclose()
    except httpx.ConnectError:
        raise UpstreamUnavailable(f"cannot connect to {where}") from None
    except httpx.TimeoutException:
        raise UpstreamUnavailable(f"{where} timed out") from None
    except httpx.RequestError as exc:
        # Dropped, reset, or an empty or truncated head: the server is gone before it answered,
        # which is what "unavailable" means to the pool (it fails over).
        raise UpstreamUnavailable(f"{where} failed: {exc}") from None


async def status_error(
    response: httpx.Response,
    model: str,
    *,
    server: str,
    models: Callable[[], Awaitable[list[ModelInfo]]],
) -> LlamaradaError:
    """The project's error for a server's non-2xx answer; 401 and 403 too are `UpstreamError`:
    the gateway's key for the server is wrong, not the caller's request."""
    message = _error_message(response)
    status = response.status_code
    if status == 404 and model:
        try:
            names = [info.name for info in await models()]
        except LlamaradaError:
            names = []
        return ModelNotFound(model, names)
    if status in (400, 422):
        return InvalidRequest(message)
    if status == 429:
        return Overloaded(message, retry_after=_retry_after(response))
    if status == 503:
        return UpstreamUnavailable(message, retry_after=_retry_after(response))
    return UpstreamError(f"{server} answered {status}: {message}")


def _error_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict):
        error = error.get("message")
    return str(error or response.text[:200] or response.reason_phrase)


def _retry_after(response: httpx.Response) -> int:
    try:
        return max(1, int(response.headers.get("retry-after", "5")))
    except ValueError:
        return 5
