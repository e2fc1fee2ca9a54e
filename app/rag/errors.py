"""Knowledge-base errors: branches of the project's one tree (`app.core.errors`)."""

from __future__ import annotations

from app.core.errors import LlamaradaError


class UnsupportedDocument(LlamaradaError):
    """An uploaded file is of a type that cannot be read as text."""

    status_code = 415
    error_type = "unsupported_media_type"
