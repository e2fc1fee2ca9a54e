"""Answers in OpenAI's Responses shape: one `response` object, or its Server-Sent Events.

A stream reads `response.created`, `response.in_progress`, then for each output item
`response.output_item.added`, its parts and deltas (`response.content_part.added`,
`response.output_text.delta`..., `response.output_text.done`, `response.content_part.done`, or
`response.function_call_arguments.delta`/`.done`), `response.output_item.done`, and last
`response.completed` (or `response.incomplete` when cut at `max_output_tokens`), every event
numbered by `sequence_number`. A knowledge-base answer's sources are `file_citation`
annotations on its text.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from app.core.errors import LlamaradaError
from app.llm.base import Chunk, merge_chunks
from app.llm.completions import Reply
from app.wire.responses import ResponsesRequest
from app.wire.stream import sse_event


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def citations(sources: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """A knowledge-base answer's sources as `file_citation` annotations."""
    return [
        {
            "type": "file_citation",
            "file_id": str(source.get("document_id", "")),
            "filename": str(source.get("source", "")),
            "index": index,
        }
        for index, source in enumerate(sources or [])
    ]


def usage(chunk: Chunk) -> dict[str, Any]:
    """The Responses API's token counts from an answer's last chunk."""
    return {
        "input_tokens": chunk.prompt_eval_count,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": chunk.eval_count,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": chunk.prompt_eval_count + chunk.eval_count,
    }


def function_call(call: dict[str, Any]) -> dict[str, Any]:
    """An Ollama tool call as a `function_call` output item."""
    function = call.get("function") or {}
    arguments = function.get("arguments", {})
    return {
        "type": "function_call",
        "id": _id("fc"),
        "call_id": call.get("id") or _id("call"),
        "name": function.get("name", ""),
        "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
        "status": "completed",
    }


def text_message(text: str, sources: list[dict[str, Any]] | None, item_id: str) -> dict[str, Any]:
    """An assistant `message` output item."""
    part = {
        "type": "output_text",
        "text": text,
        "annotations": citations(sources),
        "logprobs": [],
    }
    return {
        "type": "message",
        "id": item_id,
        "status": "completed",
        "role": "assistant",
        "content": [part],
    }


def reasoning(text: str, item_id: str) -> dict[str, Any]:
    """A thinking model's reasoning as a `reasoning` output item."""
    return {
        "type": "reasoning",
        "id": item_id,
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}],
        "status": "completed",
    }


class Envelope:
    """The `response` object around the output: what was asked, and how it ended."""

    def __init__(self, request: ResponsesRequest, model: str) -> None:
        self.request = request
        self.id = _id("resp")
        self.model = model
        self.created_at = int(time.time())

    def body(
        self,
        status: str,
        output: list[dict[str, Any]],
        last: Chunk | None = None,
        sources: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """The `response` object."""
        request = self.request
        text_format = request.text.format if request.text and request.text.format else None
        body: dict[str, Any] = {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"}
            if status == "incomplete"
            else None,
            "instructions": request.instructions,
            "max_output_tokens": request.max_output_tokens,
            "model": self.model,
            "output": output,
            "parallel_tool_calls": request.parallel_tool_calls is not False,
            "previous_response_id": None,
            "reasoning": {
                "effort": request.reasoning.effort if request.reasoning else None,
                "summary": None,  # thinking is returned whole, never summarised
            },
            "store": False,
            "temperature": request.temperature,
            "text": {
                "format": text_format.model_dump(by_alias=True, exclude_none=True)
                if text_format
                else {"type": "text"}
            },
            "tool_choice": request.tool_choice or "auto",
            "tools": [tool.model_dump(exclude_none=True) for tool in request.tools or []],
            "top_p": request.top_p,
            "truncation": request.truncation or "disabled",
            "usage": usage(last) if last is not None else None,
            "user": request.user,
            "metadata": request.metadata or {},
        }
        if sources is not None and status != "in_progress":
            body["sources"] = sources
        return body


def _status(last: Chunk) -> str:
    return "incomplete" if last.done_reason == "length" else "completed"


async def response(reply: Reply, request: ResponsesRequest) -> dict[str, Any]:
    """The whole answer as a `response` object."""
    merged = merge_chunks([chunk async for chunk in reply.chunks])
    output = []
    if merged.thinking:
        output.append(reasoning(merged.thinking, _id("rs")))
    if merged.content or not merged.tool_calls:
        output.append(text_message(merged.content, reply.sources, _id("msg")))
    output.extend(function_call(call) for call in merged.tool_calls or [])
    envelope = Envelope(request, reply.model)
    return envelope.body(_status(merged), output, merged, reply.sources)


class Numbered:
    """A stream's events with their `sequence_number`, counted from zero (its error event too)."""

    def __init__(self) -> None:
        self.number = -1

    def __call__(self, kind: str, **fields: Any) -> bytes:
        """The next event."""
        self.number += 1
        return sse_event(kind, {"type": kind, "sequence_number": self.number, **fields})

    def error(self, exc: LlamaradaError) -> bytes:
        """The mid-stream error event, next in the numbering."""
        fields = {"code": exc.error_type, "message": exc.message, "param": None}
        return self("error", **fields)


async def events(reply: Reply, request: ResponsesRequest, event: Numbered) -> AsyncIterator[bytes]:
    """The answer as the Responses API's SSE events, numbered by `event`."""
    envelope = Envelope(request, reply.model)
    yield event("response.created", response=envelope.body("in_progress", []))
    yield event("response.in_progress", response=envelope.body("in_progress", []))
    output: list[dict[str, Any]] = []
    open_item: dict[str, Any] | None = None  # the message or reasoning item being streamed
    text = ""

    def close() -> list[bytes]:
        """Finish the open item: its text, part and item `done` events."""
        nonlocal open_item, text
        if open_item is None:
            return []
        index, item_id = len(output), open_item["id"]
        where = {"item_id": item_id, "output_index": index}
        if open_item["type"] == "reasoning":
            item = reasoning(text, item_id)
            closing = [event("response.reasoning_text.done", **where, content_index=0, text=text)]
        else:
            item = text_message(text, reply.sources, item_id)
            part = item["content"][0]
            closing = [
                event(
                    "response.output_text.done", **where, content_index=0, text=text, logprobs=[]
                ),
                event("response.content_part.done", **where, content_index=0, part=part),
            ]
        closing.append(event("response.output_item.done", output_index=index, item=item))
        output.append(item)
        open_item, text = None, ""
        return closing

    def start(kind: str) -> list[bytes]:
        """Open a message or reasoning item unless one of that kind is open."""
        nonlocal open_item
        if open_item is not None and open_item["type"] == kind:
            return []
        opened = close()
        item_id = _id("rs" if kind == "reasoning" else "msg")
        open_item = {"type": kind, "id": item_id}
        shell: dict[str, Any] = {"type": kind, "id": item_id, "status": "in_progress"}
        if kind == "message":
            shell.update(role="assistant", content=[])
        else:
            shell.update(summary=[])
        opened.append(event("response.output_item.added", output_index=len(output), item=shell))
        if kind == "message":
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            where = {"item_id": item_id, "output_index": len(output), "content_index": 0}
            opened.append(event("response.content_part.added", **where, part=part))
        return opened

    async for chunk in reply.chunks:
        for kind, piece in (("reasoning", chunk.thinking), ("message", chunk.content)):
            if not piece:
                continue
            for opened in start(kind):
                yield opened
            assert open_item is not None
            text += piece
            delta = (
                "response.reasoning_text.delta"
                if kind == "reasoning"
                else ("response.output_text.delta")
            )
            where = {"item_id": open_item["id"], "output_index": len(output), "content_index": 0}
            extra: dict[str, Any] = {"logprobs": []} if kind == "message" else {}
            yield event(delta, **where, delta=piece, **extra)
        for call in chunk.tool_calls or []:
            for closing in close():
                yield closing
            item = function_call(call)
            index = len(output)
            yield event(
                "response.output_item.added",
                output_index=index,
                item={**item, "arguments": "", "status": "in_progress"},
            )
            where = {"item_id": item["id"], "output_index": index}
            yield event("response.function_call_arguments.delta", **where, delta=item["arguments"])
            yield event(
                "response.function_call_arguments.done",
                **where,
                name=item["name"],
                arguments=item["arguments"],
            )
            yield event("response.output_item.done", output_index=index, item=item)
            output.append(item)
        if chunk.done:
            if not output and open_item is None:
                for opened in start("message"):
                    yield opened
            for closing in close():
                yield closing
            status = _status(chunk)
            final = envelope.body(status, output, chunk, reply.sources)
            yield event(f"response.{status}", response=final)
