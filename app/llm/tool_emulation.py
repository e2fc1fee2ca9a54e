"""Tools for models without them: the model picks a tool and writes its arguments as JSON under
a schema constraint, and only a call that validates goes out, as a real `tool_calls` chunk.

A chat with `tools` first goes to the model as it is; a model that refuses tools (the embedded
one, an Ollama model without them) gets the tools described in a system message instead, and a
`format` schema that admits exactly `{"tool": NAME, "arguments": {...}}` for each tool or
`{"answer": TEXT}`. The constraint is a llama.cpp grammar in process, Ollama's `format` upstream,
`response_format` on an OpenAI-compatible server. The output is read whole (nothing streams
before it is checked); arguments are validated against the tool's `parameters`, and anything
else is an `UpstreamError`, never a tool call.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from app.core.config import LimitSettings
from app.core.errors import InvalidRequest, UpstreamError
from app.llm.base import (
    Backend,
    ChatRequest,
    Chunk,
    Embeddings,
    GenerateRequest,
    Message,
    ModelInfo,
    merge_chunks,
)
from app.llm.schema_limits import check_format

INSTRUCTIONS = (
    "You can call these tools:\n{tools}\n"
    'To call one, reply with {{"tool": NAME, "arguments": {{...}}}} where the arguments match '
    'its parameters. To answer without a tool, reply with {{"answer": TEXT}}.'
)


@dataclass(frozen=True)
class Tool:
    """One function tool of a request, its parameters' validator built once."""

    name: str
    description: str
    parameters: dict[str, Any]
    validator: Draft202012Validator


class ToolEmulatingBackend:
    """A backend whose models all take `tools`: natively where they can, emulated otherwise."""

    def __init__(self, inner: Backend, limits: LimitSettings) -> None:
        self.inner = inner
        self.name = inner.name
        self._limits = limits

    def chat(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        """The inner backend's answer, or an emulated tool choice if the model has no tools."""
        if not request.tools:
            return self.inner.chat(request)
        return self._chat(request)

    async def _chat(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        try:
            stream = self.inner.chat(request)
            first = await anext(stream)
        except InvalidRequest as exc:
            if not _lacks_tools(exc):
                raise
        except StopAsyncIteration:
            return
        else:
            try:
                yield first
                async for chunk in stream:
                    yield chunk
            finally:
                await stream.aclose()
            return
        async for chunk in self._emulate(request):
            yield chunk

    async def _emulate(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        if request.format is not None:
            raise InvalidRequest(
                "cannot be combined with tools on a model without native tools", field="format"
            )
        tools = parse_tools(request.tools or [])
        schema = choice_schema(tools)
        check_format(schema, self._limits, field="tools")
        emulated = request.model_copy(
            update={"messages": prompted(request.messages, tools), "tools": None, "format": schema}
        )
        merged = merge_chunks([chunk async for chunk in self.inner.chat(emulated)])
        content, calls = decide(merged.content, tools)
        yield Chunk(content=content, tool_calls=calls)
        done = Chunk(
            done=True,
            done_reason=merged.done_reason,
            prompt_eval_count=merged.prompt_eval_count,
            eval_count=merged.eval_count,
            load_duration=merged.load_duration,
            prompt_eval_duration=merged.prompt_eval_duration,
            eval_duration=merged.eval_duration,
        )
        yield done

    def generate(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]:
        """The inner backend's completion."""
        return self.inner.generate(request)

    async def start(self) -> None:
        """Start the inner backend."""
        await self.inner.start()

    async def aclose(self) -> None:
        """Close the inner backend."""
        await self.inner.aclose()

    async def embed(self, model: str, inputs: list[str], *, truncate: bool = True) -> Embeddings:
        """The inner backend's embeddings."""
        return await self.inner.embed(model, inputs, truncate=truncate)

    async def list_models(self) -> list[ModelInfo]:
        """The inner backend's models."""
        return await self.inner.list_models()

    async def show(self, model: str) -> dict[str, Any]:
        """The inner backend's `/api/show`, listing the tools capability it now has."""
        shown = await self.inner.show(model)
        capabilities = list(shown.get("capabilities") or [])
        return {**shown, "capabilities": [*capabilities, "tools"]}

    async def running(self) -> list[dict[str, Any]]:
        """The inner backend's loaded models."""
        return await self.inner.running()

    async def check(self) -> None:
        """The inner backend's health."""
        await self.inner.check()


def _lacks_tools(exc: InvalidRequest) -> bool:
    """Whether a refusal says the model has no tools (this project's, or Ollama's words)."""
    return exc.field == "tools" or "does not support tools" in exc.message


def parse_tools(tools: list[dict[str, Any]]) -> list[Tool]:
    """The request's function tools; InvalidRequest naming the first malformed one."""
    parsed = []
    for index, tool in enumerate(tools):
        function = tool.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if tool.get("type", "function") != "function" or not isinstance(name, str) or not name:
            raise InvalidRequest("must be a function with a name", field=f"tools.{index}")
        assert isinstance(function, dict)
        parameters = function.get("parameters") or {"type": "object"}
        where = f"tools.{index}.function.parameters"
        if not isinstance(parameters, dict) or parameters.get("type", "object") != "object":
            raise InvalidRequest("must be a JSON schema of an object", field=where)
        try:
            Draft202012Validator.check_schema(parameters)
        except SchemaError as exc:
            raise InvalidRequest(f"is not a JSON schema: {exc.message}", field=where) from None
        description = function.get("description")
        parsed.append(
            Tool(
                name=name,
                description=description if isinstance(description, str) else "",
                parameters=parameters,
                validator=Draft202012Validator(parameters),
            )
        )
    return parsed


def choice_schema(tools: list[Tool]) -> dict[str, Any]:
    """A schema admitting one call of one of the tools, or a plain answer."""
    calls = [
        {
            "type": "object",
            "properties": {"tool": {"const": tool.name}, "arguments": tool.parameters},
            "required": ["tool", "arguments"],
            "additionalProperties": False,
        }
        for tool in tools
    ]
    answer = {
        "type": "object",
        "properties": {"answer": {"type": "string"}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    return {"anyOf": [*calls, answer]}


def prompted(messages: list[Message], tools: list[Tool]) -> list[Message]:
    """The conversation for a model without tools: the tools described in the system message,
    earlier calls written as the JSON the model would have written, results as user turns."""
    listed = "\n".join(
        f"- {tool.name}: {tool.description} Parameters: {json.dumps(tool.parameters)}"
        for tool in tools
    )
    guide = INSTRUCTIONS.format(tools=listed)
    system = [m.content for m in messages if m.role == "system"]
    converted = [Message(role="system", content="\n\n".join([*system, guide]))]
    for message in messages:
        if message.role == "system":
            continue
        if message.role == "tool":
            name = message.tool_name or "the tool"
            text = f"{name} returned: {message.content}"
            converted.append(Message(role="user", content=text))
        elif message.tool_calls:
            written = [
                json.dumps(
                    {
                        "tool": (call.get("function") or {}).get("name", ""),
                        "arguments": (call.get("function") or {}).get("arguments", {}),
                    }
                )
                for call in message.tool_calls
            ]
            converted.append(Message(role="assistant", content="\n".join(written)))
        else:
            converted.append(Message(role=message.role, content=message.content))
    return converted


def decide(output: str, tools: list[Tool]) -> tuple[str, list[dict[str, Any]] | None]:
    """The model's JSON as (answer text, None) or ("", [the call]); UpstreamError otherwise."""
    try:
        choice = json.loads(output)
    except ValueError:
        choice = None
    if isinstance(choice, dict) and set(choice) == {"answer"} and isinstance(choice["answer"], str):
        return choice["answer"], None
    by_name = {tool.name: tool for tool in tools}
    if isinstance(choice, dict) and set(choice) == {"tool", "arguments"}:
        tool = by_name.get(choice["tool"]) if isinstance(choice["tool"], str) else None
        arguments = choice["arguments"]
        if tool is not None and tool.validator.is_valid(arguments):
            return "", [{"function": {"name": tool.name, "arguments": arguments}}]
    raise UpstreamError(
        "the model's reply was neither a valid call of one of the tools nor an answer"
    )
