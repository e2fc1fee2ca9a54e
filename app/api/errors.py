"""Every error becomes one JSON body, `{"error": {"type", "message"}}`, and never a traceback."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from app.core.errors import LlamaradaError

logger = logging.getLogger(__name__)


def error_response(
    status: int, error_type: str, message: str, *, retry_after: int | None = None
) -> JSONResponse:
    """The project's one error body."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse(
        {"error": {"type": error_type, "message": message}}, status_code=status, headers=headers
    )


def describe_validation(exc: RequestValidationError) -> tuple[int, str]:
    """Status and message naming each bad field; malformed JSON is a 400."""
    problems = []
    for error in exc.errors():
        if error.get("type") == "json_invalid":
            detail = error.get("ctx", {}).get("error", "invalid JSON")
            return 400, f"the request body is not valid JSON: {detail}"
        loc = [str(part) for part in error.get("loc", ()) if part != "body"]
        field = ".".join(loc) or "body"
        problems.append(f"{field}: {error.get('msg', 'invalid value')}")
    return 422, "; ".join(problems)


def install_error_handlers(app: FastAPI) -> None:
    """Map the project's exceptions, validation errors and anything unexpected to HTTP."""

    @app.exception_handler(LlamaradaError)
    async def project_error(_: Request, exc: LlamaradaError) -> JSONResponse:
        return error_response(
            exc.status_code, exc.error_type, exc.message, retry_after=exc.retry_after
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        status, message = describe_validation(exc)
        return error_response(status, "invalid_request_error", message)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return error_response(exc.status_code, kind, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
        return error_response(500, "internal_error", "internal error; see the server log")
