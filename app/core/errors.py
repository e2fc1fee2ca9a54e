"""The project's one exception tree; `app.api.errors` maps it to HTTP in one place.

    LlamaradaError                 500 internal_error
    ├── InvalidRequest             400 invalid_request_error (422 when a field is named)
    ├── Unauthorized               401 authentication_error
    ├── Forbidden                  403 permission_error
    ├── ModelNotFound              404 not_found_error
    ├── NotFound                   404 not_found_error
    ├── Conflict                   409 conflict_error
    ├── PayloadTooLarge            413 payload_too_large
    ├── UnsupportedMediaType       415 unsupported_media_type
    ├── QuotaExceeded              429 rate_limit_error, Retry-After
    ├── Overloaded                 503 overloaded_error, Retry-After
    ├── QueueUnavailable           503 queue_unavailable, Retry-After
    └── UpstreamError              502 upstream_error
        └── UpstreamUnavailable    503 upstream_unavailable, Retry-After

`CacheUnavailable` is not in the tree on purpose: the cache fails open and never reaches a client.
Errors of tools that never reach a client as such stay beside their code (`ConfigError`,
`KeyFormatError`, `ModelfileError`, the agent's `ToolError`, ...).
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import ValidationError


class LlamaradaError(Exception):
    """Base of every error Llamarada reports to a client; `retry_after` (seconds) goes out as
    the `Retry-After` header, a class's default unless the raiser gives one."""

    status_code = 500
    error_type = "internal_error"
    retry_after: int | None = None

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retry_after is not None:
            self.retry_after = retry_after


class InvalidRequest(LlamaradaError):
    """The request is well-formed JSON but asks for something that cannot be done."""

    status_code = 400
    error_type = "invalid_request_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        if field:
            self.status_code = 422

    @classmethod
    def from_validation(cls, exc: ValidationError, where: str = "") -> InvalidRequest:
        """The first problem pydantic found, naming its field (after `where`, if given)."""
        problem = exc.errors()[0]
        path = ".".join(str(part) for part in problem["loc"])
        field = ": ".join(part for part in (where, path) if part) or "body"
        return cls(problem["msg"], field=field)


class Unauthorized(LlamaradaError):
    """No API key, or one that is not (or no longer) configured."""

    status_code = 401
    error_type = "authentication_error"


class Forbidden(LlamaradaError):
    """The caller may not do this here."""

    status_code = 403
    error_type = "permission_error"


class ModelNotFound(LlamaradaError):
    """The model is not served here; the message lists the ones that are."""

    status_code = 404
    error_type = "not_found_error"

    def __init__(self, model: str, available: Iterable[str]) -> None:
        names = ", ".join(sorted(available)) or "none"
        super().__init__(f"model {model!r} not found; available models: {names}")
        self.model = model


class NotFound(LlamaradaError):
    """The thing the path names does not exist."""

    status_code = 404
    error_type = "not_found_error"


class Conflict(LlamaradaError):
    """The thing exists but its state forbids this (cancelling a finished job)."""

    status_code = 409
    error_type = "conflict_error"


class UnsupportedMediaType(LlamaradaError):
    """An uploaded file is of a type that cannot be read as text."""

    status_code = 415
    error_type = "unsupported_media_type"


class PayloadTooLarge(LlamaradaError):
    """The request body is over the configured limit."""

    status_code = 413
    error_type = "payload_too_large"


class QuotaExceeded(LlamaradaError):
    """The caller's key used up its requests or tokens for this minute."""

    status_code = 429
    error_type = "rate_limit_error"
    retry_after = 60


class Overloaded(LlamaradaError):
    """Every slot and queue place is taken; the client should come back later."""

    status_code = 503
    error_type = "overloaded_error"
    retry_after = 2


class QueueUnavailable(LlamaradaError):
    """The batch job store (Redis) cannot be reached; jobs are safe, come back later."""

    status_code = 503
    error_type = "queue_unavailable"
    retry_after = 5


class UpstreamError(LlamaradaError):
    """The model server answered with an error."""

    status_code = 502
    error_type = "upstream_error"


class UpstreamUnavailable(UpstreamError):
    """The model server could not be reached or said it is unavailable."""

    status_code = 503
    error_type = "upstream_unavailable"
    retry_after = 5


class CacheUnavailable(Exception):
    """The response cache cannot be reached; callers serve the request uncached."""
