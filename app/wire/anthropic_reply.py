"""Answers in Anthropic's Messages shape: one `message` object, or its Server-Sent Events; and
Anthropic's error body.

A stream reads, as Anthropic sends it:

    message_start, ping,
    (content_block_start, content_block_delta..., content_block_stop) per block,
    message_delta (stop_reason, usage), message_stop

with `event: error` in place of the rest when the answer fails after the first byte. A
knowledge-base answer's sources are the text block's `search_result_location` citations.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from app.core.errors import LlamaradaError
from app.llm.base import Chunk, merge_chunks
from app.llm.completions import Reply
from app.wire.stream import sse_event

# Anthropic's error types; the project's others are reported as the nearest of these.
ERROR_TYPES = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
        "request_too_large",
        "rate_limit_error",
        "api_error",
        "overloaded_error",
    }
)


def message_id() -> str:
    """A new `msg_` id."""
    return f"msg_{uuid.uuid4().hex[:24]}"


def tool_use_id() -> str:
    """A new `toolu_` id."""
    return f"toolu_{uuid.uuid4().hex[:24]}"


def stop_reason(chunk: Chunk, called_tools: bool) -> str:
    """Anthropic's stop reason for an answer's last chunk."""
    if called_tools:
        return "tool_use"
    return "max_tokens" if chunk.done_reason == "length" else "end_turn"


def citations(sources: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """A knowledge-base answer's sources as Anthropic's search-result citations."""
    return [
        {
            "type": "search_result_location",
            "source": str(source.get("source", "")),
            "title": source.get("heading") or source.get("source") or None,
            "cited_text": source.get("text") or source.get("snippet") or "",
            "search_result_index": index,
            "start_block_index": 0,
            "end_block_index": 0,
        }
        for index, source in enumerate(sources or [])
    ]


def _tool_use(call: dict[str, Any]) -> dict[str, Any]:
    function = call.get("function") or {}
    arguments = function.get("arguments") or {}
    if isinstance(arguments, str):  # some servers send the JSON text
        try:
            arguments = json.loads(arguments)
        except ValueError:
            arguments = {}
    return {
        "type": "tool_use",
        "id": call.get("id") or tool_use_id(),
        "name": function.get("name", ""),
        "input": arguments if isinstance(arguments, dict) else {},
    }


async def message(reply: Reply, estimated_input: int) -> dict[str, Any]:
    """The whole answer as a `message`; a knowledge-base answer's sources as citations."""
    merged = merge_chunks([chunk async for chunk in reply.chunks])
    content: list[dict[str, Any]] = []
    if merged.thinking:
        content.append({"type": "thinking", "thinking": merged.thinking, "signature": ""})
    if merged.content or not merged.tool_calls:
        text: dict[str, Any] = {"type": "text", "text": merged.content}
        if reply.sources:
            text["citations"] = citations(reply.sources)
        content.append(text)
    content.extend(_tool_use(call) for call in merged.tool_calls or [])
    body = {
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": content,
        "stop_reason": stop_reason(merged, bool(merged.tool_calls)),
        "stop_sequence": None,
        "usage": usage(merged, estimated_input),
    }
    if reply.sources is not None:
        body["sources"] = reply.sources
    return body


def usage(chunk: Chunk, estimated_input: int) -> dict[str, int]:
    """Anthropic's token counts; the estimate stands in where the backend counted no prompt."""
    return {
        "input_tokens": chunk.prompt_eval_count or estimated_input,
        "output_tokens": chunk.eval_count,
    }


class _Blocks:
    """The stream's content blocks: which one is open, and the events that open and close."""

    def __init__(self) -> None:
        self.index = -1
        self.open: str | None = None  # the open block's type

    def start(self, block: dict[str, Any]) -> bytes:
        self.index += 1
        self.open = block["type"]
        return sse_event(
            "content_block_start",
            {"type": "content_block_start", "index": self.index, "content_block": block},
        )

    def delta(self, delta: dict[str, Any]) -> bytes:
        return sse_event(
            "content_block_delta",
            {"type": "content_block_delta", "index": self.index, "delta": delta},
        )

    def stop(self) -> bytes:
        self.open = None
        return sse_event("content_block_stop", {"type": "content_block_stop", "index": self.index})

    def switch(self, kind: str, block: dict[str, Any]) -> list[bytes]:
        """Close the open block unless it is of `kind`, then open `block` if needed."""
        if self.open == kind:
            return []
        events = [self.stop()] if self.open else []
        events.append(self.start(block))
        return events


async def events(reply: Reply, estimated_input: int) -> AsyncIterator[bytes]:
    """The answer as Anthropic's SSE events (the caller guards them with `sse_error`)."""
    start: dict[str, Any] = {
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": estimated_input, "output_tokens": 0},
    }
    yield sse_event("message_start", {"type": "message_start", "message": start})
    yield sse_event("ping", {"type": "ping"})
    blocks = _Blocks()
    called_tools = False
    async for chunk in reply.chunks:
        if chunk.thinking:
            for event in blocks.switch("thinking", {"type": "thinking", "thinking": ""}):
                yield event
            yield blocks.delta({"type": "thinking_delta", "thinking": chunk.thinking})
        if chunk.content:
            for event in blocks.switch("text", {"type": "text", "text": ""}):
                yield event
            yield blocks.delta({"type": "text_delta", "text": chunk.content})
        for call in chunk.tool_calls or []:
            called_tools = True
            block = _tool_use(call)
            arguments = json.dumps(block["input"])
            if blocks.open:
                yield blocks.stop()
            yield blocks.start({**block, "input": {}})
            yield blocks.delta({"type": "input_json_delta", "partial_json": arguments})
            yield blocks.stop()
        if chunk.done:
            for event in _closing(blocks, chunk, reply, called_tools, estimated_input):
                yield event


def _closing(
    blocks: _Blocks, last: Chunk, reply: Reply, called_tools: bool, estimated_input: int
) -> list[bytes]:
    events = []
    if reply.sources or (blocks.index < 0 and not called_tools):
        events += blocks.switch("text", {"type": "text", "text": ""})
    for citation in citations(reply.sources):
        events.append(blocks.delta({"type": "citations_delta", "citation": citation}))
    if blocks.open:
        events.append(blocks.stop())
    delta = {"stop_reason": stop_reason(last, called_tools), "stop_sequence": None}
    body: dict[str, Any] = {
        "type": "message_delta",
        "delta": delta,
        "usage": usage(last, estimated_input),
    }
    if reply.sources is not None:
        body["sources"] = reply.sources
    events.append(sse_event("message_delta", body))
    events.append(sse_event("message_stop", {"type": "message_stop"}))
    return events


def sse_error(exc: LlamaradaError) -> bytes:
    """Anthropic's mid-stream error event."""
    return sse_event("error", error_body(exc.status_code, exc.error_type, exc.message))


def error_type(status: int, project_type: str) -> str:
    """The Anthropic error type for a project error."""
    if project_type in ERROR_TYPES:
        return project_type
    by_status = {
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        413: "request_too_large",
        429: "rate_limit_error",
        503: "overloaded_error",
    }
    return by_status.get(status, "invalid_request_error" if status < 500 else "api_error")


def error_body(status: int, project_type: str, message: str) -> dict[str, Any]:
    """Anthropic's error body."""
    return {
        "type": "error",
        "error": {"type": error_type(status, project_type), "message": message},
    }
