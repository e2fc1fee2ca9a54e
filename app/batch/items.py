"""One batch item through the completion pipeline (same cache, limits and metrics as a single
request), and the result line it becomes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from app.api.ollama import merge_chunks
from app.api.openai_schema import ChatCompletionRequest
from app.batch.models import BatchItem, Outcome
from app.config import BatchSettings
from app.core.errors import InvalidRequest, LlamaradaError, Overloaded, UpstreamUnavailable
from app.llm.base import ChatRequest, Chunk
from app.llm.completions import CachePolicy, CacheStatus, CompletionService, Reply

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

    def __init__(self, completions: CompletionService, settings: BatchSettings) -> None:
        self.completions = completions
        self.settings = settings

    async def answer(self, item: BatchItem) -> Answer:
        """The item's whole answer, or the LlamaradaError it ended with."""
        retries = self.settings.item_retries
        for attempt in range(retries + 1):
            try:
                async with asyncio.timeout(self.settings.item_timeout):
                    return await self._answer_once(item)
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

    async def _answer_once(self, item: BatchItem) -> Answer:
        policy = CachePolicy()
        reply: Reply
        try:
            if item.route == "chat":
                reply = await self.completions.chat(ChatRequest.model_validate(item.body), policy)
            else:
                body = ChatCompletionRequest.model_validate(item.body)
                request = body.to_chat_request().model_copy(update={"stream": False})
                reply = await self.completions.chat(request, policy)
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(part) for part in problem["loc"]) or "body"
            raise InvalidRequest(problem["msg"], field=where) from None
        merged = merge_chunks([chunk async for chunk in reply.chunks])
        return Answer(reply.model, merged, reply.cache)
