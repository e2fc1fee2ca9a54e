"""Every error becomes one JSON body, `{"error": {"type", "message"}}`, and never a traceback.

On `/v1` the body is OpenAI's: the same object with `param` (the field) and `code` added. On
`/v1/messages` it is Anthropic's, `{"type": "error", "error": {"type", "message"}}`, with 400
for a bad field as Anthropic answers (the message names the field).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from app.core.errors import InvalidRequest, LlamaradaError, ModelNotFound
from app.wire.anthropic_reply import error_body as anthropic_error_body

logger = logging.getLogger(__name__)

ANTHROPIC = "/v1/messages"  # the routes that answer in Anthropic's dialect, errors included


class ErrorDetail(BaseModel):
    """What went wrong; `param` and `code` only on `/v1` (OpenAI's shape)."""

    type: str
    message: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    """Every error's body."""

    error: ErrorDetail


_STATUSES = {
    400: "Bad request: invalid JSON, a Host header this server does not answer for",
    401: "No API key, or one that is not valid",
    403: "The key may not do this (a model outside its scope), or a write from another site",
    404: "Not found, or not the caller's",
    409: "Conflicts with the object's state",
    413: "Body over the size limit",
    415: "A body type the route does not take, or an uploaded file that cannot be read",
    422: "A field is missing or invalid; the message names it",
    429: "The key's quota is used up (Retry-After)",
    502: "The model server answered with an error",
    503: "A dependency is down or every queue is full (Retry-After)",
}


def streamed(media_type: str, what: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` entry of a route that can stream `media_type` instead of JSON."""
    content = {media_type: {"schema": {"type": "string", "description": what}}}
    return {200: {"content": content, "description": "JSON, or the stream when asked"}}


# Documented on every route, so the OpenAPI schema says what clients really get.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text} for status, text in _STATUSES.items()
}


def error_response(
    request: Request,
    status: int,
    error_type: str,
    message: str,
    *,
    retry_after: int | None = None,
    param: str | None = None,
    code: str | None = None,
) -> JSONResponse:
    """The project's one error body, in OpenAI's variant on `/v1`, Anthropic's on `/v1/messages`."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    path = request.url.path
    if path == ANTHROPIC or path.startswith(f"{ANTHROPIC}/"):
        status = 400 if status == 422 else status
        body = anthropic_error_body(status, error_type, message)
        return JSONResponse(body, status_code=status, headers=headers)
    error: dict[str, Any] = {"type": error_type, "message": message}
    if path.startswith("/v1/"):
        error.update(param=param, code=code)
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def describe_validation(exc: RequestValidationError) -> tuple[int, str, str | None]:
    """Status, a message naming each bad field, and the first field; bad JSON is a 400."""
    problems, fields = [], []
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            detail = error.get("ctx", {}).get("error", "invalid JSON")
            return 400, f"the request body is not valid JSON: {detail}", None
        loc = [str(part) for part in error.get("loc", ()) if part != "body" and _is_field(part)]
        field = ".".join(loc) or "body"
        fields.append(field)
        problems.append(f"{field}: {error.get('msg', 'invalid value')}")
    return 422, "; ".join(problems), fields[0] if fields else None


# What pydantic puts in an error's location to say which member of a union it tried.
_MEMBER_LABELS = frozenset({"str", "int", "float", "bool", "none"})


def _is_field(part: str | int) -> bool:
    """Whether a part of a validation error's location names a field or an index, not a union
    member (`str`, `list[...]`, a class name, a tag) that the client never wrote."""
    if isinstance(part, int):
        return True
    return part not in _MEMBER_LABELS and "[" not in part and not part[:1].isupper()


def install_error_handlers(app: FastAPI) -> None:
    """Map the project's exceptions, validation errors and anything unexpected to HTTP."""

    @app.exception_handler(LlamaradaError)
    async def project_error(request: Request, exc: LlamaradaError) -> JSONResponse:
        return error_response(
            request,
            exc.status_code,
            exc.error_type,
            exc.message,
            retry_after=exc.retry_after,
            param=exc.field if isinstance(exc, InvalidRequest) else None,
            code="model_not_found" if isinstance(exc, ModelNotFound) else None,
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        status, message, field = describe_validation(exc)
        return error_response(request, status, "invalid_request_error", message, param=field)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return error_response(request, exc.status_code, kind, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
        return error_response(request, 500, "internal_error", "internal error; see the server log")
