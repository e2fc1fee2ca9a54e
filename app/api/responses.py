"""Response classes every router shares: fast JSON bodies, and streams with the cache header."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import JSONResponse, StreamingResponse

from app.llm.completions import Reply
from app.wire.codec import dumps


class JSON(JSONResponse):
    """A JSON body serialised with orjson (UTF-8, no spaces)."""

    def render(self, content: Any) -> bytes:
        """The body's bytes."""
        return dumps(content)


def streamed_reply(reply: Reply, body: AsyncIterator[bytes], media_type: str) -> StreamingResponse:
    """A streamed answer with its `X-Cache` header."""
    return StreamingResponse(body, media_type=media_type, headers={"X-Cache": reply.cache.value})
