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
from app.core.errors import (
    InvalidRequest,
    LlamaradaError,
    Overloaded,
    QuotaExceeded,
    UpstreamUnavailable,
)
from app.core.quota import Quotas, usage_var
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

    def __init__(
        self,
        chat: ChatService,
        settings: BatchSettings,
        quotas: Quotas | None = None,
    ) -> None:
        self.chat = chat
        self.settings = settings
        self._quotas = quotas

    async def answer(
        self, item: BatchItem, *, caller: Principal, wait_for_quota: bool = False
    ) -> Answer:
        """The item's whole answer for the caller that submitted it, or the LlamaradaError it
        ended with; a queued job's item waits while its key's quota is used up
        (`wait_for_quota`), an item of `POST /api/batch` fails at once."""
        retries = self.settings.item_retries
        attempt = 0
        while True:
            try:
                async with asyncio.timeout(self.settings.item_timeout):
                    return await self._metered(item, caller)
            except QuotaExceeded as exc:
                if not wait_for_quota:
                    raise
                await asyncio.sleep(min(float(exc.retry_after or 1), MAX_RETRY_WAIT))
                continue  # waiting for the quota is no failed attempt
            except (Overloaded, UpstreamUnavailable) as exc:
                if attempt == retries:
                    raise
                attempt += 1
                wait = 1.0 if exc.retry_after is None else float(exc.retry_after)
                await asyncio.sleep(min(wait, MAX_RETRY_WAIT))
            except TimeoutError:
                raise LlamaradaError(
                    f"no answer within the item timeout ({self.settings.item_timeout:g} s)"
                ) from None

    async def _metered(self, item: BatchItem, caller: Principal) -> Answer:
        """An item is a request of its key's: it counts against the requests per minute, and
        its tokens are reserved before it generates, the unused part given back after."""
        if self._quotas is None:
            return await self._answer_once(item, caller)
        await self._quotas.admit(caller, generates=True)
        reserved = await self._quotas.reserve(caller, self._most_tokens(item))
        usage_var.set(None)  # this task's tokens are settled here, not by the HTTP request's
        used = 0
        try:
            answer = await self._answer_once(item, caller)
            if answer.cache != CacheStatus.HIT:  # a cached answer costs no tokens
                used = answer.merged.prompt_eval_count + answer.merged.eval_count
            return answer
        finally:
            if used > reserved:  # a prompt longer in tokens than in characters: rare, charged
                await self._quotas.charge(caller, used - reserved)
            else:
                await self._quotas.refund(caller, reserved - used)

    def _most_tokens(self, item: BatchItem) -> int:
        """The most an item can use: its prompt (at most a token per character) and its answer."""
        body = item.body
        prompt = sum(len(str(m.get("content") or "")) for m in body.get("messages") or [])
        options = body.get("options") or {}
        limit = options.get("num_predict") or body.get("max_completion_tokens")
        limit = limit or body.get("max_tokens") or self.chat.completions.limits.max_num_predict
        return prompt + int(limit)

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
