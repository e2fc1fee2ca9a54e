"""OpenAI's legacy completions (`/v1/completions`): a prompt in, `text_completion` objects out.

As Ollama does, a prompt becomes a `/api/generate` request (the model's template applied), so
the same prompt through either route is one cache entry.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.core.errors import InvalidRequest
from app.llm.base import Chunk, GenerateRequest, Options, merge_chunks
from app.llm.completions import Reply
from app.wire.codec import dumps
from app.wire.openai import OWNER, StreamOptions, usage


class CompletionRequest(BaseModel):
    """`POST /v1/completions`; parameters the gateway cannot honour are refused by name."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(min_length=1, max_length=256)
    prompt: str | list[str]
    suffix: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int | None = Field(default=None, ge=1)
    best_of: int | None = Field(default=None, ge=1)
    echo: bool | None = None
    logprobs: int | None = Field(default=None, ge=0)
    logit_bias: dict[str, float] | None = None
    user: str | None = None

    def to_generate_request(self) -> GenerateRequest:
        """The same request as Ollama's `/api/generate` takes it."""
        if isinstance(self.prompt, list) and len(self.prompt) != 1:
            raise InvalidRequest("one prompt per request is supported", field="prompt")
        if self.n not in (None, 1) or self.best_of not in (None, 1):
            raise InvalidRequest("only one choice (n=1) is supported", field="n")
        if self.echo:
            raise InvalidRequest("echo is not supported", field="echo")
        if self.logprobs:
            raise InvalidRequest("log probabilities are not supported", field="logprobs")
        if self.logit_bias:
            raise InvalidRequest("logit_bias is not supported", field="logit_bias")
        options = Options(
            num_predict=self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            stop=[self.stop] if isinstance(self.stop, str) else self.stop,
            seed=self.seed,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
        )
        return GenerateRequest(
            model=self.model,
            prompt=self.prompt if isinstance(self.prompt, str) else self.prompt[0],
            suffix=self.suffix,
            options=options if options.model_dump(exclude_none=True) else None,
            stream=self.stream,
        )


def _finish(chunk: Chunk) -> str:
    return "length" if chunk.done_reason == "length" else "stop"


def _object(model: str, created: int, completion_id: str) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "text_completion",
        "created": created,
        "model": model,
        "system_fingerprint": OWNER,
    }


async def text_completion(reply: Reply) -> dict[str, Any]:
    """The whole answer as a `text_completion`."""
    merged = merge_chunks([chunk async for chunk in reply.chunks])
    body = _object(reply.model, int(time.time()), f"cmpl-{uuid.uuid4().hex}")
    choice = {
        "text": merged.content,
        "index": 0,
        "logprobs": None,
        "finish_reason": _finish(merged),
    }
    return {**body, "choices": [choice], "usage": usage(merged)}


async def completion_events(reply: Reply, include_usage: bool) -> AsyncIterator[bytes]:
    """SSE `text_completion` chunks; the caller ends the stream with `[DONE]`."""
    prefix = _object(reply.model, int(time.time()), f"cmpl-{uuid.uuid4().hex}")

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return b"data: " + dumps({**prefix, "choices": choices, **extra}) + b"\n\n"

    async for chunk in reply.chunks:
        if chunk.content:
            yield event(
                [{"text": chunk.content, "index": 0, "logprobs": None, "finish_reason": None}]
            )
        if chunk.done:
            yield event(
                [{"text": "", "index": 0, "logprobs": None, "finish_reason": _finish(chunk)}]
            )
            if include_usage:
                yield event([], usage=usage(chunk))
