"""One batch item through the completion pipeline (same cache, limits and metrics as a single
request), and the result line it becomes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from app.batch.records import BatchItem, Outcome
from app.core.auth import Principal
from app.core.cache import DEFAULT_POLICY, CacheStatus
from app.core.config import BatchSettings
from app.core.errors import InvalidRequest, LlamaradaError, Overloaded, UpstreamUnavailable
from app.llm.base import ChatRequest, Chunk, merge_chunks
from app.llm.completions import Reply
from app.rag.chat import ChatService
from app.wire.openai import ChatCompletionRequest

MAX_RETRY_WAIT = 30.0  # seconds, however long a Retry-After asks for

STOP_MESSAGES = {
    "cancelled": "the job was cancelled before this item started",
    "expired": "the job's completion window ended before this item finished",
}


@dataclass
class Answer:
    """An item's whole answer."""

    model: str
    merged: Chunk
    cache: CacheStatus
    sources: list[dict[str, Any]] | None = None  # a knowledge-base answer's passages


class LineFormat(Protocol):
    """How one surface writes result lines."""

    def succeeded(self, index: int, item: BatchItem, answer: Answer) -> dict[str, Any]:
        """The line of an answered item."""

    def failed(self, index: int, item: BatchItem | None, error: LlamaradaError) -> dict[str, Any]:
        """The line of an item that got an error."""

    def stopped(self, index: int, item: BatchItem | None, reason: str) -> dict[str, Any]:
        """The line of an item dropped by a cancel (`cancelled`) or the deadline (`expired`)."""

    def invalid(self, index: int, custom_id: str | None, error: InvalidRequest) -> dict[str, Any]:
        """The line of an input line that could not be read as a request."""


class NativeLines:
    """`/api/batch` lines: index, status, and the output or the error."""

    def succeeded(self, index: int, item: BatchItem, answer: Answer) -> dict[str, Any]:
        """The line of an answered item."""
        merged = answer.merged
        line: dict[str, Any] = {
            "index": index,
            "custom_id": item.custom_id,
            "status": Outcome.SUCCEEDED.value,
            "model": answer.model,
            "output": merged.content,
            "done_reason": merged.done_reason or "stop",
            "prompt_eval_count": merged.prompt_eval_count,
            "eval_count": merged.eval_count,
            "cache": answer.cache.value,
        }
        if merged.thinking:
            line["thinking"] = merged.thinking
        if merged.tool_calls:
            line["tool_calls"] = merged.tool_calls
        if answer.sources is not None:
            line["sources"] = answer.sources
        return line

    def failed(self, index: int, item: BatchItem | None, error: LlamaradaError) -> dict[str, Any]:
        """The line of an item that got an error."""
        return {
            "index": index,
            "custom_id": item.custom_id if item else None,
            "status": Outcome.FAILED.value,
            "error": {"type": error.error_type, "message": error.message},
        }

    def stopped(self, index: int, item: BatchItem | None, reason: str) -> dict[str, Any]:
        """The line of an item dropped by a cancel or the deadline."""
        return {
            "index": index,
            "custom_id": item.custom_id if item else None,
            "status": Outcome.CANCELLED.value,
            "error": {"type": reason, "message": STOP_MESSAGES[reason]},
        }

    def invalid(self, index: int, custom_id: str | None, error: InvalidRequest) -> dict[str, Any]:
        """The line of an input line that could not be read as a request."""
        line: dict[str, Any] = {
            "index": index,
            "custom_id": custom_id,
            "status": Outcome.FAILED.value,
            "error": {"type": error.error_type, "message": error.message},
        }
        if error.field:
            line["error"]["param"] = error.field
        return line


class ItemRunner:
    """Answers items, retrying those the backend turned away as overloaded or unavailable."""

    def __init__(self, chat: ChatService, settings: BatchSettings) -> None:
        self.chat = chat
        self.settings = settings

    async def answer(self, item: BatchItem, *, caller: Principal) -> Answer:
        """The item's whole answer for the caller that submitted it, or the LlamaradaError it
        ended with."""
        retries = self.settings.item_retries
        for attempt in range(retries + 1):
            try:
                async with asyncio.timeout(self.settings.item_timeout):
                    return await self._answer_once(item, caller)
            except (Overloaded, UpstreamUnavailable) as exc:
                if attempt == retries:
                    raise
                wait = 1.0 if exc.retry_after is None else float(exc.retry_after)
                await asyncio.sleep(min(wait, MAX_RETRY_WAIT))
            except TimeoutError:
                raise LlamaradaError(
                    f"no answer within the item timeout ({self.settings.item_timeout:g} s)"
                ) from None
        raise AssertionError("unreachable")

    async def _answer_once(self, item: BatchItem, caller: Principal) -> Answer:
        try:
            if item.route == "chat":
                request = ChatRequest.model_validate(item.body)
            else:
                body = ChatCompletionRequest.model_validate(item.body)
                request = body.to_chat_request().model_copy(update={"stream": False})
        except ValidationError as exc:
            raise InvalidRequest.from_validation(exc) from None
        reply: Reply = await self.chat.chat(request, DEFAULT_POLICY, caller=caller)
        merged = merge_chunks([chunk async for chunk in reply.chunks])
        return Answer(reply.model, merged, reply.cache, reply.sources)
