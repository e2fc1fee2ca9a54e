"""Test doubles at the Backend seam: a scripted backend and a counting wrapper."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.core.errors import LlamaradaError, ModelNotFound
from app.llm.base import Backend, ChatRequest, Chunk, Embeddings, GenerateRequest, ModelInfo


@dataclass
class ScriptedBackend:
    """Answers every request with the same pieces, optionally slowly or failing part-way."""

    pieces: Sequence[str] = ("Hello", ",", " world", ".")
    delay: float = 0.0
    fail_after: int | None = None  # raise `error` after this many pieces
    error: LlamaradaError | None = None
    done_reason: str = "stop"
    model: str = "scripted:1b"
    name: str = "scripted"
    calls: int = 0
    closed: int = 0  # generations stopped before their end
    requests: list[ChatRequest | GenerateRequest] = field(default_factory=list)

    async def start(self) -> None:
        """Nothing to start."""

    async def aclose(self) -> None:
        """Nothing to close."""

    def chat(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        """The script, as a chat answer."""
        return self._run(request)

    def generate(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]:
        """The script, as a completion."""
        return self._run(request)

    async def _run(self, request: ChatRequest | GenerateRequest) -> AsyncGenerator[Chunk, None]:
        if request.model != self.model:
            raise ModelNotFound(request.model, [self.model])
        self.calls += 1
        self.requests.append(request)
        finished = False
        try:
            for index, piece in enumerate(self.pieces):
                if self.fail_after is not None and index == self.fail_after and self.error:
                    raise self.error
                if self.delay:
                    await asyncio.sleep(self.delay)
                yield Chunk(content=piece)
            if self.fail_after is not None and self.fail_after >= len(self.pieces) and self.error:
                raise self.error
            finished = True
            yield Chunk(
                done=True,
                done_reason=self.done_reason,
                prompt_eval_count=3,
                eval_count=len(self.pieces),
            )
        finally:
            if not finished:
                self.closed += 1

    async def embed(self, model: str, inputs: list[str], *, truncate: bool = True) -> Embeddings:
        """One small vector per input."""
        return Embeddings(vectors=[[float(len(text)), 1.0] for text in inputs])

    async def list_models(self) -> list[ModelInfo]:
        """The one scripted model."""
        return [ModelInfo(name=self.model)]

    async def show(self, model: str) -> dict[str, Any]:
        """A minimal `/api/show` answer."""
        if model != self.model:
            raise ModelNotFound(model, [self.model])
        return {"modelfile": f"FROM {model}", "details": {}, "capabilities": ["completion"]}

    async def running(self) -> list[dict[str, Any]]:
        """Nothing loaded."""
        return []

    async def check(self) -> None:
        """Always up."""


class CountingBackend:
    """Wraps a real backend and counts the generations it starts."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls = 0

    async def start(self) -> None:
        """Start the wrapped backend."""
        await self.inner.start()

    async def aclose(self) -> None:
        """Close the wrapped backend."""
        await self.inner.aclose()

    def chat(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        """Count, then delegate."""
        self.calls += 1
        return self.inner.chat(request)

    def generate(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]:
        """Count, then delegate."""
        self.calls += 1
        return self.inner.generate(request)

    async def embed(self, model: str, inputs: list[str], *, truncate: bool = True) -> Embeddings:
        """Delegate."""
        return await self.inner.embed(model, inputs, truncate=truncate)

    async def list_models(self) -> list[ModelInfo]:
        """Delegate."""
        return await self.inner.list_models()

    async def show(self, model: str) -> dict[str, Any]:
        """Delegate."""
        return await self.inner.show(model)

    async def running(self) -> list[dict[str, Any]]:
        """Delegate."""
        return await self.inner.running()

    async def check(self) -> None:
        """Delegate."""
        await self.inner.check()


@dataclass
class ToolCallingBackend(ScriptedBackend):
    """Asks for `get_weather` until it has the tool's result, then answers with it."""

    def chat(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        """A tool call, or the final answer once a tool result is in the messages."""
        return self._answer(request)

    async def _answer(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        self.requests.append(request)
        results = [m for m in request.messages if m.role == "tool"]
        if request.tools and not results:
            call = {"function": {"name": "get_weather", "arguments": {"city": "Monterrey"}}}
            yield Chunk(tool_calls=[call])
        else:
            yield Chunk(content=f"It is {results[-1].content} in Monterrey.")
        yield Chunk(done=True, done_reason="stop", prompt_eval_count=5, eval_count=3)
