"""OpenAI-compatible routes: chat and legacy completions (SSE if streaming), embeddings, models."""

from __future__ import annotations

import base64
import struct
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from app.api.deps import ChatDep, CompletionsDep, ModelCallDep, PrincipalDep
from app.api.errors import streamed
from app.api.responses import JSON, cache_headers, streamed_reply
from app.api.routing import JsonBodyRoute
from app.core.errors import InvalidRequest, NotFound
from app.wire.openai import (
    DONE,
    ChatCompletionRequest,
    EmbeddingRequest,
    chunk_events,
    completion,
    model_object,
    named_as,
    openai_field,
    sse_error,
)
from app.wire.openai_legacy import CompletionRequest, completion_events, text_completion
from app.wire.stream import SSE, guarded

router = APIRouter(prefix="/v1", tags=["openai"], route_class=JsonBodyRoute)


@router.post(
    "/chat/completions",
    response_model=None,
    responses=streamed(SSE, "chat.completion.chunk events, then [DONE]"),
)
async def chat_completions(body: ChatCompletionRequest, call: ModelCallDep) -> Response:
    """Chat with a model (`kb:<collection>`: a cited answer); Server-Sent Events when `stream`."""
    try:
        reply = await call.chat.chat(body.to_chat_request(), call.policy, caller=call.caller)
    except InvalidRequest as exc:  # named as the OpenAI request names the field
        raise openai_field(exc) from None
    if body.stream:
        usage = bool(body.stream_options and body.stream_options.include_usage)
        return streamed_reply(reply, guarded(chunk_events(reply, usage), sse_error, DONE), SSE)
    return JSON(await completion(reply), headers=cache_headers(reply))


@router.post(
    "/completions",
    response_model=None,
    responses=streamed(SSE, "text_completion chunks, then [DONE]"),
)
async def completions(body: CompletionRequest, call: ModelCallDep) -> Response:
    """Complete a prompt (OpenAI's legacy API); Server-Sent Events when `stream`."""
    generate = body.to_generate_request()
    try:
        reply = await call.completions.generate(generate, call.policy, caller=call.caller)
    except InvalidRequest as exc:  # named as the completions request names the field
        raise named_as(exc, {"options.num_predict": "max_tokens"}) from None
    if body.stream:
        usage = bool(body.stream_options and body.stream_options.include_usage)
        events = completion_events(reply, usage)
        return streamed_reply(reply, guarded(events, sse_error, DONE), SSE)
    return JSON(await text_completion(reply), headers=cache_headers(reply))


@router.post("/embeddings")
async def embeddings(
    body: EmbeddingRequest, completions: CompletionsDep, caller: PrincipalDep
) -> dict[str, Any]:
    """Embed one text or several; floats or base64 of little-endian float32, as OpenAI sends."""
    result = await completions.embed(body.model, body.texts, caller=caller)
    data = []
    for index, vector in enumerate(result.vectors):
        values = vector[: body.dimensions] if body.dimensions else vector
        encoded: list[float] | str = values
        if body.encoding_format == "base64":
            encoded = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = result.prompt_eval_count
    return {
        "object": "list",
        "data": data,
        "model": result.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


@router.get("/models")
async def models(chats: ChatDep, caller: PrincipalDep) -> dict[str, Any]:
    """The models served, knowledge bases included as `kb:<collection>`."""
    served = await chats.list_models(caller=caller)
    return {"object": "list", "data": [model_object(info.name) for info in served]}


@router.get("/models/{model:path}")
async def model(model: str, chats: ChatDep, caller: PrincipalDep) -> dict[str, Any]:
    """One model."""
    if model not in {info.name for info in await chats.list_models(caller=caller)}:
        raise NotFound(f"model {model!r} not found")
    return model_object(model)
