"""Response classes every router shares: fast JSON bodies, and streams with the cache header."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import JSONResponse, StreamingResponse

from app.core.cache import CacheStatus
from app.llm.completions import Reply
from app.wire.codec import dumps


class JSON(JSONResponse):
    """A JSON body serialised with orjson (UTF-8, no spaces)."""

    def render(self, content: Any) -> bytes:
        """The body's bytes."""
        return dumps(content)


def cache_headers(reply: Reply | None, status: CacheStatus | None = None) -> dict[str, str]:
    """`X-Cache`, and on a HIT `X-Cache-Kind` (exact|semantic) and, for a semantic one,
    `X-Cache-Similarity`."""
    headers = {"X-Cache": (reply.cache if reply else status or CacheStatus.BYPASS).value}
    hit = reply.hit if reply else None
    if hit is not None:
        headers["X-Cache-Kind"] = hit.kind
        if hit.similarity is not None:
            headers["X-Cache-Similarity"] = f"{hit.similarity:.4f}"
    return headers


def streamed_reply(reply: Reply, body: AsyncIterator[bytes], media_type: str) -> StreamingResponse:
    """A streamed answer with its cache headers."""
    return StreamingResponse(body, media_type=media_type, headers=cache_headers(reply))
