"""Two ways to offer tools to a model: native tool calls, and the ReAct text protocol.

Native calling hands the tools' JSON schemas to the backend (Ollama's `tools` on `/api/chat`)
and reads `tool_calls` back; results go in `tool` messages. ReAct lists the tools in a system
prompt and reads `Action:` lines from plain text; results go back as `Observation:` lines.
"""

from __future__ import annotations

import contextlib
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from app.agent import react
from app.agent.tools.base import Tool
from app.llm.base import Message

CallingName = Literal["native", "react"]

NATIVE_SYSTEM = (
    "You are a helpful assistant. Call a tool whenever it helps you answer, one call per fact "
    "you need; then answer in the language of the question."
)


@dataclass(frozen=True)
class ToolCall:
    """A call the model asked for; the arguments are as it gave them, not yet validated."""

    name: str
    arguments: object

    def key(self) -> str:
        """The call's identity, for spotting a model that repeats itself."""
        return json.dumps([self.name, self.arguments], sort_keys=True, default=str)


@dataclass(frozen=True)
class Turn:
    """What the model said in one step: calls to run, or (with no calls) its answer."""

    message: Message
    calls: list[ToolCall]
    answer: str


class ToolCalling(ABC):
    """How one run talks to its model about tools."""

    name: ClassVar[CallingName]
    stop: ClassVar[list[str] | None] = None

    def __init__(self, tools: Sequence[Tool]) -> None:
        self.tools = {tool.name: tool for tool in tools}

    @abstractmethod
    def opening(self, question: str) -> list[Message]:
        """The conversation the run starts from."""

    def definitions(self) -> list[dict[str, Any]] | None:
        """The `tools` field of the chat request."""
        return None

    @abstractmethod
    def read(self, text: str, tool_calls: list[dict[str, Any]]) -> Turn:
        """Read one reply of the model."""

    @abstractmethod
    def observation(self, call: ToolCall, text: str) -> Message:
        """The message that gives a call's result (or error) back to the model."""


class NativeToolCalling(ToolCalling):
    """The backend's own tool calling: schemas in, `tool_calls` out."""

    name = "native"

    def opening(self, question: str) -> list[Message]:
        """A short system prompt and the question."""
        return [
            Message(role="system", content=NATIVE_SYSTEM),
            Message(role="user", content=question),
        ]

    def definitions(self) -> list[dict[str, Any]] | None:
        """Each enabled tool's function definition; None when no tool is enabled."""
        return [tool.definition() for tool in self.tools.values()] or None

    def read(self, text: str, tool_calls: list[dict[str, Any]]) -> Turn:
        """The calls in `tool_calls`, in order; the text is the answer when there are none."""
        calls = [_native_call(item) for item in tool_calls]
        # Malformed items still become (failing) calls above, but stay out of the history.
        kept = [item for item in tool_calls if isinstance(item, dict)]
        message = Message(role="assistant", content=text, tool_calls=kept or None)
        return Turn(message=message, calls=calls, answer=text.strip())

    def observation(self, call: ToolCall, text: str) -> Message:
        """A `tool` message named after the tool."""
        return Message(role="tool", content=text, tool_name=call.name)


class ReactToolCalling(ToolCalling):
    """Thought / Action / Action Input / Observation in plain text, one call per step."""

    name = "react"
    stop = react.STOP

    def opening(self, question: str) -> list[Message]:
        """The ReAct prompt with the enabled tools, and the question."""
        return [
            Message(role="system", content=react.render_prompt(list(self.tools.values()))),
            Message(role="user", content=f"Question: {question}"),
        ]

    def read(self, text: str, tool_calls: list[dict[str, Any]]) -> Turn:
        """The action the text names, or its final answer."""
        reply = react.parse_reply(text)
        message = Message(role="assistant", content=reply.text)
        if reply.action is None:
            return Turn(message=message, calls=[], answer=reply.answer or "")
        tool = self.tools.get(reply.action)
        arguments = react.action_arguments(reply.action_input, tool)
        return Turn(message=message, calls=[ToolCall(reply.action, arguments)], answer="")

    def observation(self, call: ToolCall, text: str) -> Message:
        """An `Observation:` line from the user's side of the chat."""
        return Message(role="user", content=f"Observation: {text}")


def _native_call(item: object) -> ToolCall:
    """Ollama sends arguments as an object, OpenAI-style servers as a JSON string: take both."""
    function = item.get("function") if isinstance(item, dict) else None
    if not isinstance(function, dict):
        return ToolCall(name="", arguments=item)
    arguments = function.get("arguments", {})
    if isinstance(arguments, str):
        # Not JSON: left as text, and validation says the arguments are not an object.
        with contextlib.suppress(ValueError):
            arguments = json.loads(arguments) if arguments.strip() else {}
    return ToolCall(name=str(function.get("name", "")), arguments=arguments)
