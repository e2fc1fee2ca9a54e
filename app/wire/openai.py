"""OpenAI's chat and embedding shapes: requests converted into the pipeline's, answers out.

Both surfaces share one pipeline: a `/v1/chat/completions` request becomes the same
`ChatRequest` an equivalent `/api/chat` request would, so it hits the same cache entry.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.core.errors import InvalidRequest, LlamaradaError
from app.llm.base import ChatRequest, Chunk, JsonFormat, Message, Options, merge_chunks
from app.llm.completions import Reply
from app.wire.codec import dumps

OWNER = "llamarada"
DONE = b"data: [DONE]\n\n"


class TextPart(BaseModel):
    """A text part of a message's content."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["text"]
    text: str


class ImageURL(BaseModel):
    """An image, as a data URL: the gateway fetches nothing from the network for a client."""

    model_config = ConfigDict(extra="forbid", strict=True)

    url: str
    detail: str | None = None


class ImagePart(BaseModel):
    """An image part of a message's content."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["image_url"]
    image_url: ImageURL


class FunctionCall(BaseModel):
    """A function call as OpenAI writes it: arguments are a JSON string."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str
    arguments: str = "{}"


class ToolCall(BaseModel):
    """A tool call in an assistant message (`index` as streamed deltas carry it)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    index: int | None = None
    id: str = ""
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(BaseModel):
    """One message of an OpenAI chat."""

    model_config = ConfigDict(extra="forbid", strict=True)

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart | ImagePart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None


class JsonSchemaFormat(BaseModel):
    """`response_format.json_schema`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = "response"
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    strict: bool | None = None
    description: str | None = None


class ResponseFormat(BaseModel):
    """`response_format`: text, any JSON object, or JSON matching a schema."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class StreamOptions(BaseModel):
    """`stream_options`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    include_usage: bool = False
    include_obfuscation: bool | None = None  # accepted, nothing to obfuscate


class ChatCompletionRequest(BaseModel):
    """`POST /v1/chat/completions`; parameters the gateway cannot honour are refused by name."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(min_length=1, max_length=256)
    messages: list[ChatMessage]
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    response_format: ResponseFormat | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    n: int | None = Field(default=None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = None
    logit_bias: dict[str, float] | None = None
    user: str | None = None
    store: bool | None = None
    metadata: dict[str, str] | None = None
    service_tier: str | None = None
    reasoning_effort: Literal["low", "medium", "high"] | None = None

    def to_chat_request(self) -> ChatRequest:
        """The same request in the project's (Ollama's) shape."""
        self._refuse_unsupported()
        stop = [self.stop] if isinstance(self.stop, str) else self.stop
        options = Options(
            temperature=self.temperature,
            top_p=self.top_p,
            num_predict=self.max_completion_tokens or self.max_tokens,
            stop=stop,
            seed=self.seed,
            presence_penalty=self.presence_penalty,
            frequency_penalty=self.frequency_penalty,
        )
        tools = None if self.tool_choice == "none" else self.tools
        return ChatRequest(
            model=self.model,
            messages=_messages(self.messages),
            options=options if options.model_dump(exclude_none=True) else None,
            format=_format(self.response_format),
            tools=tools or None,
            think=self.reasoning_effort,
            stream=self.stream,
        )

    def _refuse_unsupported(self) -> None:
        if self.n not in (None, 1):
            raise InvalidRequest("only one choice (n=1) is supported", field="n")
        if self.logprobs or self.top_logprobs:
            raise InvalidRequest("log probabilities are not supported", field="logprobs")
        if self.logit_bias:
            raise InvalidRequest("logit_bias is not supported", field="logit_bias")
        if self.tool_choice not in (None, "auto", "none"):
            raise InvalidRequest(
                "only 'auto' and 'none' are supported: models choose their tools",
                field="tool_choice",
            )


class EmbeddingRequest(BaseModel):
    """`POST /v1/embeddings`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(min_length=1, max_length=256)
    input: str | list[str]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None

    @property
    def texts(self) -> list[str]:
        """The input as a list."""
        return [self.input] if isinstance(self.input, str) else self.input


def _messages(messages: list[ChatMessage]) -> list[Message]:
    """OpenAI messages as Ollama's: parts flattened, tool calls decoded, tool results named."""
    names_by_call: dict[str, str] = {}
    converted = []
    for index, message in enumerate(messages):
        text, images = _content(message, index)
        tool_calls = None
        if message.tool_calls:
            tool_calls = []
            for call in message.tool_calls:
                names_by_call[call.id] = call.function.name
                tool_calls.append(
                    {
                        "function": {
                            "name": call.function.name,
                            "arguments": _arguments(call.function.arguments, index),
                        }
                    }
                )
        role = "system" if message.role == "developer" else message.role
        tool_name = names_by_call.get(message.tool_call_id or "") if role == "tool" else None
        converted.append(
            Message(
                role=role,
                content=text,
                images=images or None,
                tool_calls=tool_calls,
                tool_name=tool_name,
            )
        )
    return converted


def _content(message: ChatMessage, index: int) -> tuple[str, list[str]]:
    if message.content is None or isinstance(message.content, str):
        return message.content or "", []
    texts, images = [], []
    for part in message.content:
        if isinstance(part, TextPart):
            texts.append(part.text)
            continue
        url = part.image_url.url
        prefix, _, data = url.partition(";base64,")
        if not prefix.startswith("data:image/") or not data:
            raise InvalidRequest(
                "images must be base64 data URLs; the gateway does not fetch URLs",
                field=f"messages.{index}.content",
            )
        images.append(data)
    return "\n".join(texts), images


def _arguments(arguments: str, index: int) -> dict[str, Any]:
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise InvalidRequest(
            "tool call arguments must be a JSON object", field=f"messages.{index}.tool_calls"
        )
    return value


def _format(response_format: ResponseFormat | None) -> JsonFormat:
    if response_format is None or response_format.type == "text":
        return None
    if response_format.type == "json_object":
        return "json"
    if response_format.json_schema is None or not response_format.json_schema.schema_:
        raise InvalidRequest("json_schema.schema is required", field="response_format")
    return response_format.json_schema.schema_


def completion_id() -> str:
    """A new `chatcmpl-` id."""
    return f"chatcmpl-{uuid.uuid4().hex}"


async def completion(reply: Reply) -> dict[str, Any]:
    """The whole answer as a `chat.completion`; a knowledge-base answer's sources included."""
    merged = merge_chunks([chunk async for chunk in reply.chunks])
    body = completion_object(reply.model, merged, completion_id())
    if reply.sources is not None:
        body["sources"] = reply.sources
    return body


def completion_object(model: str, merged: Chunk, completion_id: str) -> dict[str, Any]:
    """A whole answer as OpenAI's `chat.completion` object (also a batch's output lines)."""
    message: dict[str, Any] = {"role": "assistant", "content": merged.content, "refusal": None}
    if merged.tool_calls:
        message["tool_calls"] = tool_calls(merged.tool_calls, with_index=False)
        message["content"] = merged.content or None
    if merged.thinking:
        message["reasoning_content"] = merged.thinking
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": OWNER,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason(merged),
            }
        ],
        "usage": usage(merged),
    }


async def chunk_events(reply: Reply, include_usage: bool) -> AsyncIterator[bytes]:
    """SSE `chat.completion.chunk` events: the role, the deltas, the finish reason, the usage if
    asked; the caller ends the stream with `[DONE]`."""
    created = int(time.time())
    prefix = {
        "id": completion_id(),
        "object": "chat.completion.chunk",
        "created": created,
        "model": reply.model,
        "system_fingerprint": OWNER,
    }

    def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return b"data: " + dumps({**prefix, "choices": choices, **extra}) + b"\n\n"

    def choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

    called_tools = False
    yield event(choice({"role": "assistant", "content": ""}))
    async for chunk in reply.chunks:
        called_tools = called_tools or bool(chunk.tool_calls)
        delta: dict[str, Any] = {}
        if chunk.content:
            delta["content"] = chunk.content
        if chunk.thinking:
            delta["reasoning_content"] = chunk.thinking
        if chunk.tool_calls:
            delta["tool_calls"] = tool_calls(chunk.tool_calls, with_index=True)
        if delta:
            yield event(choice(delta))
        if chunk.done:
            finish = "tool_calls" if called_tools else finish_reason(chunk)
            sources = {} if reply.sources is None else {"sources": reply.sources}
            yield event(choice({}, finish), **sources)
            if include_usage:
                yield event([], usage=usage(chunk))


def sse_error(exc: LlamaradaError) -> bytes:
    """OpenAI's mid-stream error event."""
    error = {"message": exc.message, "type": exc.error_type, "param": None, "code": None}
    return b"data: " + dumps({"error": error}) + b"\n\n"


def model_object(name: str) -> dict[str, Any]:
    """A model as `/v1/models` lists it."""
    return {"id": name, "object": "model", "created": 0, "owned_by": OWNER}


def tool_calls(calls: list[dict[str, Any]], *, with_index: bool) -> list[dict[str, Any]]:
    """Ollama's tool calls (arguments as objects) in OpenAI's shape (arguments as JSON text)."""
    converted = []
    for index, call in enumerate(calls):
        function = call.get("function") or {}
        arguments = function.get("arguments", {})
        item: dict[str, Any] = {
            "id": call.get("id") or f"call_{uuid.uuid4().hex[:24]}",
            "type": "function",
            "function": {
                "name": function.get("name", ""),
                "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments),
            },
        }
        if with_index:
            item["index"] = index
        converted.append(item)
    return converted


def finish_reason(chunk: Chunk) -> str:
    """OpenAI's finish reason for an answer's last chunk."""
    if chunk.tool_calls:
        return "tool_calls"
    return "length" if chunk.done_reason == "length" else "stop"


def usage(chunk: Chunk) -> dict[str, int]:
    """OpenAI's token counts from an answer's last chunk."""
    return {
        "prompt_tokens": chunk.prompt_eval_count,
        "completion_tokens": chunk.eval_count,
        "total_tokens": chunk.prompt_eval_count + chunk.eval_count,
    }


def openai_field(exc: InvalidRequest) -> InvalidRequest:
    """A refusal of the internal request's `format`, naming the field the OpenAI request used."""
    return named_as(exc, {"format": "response_format.json_schema.schema"})


def named_as(exc: InvalidRequest, names: dict[str, str]) -> InvalidRequest:
    """A refusal of a field of the internal request (`format`, `options.num_predict`, ...),
    naming instead the dialect's field it came from (`names`: internal -> the dialect's)."""
    field = exc.field or ""
    for internal, external in names.items():
        if field == internal or field.startswith(f"{internal}."):
            reason = exc.message.removeprefix(f"{field}: ")
            return InvalidRequest(reason, field=external + field[len(internal) :])
    return exc
