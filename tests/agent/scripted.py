"""A backend at the Backend seam that plays an agent's model: one scripted reply per request."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.core.errors import InvalidRequest, LlamaradaError, ModelNotFound
from app.llm.base import ChatRequest, Chunk, Embeddings, GenerateRequest, ModelInfo

# A reply is text (streamed in a few pieces) or native tool calls (one chunk, as Ollama sends).
ScriptedReply = str | list[dict[str, Any]]


def tool_call(name: str, **arguments: Any) -> dict[str, Any]:
    """One native tool call in Ollama's shape."""
    return {"function": {"name": name, "arguments": arguments}}


def react(action: str, action_input: str, thought: str = "I should use a tool.") -> str:
    """A ReAct tool call as a model writes it."""
    return f"Thought: {thought}\nAction: {action}\nAction Input: {action_input}"


@dataclass
class AgentScript:
    """Answers the n-th chat with the n-th reply, then the last one again and again.

    `native_tools` False makes it refuse `tools` like the embedded model does (InvalidRequest
    on the `tools` field, before any generation).
    """

    replies: Sequence[ScriptedReply]
    native_tools: bool = True
    delay: float = 0.0  # before each reply
    failures: dict[int, LlamaradaError] = field(default_factory=dict)  # request number -> error
    model: str = "scripted:1b"
    name: str = "scripted"
    requests: list[ChatRequest] = field(default_factory=list)
    refused: int = 0  # requests refused for their `tools`

    async def start(self) -> None:
        """Nothing to start."""

    async def aclose(self) -> None:
        """Nothing to close."""

    def chat(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        """The next reply of the script."""
        if request.model != self.model:
            raise ModelNotFound(request.model, [self.model])
        if request.tools and not self.native_tools:
            self.refused += 1
            raise InvalidRequest(f"{request.model} does not support tools", field="tools")
        self.requests.append(request)
        reply = self.replies[min(len(self.requests), len(self.replies)) - 1]
        return self._play(reply, self.failures.get(len(self.requests)))

    def generate(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]:
        """Not used by the agent."""
        raise InvalidRequest("the agent script only chats")

    async def _play(
        self, reply: ScriptedReply, error: LlamaradaError | None
    ) -> AsyncGenerator[Chunk, None]:
        if self.delay:
            await asyncio.sleep(self.delay)
        if error is not None:
            raise error
        if isinstance(reply, str):
            middle = len(reply) // 2
            for piece in (reply[:middle], reply[middle:]):
                if piece:
                    yield Chunk(content=piece)
        else:
            yield Chunk(tool_calls=reply)
        yield Chunk(done=True, done_reason="stop", prompt_eval_count=10, eval_count=5)

    async def embed(self, model: str, inputs: list[str], *, truncate: bool = True) -> Embeddings:
        """One small vector per input."""
        return Embeddings(vectors=[[1.0, 0.0] for _ in inputs])

    async def list_models(self) -> list[ModelInfo]:
        """The one scripted model."""
        return [ModelInfo(name=self.model)]

    async def show(self, model: str) -> dict[str, Any]:
        """A minimal `/api/show` answer."""
        if model != self.model:
            raise ModelNotFound(model, [self.model])
        capabilities = ["completion", "tools"] if self.native_tools else ["completion"]
        return {"modelfile": f"FROM {model}", "details": {}, "capabilities": capabilities}

    async def running(self) -> list[dict[str, Any]]:
        """Nothing loaded."""
        return []

    async def check(self) -> None:
        """Always up."""
