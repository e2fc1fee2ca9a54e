"""The two stream encoders, each ending a failed stream with its dialect's one error line.

Once a stream has started (status 200, first bytes sent), an error can only be reported inside it:

    NDJSON (Ollama's routes and Llamarada's own)   {"error": "<message>", "error_type": "<type>"}
    SSE, OpenAI chat and completions                data: {"error": {"message", "type", ...}}
                                                    then data: [DONE]
    SSE, Anthropic Messages                         event: error
                                                    data: {"type": "error", "error": {...}}
    SSE, OpenAI Responses                           event: error
                                                    data: {"type": "error", "code", "message", ...}

Ollama's clients read the `error` string; the browser app reads this one shape everywhere.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from app.core.errors import LlamaradaError
from app.wire.codec import dumps

logger = logging.getLogger(__name__)

NDJSON = "application/x-ndjson"
SSE = "text/event-stream"
INTERNAL = "internal error; see the server log"


def json_line(data: Any) -> bytes:
    """One NDJSON line."""
    return dumps(data) + b"\n"


def sse_event(event: str, data: Any) -> bytes:
    """One named Server-Sent Event (Anthropic's and the Responses API's streams)."""
    return b"event: " + event.encode() + b"\ndata: " + dumps(data) + b"\n\n"


def ndjson_error(exc: LlamaradaError) -> dict[str, str]:
    """The NDJSON dialects' mid-stream error line."""
    return {"error": exc.message, "error_type": exc.error_type}


async def ndjson(lines: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    """Encode the lines; an error after the first byte becomes the error line."""
    async for chunk in guarded(_encoded(lines), lambda exc: json_line(ndjson_error(exc))):
        yield chunk


async def _encoded(lines: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    async for line in lines:
        yield json_line(line)


async def guarded(
    chunks: AsyncIterator[bytes], error: Callable[[LlamaradaError], bytes], end: bytes = b""
) -> AsyncIterator[bytes]:
    """Pass encoded chunks on; a failure becomes `error(exc)`; `end` closes the stream anyway."""
    try:
        async for chunk in chunks:
            yield chunk
    except LlamaradaError as exc:
        yield error(exc)
    except Exception:
        logger.exception("stream failed")
        yield error(LlamaradaError(INTERNAL))
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()
    if end:
        yield end
