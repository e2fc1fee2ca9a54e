"""Ollama's wire shapes: the route-only requests, and answers as its JSON bodies and NDJSON lines.

The chat, generate and embed requests themselves are the pipeline's own (`app.llm.base`): every
other dialect converts into them.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from pydantic import BaseModel, ConfigDict

from app.llm.base import STATS, Chunk, ModelInfo, Options, merge_chunks
from app.llm.completions import Reply

Shape = Callable[[str, Chunk], dict[str, Any]]


class LegacyEmbeddingsRequest(BaseModel):
    """The deprecated `/api/embeddings` request: one prompt."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = ""
    prompt: str
    options: Options | None = None
    keep_alive: str | float | None = None


class ShowRequest(BaseModel):
    """`/api/show`: the model by `model` (or the older `name`)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = ""
    name: str = ""
    verbose: bool = False


def chat_line(model: str, chunk: Chunk) -> dict[str, Any]:
    """A chunk as a `/api/chat` line (or, merged, its whole body)."""
    message: dict[str, Any] = {"role": "assistant", "content": chunk.content}
    if chunk.thinking:
        message["thinking"] = chunk.thinking
    if chunk.tool_calls:
        message["tool_calls"] = chunk.tool_calls
    return _with_stats({"model": model, "created_at": now(), "message": message}, chunk)


def generate_line(model: str, chunk: Chunk) -> dict[str, Any]:
    """A chunk as a `/api/generate` line (or, merged, its whole body)."""
    line: dict[str, Any] = {"model": model, "created_at": now(), "response": chunk.content}
    if chunk.thinking:
        line["thinking"] = chunk.thinking
    return _with_stats(line, chunk)


async def whole(reply: Reply, shape: Shape) -> dict[str, Any]:
    """The whole answer as one body; a knowledge-base answer's sources included."""
    body = shape(reply.model, merge_chunks([chunk async for chunk in reply.chunks]))
    if reply.sources is not None:
        body["sources"] = reply.sources
    return body


async def lines(reply: Reply, shape: Shape) -> AsyncIterator[dict[str, Any]]:
    """The answer as NDJSON lines; the last carries a knowledge-base answer's sources."""
    async for chunk in reply.chunks:
        line = shape(reply.model, chunk)
        if chunk.done and reply.sources is not None:
            line["sources"] = reply.sources
        yield line


def tag(info: ModelInfo) -> dict[str, Any]:
    """A model as `/api/tags` lists it."""
    return {
        "name": info.name,
        "model": info.name,
        "modified_at": info.modified_at,
        "size": info.size,
        "digest": info.digest,
        "details": info.details,
    }


def _with_stats(line: dict[str, Any], chunk: Chunk) -> dict[str, Any]:
    line["done"] = chunk.done
    if chunk.done:
        line["done_reason"] = chunk.done_reason or "stop"
        for name in STATS:
            line[name] = getattr(chunk, name)
    return line


def now() -> str:
    """Ollama's `created_at`: UTC, ISO 8601 with a `Z`."""
    seconds = time.time()
    whole_seconds = int(seconds)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole_seconds))
    return f"{stamp}.{int((seconds - whole_seconds) * 1e6):06d}Z"
