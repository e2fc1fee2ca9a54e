"""Which requests the semantic cache may answer, and the partition each belongs to."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from app.core.semantic import SemanticQuery
from app.llm.base import ChatRequest, GenerateRequest


def semantic_query(
    route: str,
    request: ChatRequest | GenerateRequest,
    scope: str | None,
    *,
    max_temperature: float,
    question: str | None = None,
) -> SemanticQuery | None:
    """The request's question and partition (everything in its exact key but the question's
    text); None for requests a near answer must never serve: sampled above `max_temperature`
    (or at the model's default), with tools, tool results or images.

    `question` is the part of the last user message that was asked (a knowledge-base prompt
    wraps it in passages, which then stay in the partition: same passages or no hit)."""
    temperature = request.options.temperature if request.options else None
    if temperature is None or temperature > max_temperature:
        return None
    inputs: dict[str, Any] = request.model_dump(
        mode="json", exclude_none=True, exclude={"stream", "keep_alive"}
    )
    if isinstance(request, ChatRequest):
        if request.tools or any(
            m.role == "tool" or m.tool_calls or m.images for m in request.messages
        ):
            return None
        last = request.messages[-1] if request.messages else None
        if last is None or last.role != "user":
            return None
        text = question if question and question in last.content else last.content
        inputs["messages"][-1]["content"] = last.content.replace(text, "\x00", 1)
    else:
        if request.images:
            return None
        text = request.prompt
        inputs["prompt"] = "\x00"
    if not text.strip():
        return None
    if scope is not None:
        inputs["scope"] = scope
    canonical = orjson.dumps({"route": route, **inputs}, option=orjson.OPT_SORT_KEYS)
    return SemanticQuery(request.model, hashlib.sha256(canonical).hexdigest(), text)
