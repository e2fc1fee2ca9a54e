"""The project's one exception tree; `app.api.errors` maps it to HTTP in one place.

    LlamaradaError                 500 internal_error
    ├── InvalidRequest             400 invalid_request_error (422 when a field is named)
    ├── Unauthorized               401 authentication_error
    ├── Forbidden                  403 permission_error
    ├── ModelNotFound              404 not_found_error
    ├── NotFound                   404 not_found_error
    ├── Conflict                   409 conflict_error
    ├── PayloadTooLarge            413 payload_too_large
    ├── QuotaExceeded              429 rate_limit_error, Retry-After
    ├── Overloaded                 503 overloaded_error, Retry-After
    ├── QueueUnavailable           503 queue_unavailable, Retry-After
    └── UpstreamError              502 upstream_error
        └── UpstreamUnavailable    503 upstream_unavailable, Retry-After

`CacheUnavailable` is not in the tree on purpose: the cache fails open and never reaches a client.
"""

from __future__ import annotations

from collections.abc import Iterable


class LlamaradaError(Exception):
    """Base of every error Llamarada reports to a client."""

    status_code = 500
    error_type = "internal_error"
    retry_after: int | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(LlamaradaError):
    """The request is well-formed JSON but asks for something that cannot be done."""

    status_code = 400
    error_type = "invalid_request_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        if field:
            self.status_code = 422


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


class PayloadTooLarge(LlamaradaError):
    """The request body is over the configured limit."""

    status_code = 413
    error_type = "payload_too_large"


class QuotaExceeded(LlamaradaError):
    """The caller's key used up its requests or tokens for this minute."""

    status_code = 429
    error_type = "rate_limit_error"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Overloaded(LlamaradaError):
    """Every slot and queue place is taken; the client should come back later."""

    status_code = 503
    error_type = "overloaded_error"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QueueUnavailable(LlamaradaError):
    """The batch job store (Redis) cannot be reached; jobs are safe, come back later."""

    status_code = 503
    error_type = "queue_unavailable"

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamError(LlamaradaError):
    """The model server answered with an error."""

    status_code = 502
    error_type = "upstream_error"


class UpstreamUnavailable(UpstreamError):
    """The model server could not be reached or said it is unavailable."""

    status_code = 503
    error_type = "upstream_unavailable"

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CacheUnavailable(Exception):
    """The response cache cannot be reached; callers serve the request uncached."""
