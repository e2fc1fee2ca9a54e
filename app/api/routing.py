"""The route class every router uses: JSON bodies parsed once, by orjson, with clear 4xx.

FastAPI would parse with the standard library, which accepts `NaN`, `Infinity`, `1e400` and lone
surrogates, values that later break the cache key or an upstream's encoder. The body is parsed
here instead (`app.wire.codec.loads`), before FastAPI reads it, and FastAPI validates the result.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import params
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from app.wire.codec import loads

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class JsonBodyRoute(APIRoute):
    """An APIRoute whose JSON body is parsed by `app.wire.codec.loads`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """FastAPI's handler, behind a parse of the JSON body for routes that take one."""
        handler = super().get_route_handler()
        field = self.body_field
        if field is None or isinstance(field.field_info, params.Form):
            return handler

        async def parse_then_handle(request: Request) -> Response:
            if request.method in _BODY_METHODS and _is_json(request.headers.get("content-type")):
                try:
                    body = await request.body()
                except ClientDisconnect:  # gone, or cut off by the body limit, which answers 413
                    return Response(status_code=400)
                if body:
                    # Starlette's Request.json() returns this instead of parsing again.
                    request._json = loads(body)
            return await handler(request)

        return parse_then_handle


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    kind = content_type.partition(";")[0].strip().lower()
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )
