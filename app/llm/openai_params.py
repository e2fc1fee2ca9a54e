"""Ollama-shaped requests as OpenAI chat and completion bodies, and OpenAI tool calls back."""

from __future__ import annotations

import json
from typing import Any

from app.core.errors import InvalidRequest, UpstreamError
from app.llm.base import ChatRequest, GenerateRequest, Message, Options

# Ollama option -> OpenAI parameter; the first group is OpenAI's own, the second the sampling
# extras that vLLM, llama.cpp's server, SGLang and LM Studio take beside them.
_PARAMS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "num_predict": "max_tokens",
    "stop": "stop",
    "seed": "seed",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "top_k": "top_k",
    "min_p": "min_p",
    "typical_p": "typical_p",
    "repeat_penalty": "repeat_penalty",
}
# Base64 openings of the image formats a data URL must name.
_IMAGE_TYPES = {"/9j/": "jpeg", "iVBOR": "png", "R0lGOD": "gif", "UklGR": "webp"}


def chat_body(request: ChatRequest) -> dict[str, Any]:
    """`/chat/completions` body for an Ollama chat request, always streamed with usage."""
    body: dict[str, Any] = {"model": request.model, "messages": _messages(request.messages)}
    if request.tools:
        body["tools"] = request.tools
    if isinstance(request.think, str):
        body["reasoning_effort"] = request.think
    return body | _options(request.options) | _format(request.format) | _streamed()


def generate_body(request: GenerateRequest) -> tuple[str, dict[str, Any]]:
    """The path and body for an Ollama generate request: raw prompts and suffixes go to the
    legacy `/completions`, the rest to `/chat/completions` as a one-turn chat."""
    for field in ("template", "context"):
        if getattr(request, field):
            raise InvalidRequest("not supported by OpenAI-compatible servers", field=field)
    options = _options(request.options) | _streamed()
    if request.raw or request.suffix is not None:
        if request.images:
            raise InvalidRequest("images need a chat prompt, not a raw one", field="images")
        body = {"model": request.model, "prompt": request.prompt, **options}
        if request.suffix is not None:
            body["suffix"] = request.suffix
        if request.format is not None:
            raise InvalidRequest("format needs a chat prompt, not a raw one", field="format")
        return "/completions", body
    messages = [Message(role="user", content=request.prompt, images=request.images)]
    if request.system:
        messages.insert(0, Message(role="system", content=request.system))
    body = {"model": request.model, "messages": _messages(messages)}
    if isinstance(request.think, str):
        body["reasoning_effort"] = request.think
    return "/chat/completions", body | options | _format(request.format)


def _streamed() -> dict[str, Any]:
    return {"stream": True, "stream_options": {"include_usage": True}}


def _options(options: Options | None) -> dict[str, Any]:
    given = options.model_dump(exclude_none=True) if options else {}
    params = {_PARAMS[name]: value for name, value in given.items() if name in _PARAMS}
    if params.get("max_tokens", 0) < 0:  # Ollama's "no limit"
        del params["max_tokens"]
    return params


def _format(json_format: Any) -> dict[str, Any]:
    if json_format is None:
        return {}
    if json_format == "json":
        return {"response_format": {"type": "json_object"}}
    schema = {"name": "response", "schema": json_format, "strict": True}
    return {"response_format": {"type": "json_schema", "json_schema": schema}}


def _messages(messages: list[Message]) -> list[dict[str, Any]]:
    """Ollama messages as OpenAI's: images as data URLs, tool calls given ids that the tool
    results after them answer (Ollama names a result's tool; OpenAI needs the call's id)."""
    converted: list[dict[str, Any]] = []
    pending: list[tuple[str, str]] = []  # (id, tool name) of calls not answered yet
    for index, message in enumerate(messages):
        item: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.images:
            parts: list[dict[str, Any]] = [{"type": "text", "text": message.content}]
            parts += [
                {"type": "image_url", "image_url": {"url": _data_url(image)}}
                for image in message.images
            ]
            item["content"] = parts
        if message.tool_calls:
            calls = []
            for number, call in enumerate(message.tool_calls):
                function = call.get("function") or {}
                call_id = call.get("id") or f"call_{index}_{number}"
                arguments = function.get("arguments", {})
                calls.append(
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {
                            "name": function.get("name", ""),
                            "arguments": arguments
                            if isinstance(arguments, str)
                            else json.dumps(arguments),
                        },
                    }
                )
                pending.append((call_id, function.get("name", "")))
            item["tool_calls"] = calls
        if message.role == "tool":
            match = next((p for p in pending if p[1] == message.tool_name), None)
            match = match or (pending[0] if pending else (f"call_{index}", ""))
            if match in pending:
                pending.remove(match)
            item["tool_call_id"] = match[0]
        converted.append(item)
    return converted


def _data_url(image: str) -> str:
    kind = next((k for start, k in _IMAGE_TYPES.items() if image.startswith(start)), "png")
    return f"data:image/{kind};base64,{image}"


class ToolCallParts:
    """Streamed tool-call fragments (by index: an id and name, then arguments piece by piece)
    joined into Ollama's calls, arguments as objects."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, Any]] = {}

    def add(self, deltas: Any) -> None:
        """Take one delta's `tool_calls` list."""
        if not isinstance(deltas, list):
            raise UpstreamError("the upstream sent tool_calls that are not a list")
        for delta in deltas:
            if not isinstance(delta, dict):
                raise UpstreamError("the upstream sent a tool call that is not an object")
            index = delta.get("index", len(self._calls))
            call = self._calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
            function = delta.get("function") or {}
            call["id"] = delta.get("id") or call["id"]
            call["name"] += function.get("name") or ""
            arguments = function.get("arguments")
            if isinstance(arguments, dict):  # some servers send the object itself
                arguments = json.dumps(arguments)
            call["arguments"] += arguments or ""

    def calls(self) -> list[dict[str, Any]] | None:
        """The finished calls in Ollama's shape; UpstreamError if arguments are not an object."""
        if not self._calls:
            return None
        finished = []
        for _, call in sorted(self._calls.items()):
            try:
                arguments = json.loads(call["arguments"] or "{}")
            except ValueError:
                arguments = None
            if not isinstance(arguments, dict):
                raise UpstreamError(f"the upstream's call of {call['name']!r} has bad arguments")
            item: dict[str, Any] = {"function": {"name": call["name"], "arguments": arguments}}
            if call["id"]:
                item["id"] = call["id"]
            finished.append(item)
        return finished
