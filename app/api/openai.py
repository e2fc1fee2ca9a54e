"""OpenAI-compatible routes: chat completions (SSE when streaming), embeddings, models."""

from __future__ import annotations

import base64
import json
import logging
import struct
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response, StreamingResponse

from app.api.deps import CachePolicyDep, CompletionsDep, PrincipalDep, RagDep
from app.api.errors import streamed
from app.api.ollama import merge_chunks
from app.api.openai_schema import ChatCompletionRequest, EmbeddingRequest, openai_field
from app.core.errors import InvalidRequest, LlamaradaError, NotFound
from app.llm.base import Chunk
from app.llm.completions import Reply
from app.rag.answer import KnowledgeReply, is_kb_model

router = APIRouter(prefix="/v1", tags=["openai"])
logger = logging.getLogger(__name__)

OWNER = "llamarada"


@router.post(
    "/chat/completions",
    response_model=None,
    responses=streamed("text/event-stream", "chat.completion.chunk events, then [DONE]"),
)
async def chat_completions(
    body: ChatCompletionRequest,
    completions: CompletionsDep,
    policy: CachePolicyDep,
    rag: RagDep,
    caller: PrincipalDep,
) -> Response:
    """Chat with a model (`kb:<collection>`: a cited answer); Server-Sent Events when `stream`."""
    request = body.to_chat_request()
    if is_kb_model(request.model):
        reply: Reply = await rag.answers.rag_chat(request, policy, caller=caller)
    else:
        try:
            reply = await completions.chat(request, policy, caller=caller)
        except InvalidRequest as exc:
            raise openai_field(exc) from None
    headers = {"X-Cache": reply.cache.value}
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    if body.stream:
        usage = bool(body.stream_options and body.stream_options.include_usage)
        events = _events(reply, completion_id, usage)
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)
    merged = merge_chunks([chunk async for chunk in reply.chunks])
    completion = completion_object(reply.model, merged, completion_id)
    return JSONResponse({**completion, **_sources(reply)}, headers=headers)


def completion_object(model: str, merged: Chunk, completion_id: str) -> dict[str, Any]:
    """A whole answer as OpenAI's `chat.completion` object (also a batch's output lines)."""
    message: dict[str, Any] = {"role": "assistant", "content": merged.content, "refusal": None}
    if merged.tool_calls:
        message["tool_calls"] = _tool_calls(merged.tool_calls, with_index=False)
        message["content"] = merged.content or None
    if merged.thinking:
        message["reasoning_content"] = merged.thinking
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": OWNER,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": _finish_reason(merged),
            }
        ],
        "usage": _usage(merged),
    }


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
async def models(completions: CompletionsDep, rag: RagDep, caller: PrincipalDep) -> dict[str, Any]:
    """The models served, knowledge bases included as `kb:<collection>`."""
    names = await _names(completions, rag, caller)
    return {"object": "list", "data": [_model(name) for name in names]}


@router.get("/models/{model:path}")
async def model(
    model: str, completions: CompletionsDep, rag: RagDep, caller: PrincipalDep
) -> dict[str, Any]:
    """One model."""
    if model not in await _names(completions, rag, caller):
        raise NotFound(f"model {model!r} not found")
    return _model(model)


async def _names(completions: CompletionsDep, rag: RagDep, caller: PrincipalDep) -> list[str]:
    """The models this caller may use, its knowledge bases included."""
    served = [*await completions.list_models(), *await rag.answers.list_kb_models(caller=caller)]
    return [info.name for info in served if caller.may_use(info.name)]


def _sources(reply: Reply) -> dict[str, Any]:
    """A knowledge-base answer's sources, for its last event or its whole body."""
    if isinstance(reply, KnowledgeReply):
        return {"sources": [source.model_dump(mode="json") for source in reply.sources]}
    return {}


def _model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": OWNER}


async def _events(reply: Reply, completion_id: str, include_usage: bool) -> AsyncIterator[bytes]:
    """SSE chunks: the role first, then deltas, the finish reason, usage if asked, `[DONE]`."""
    created = int(time.time())

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        data = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": reply.model,
            "system_fingerprint": OWNER,
            "choices": choices,
            **extra,
        }
        return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"

    def choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

    called_tools = False
    try:
        yield event(choice({"role": "assistant", "content": ""}))
        async for chunk in reply.chunks:
            called_tools = called_tools or bool(chunk.tool_calls)
            delta: dict[str, Any] = {}
            if chunk.content:
                delta["content"] = chunk.content
            if chunk.thinking:
                delta["reasoning_content"] = chunk.thinking
            if chunk.tool_calls:
                delta["tool_calls"] = _tool_calls(chunk.tool_calls, with_index=True)
            if delta:
                yield event(choice(delta))
            if chunk.done:
                finish = "tool_calls" if called_tools else _finish_reason(chunk)
                yield event(choice({}, finish), **_sources(reply))
                if include_usage:
                    yield event([], usage=_usage(chunk))
    except LlamaradaError as exc:
        error = {"message": exc.message, "type": exc.error_type, "param": None, "code": None}
        yield b"data: " + json.dumps({"error": error}).encode() + b"\n\n"
    except Exception:
        logger.exception("stream failed")
        error = {"message": "internal error", "type": "internal_error", "param": None, "code": None}
        yield b"data: " + json.dumps({"error": error}).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


def _tool_calls(calls: list[dict[str, Any]], *, with_index: bool) -> list[dict[str, Any]]:
    """Ollama's tool calls (arguments as objects) in OpenAI's shape (arguments as JSON text)."""
    converted = []
    for index, call in enumerate(calls):
        function = call.get("function") or {}
        arguments = function.get("arguments", {})
        item: dict[str, Any] = {
            "id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {
                "name": function.get("name", ""),
                "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
            },
        }
        if with_index:
            item["index"] = index
        converted.append(item)
    return converted


def _finish_reason(chunk: Chunk) -> str:
    if chunk.tool_calls:
        return "tool_calls"
    return "length" if chunk.done_reason == "length" else "stop"


def _usage(chunk: Chunk) -> dict[str, int]:
    return {
        "prompt_tokens": chunk.prompt_eval_count,
        "completion_tokens": chunk.eval_count,
        "total_tokens": chunk.prompt_eval_count + chunk.eval_count,
    }
