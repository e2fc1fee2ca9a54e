"""OpenAI's Responses requests (stateless), converted into the pipeline's chat request.

A `/v1/responses` request becomes the same `ChatRequest` an equivalent `/api/chat` request would
(`instructions` as the system message, `max_output_tokens` as `num_predict`), so both share one
cache entry. Nothing is stored: `previous_response_id` and `conversation` are refused by name,
and a client sends the whole conversation as `input` items, as Ollama's Responses API asks.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from app.core.errors import InvalidRequest
from app.llm.base import ChatRequest, JsonFormat, Message, Options


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class InputText(_Strict):
    """Text from the user (or the system)."""

    type: Literal["input_text"]
    text: str


class InputImage(_Strict):
    """An image as a data URL: the gateway fetches nothing from the network for a client."""

    type: Literal["input_image"]
    image_url: str
    detail: Literal["low", "high", "auto", "original"] | None = None


class OutputText(_Strict):
    """An earlier answer's text, sent back as part of the conversation."""

    type: Literal["output_text"]
    text: str
    annotations: list[dict[str, Any]] | None = None
    logprobs: list[dict[str, Any]] | None = None


class Refusal(_Strict):
    """An earlier refusal, sent back."""

    type: Literal["refusal"]
    refusal: str


class MessageItem(_Strict):
    """A message; `type` may be left out, as the API allows."""

    type: Literal["message"] | None = None
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[InputText | InputImage | OutputText | Refusal]
    id: str | None = None
    status: str | None = None
    phase: str | None = None


class FunctionCallItem(_Strict):
    """An earlier call of a function tool (`arguments` as JSON text)."""

    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str
    id: str | None = None
    status: str | None = None


class FunctionCallOutputItem(_Strict):
    """A function's answer to `call_id`."""

    type: Literal["function_call_output"]
    call_id: str
    output: str | list[InputText | InputImage]
    id: str | None = None
    status: str | None = None


class ReasoningItem(_Strict):
    """An earlier answer's reasoning, sent back; the model does not need it again."""

    type: Literal["reasoning"]
    id: str | None = None
    summary: list[dict[str, Any]] = []
    content: list[dict[str, Any]] | None = None
    encrypted_content: str | None = None
    status: str | None = None


def _item_type(item: Any) -> str:
    """An input item's `type`; a message may leave it out."""
    kind = item.get("type") if isinstance(item, dict) else getattr(item, "type", None)
    return kind if isinstance(kind, str) else "message"


# Told apart by `type`: a bad item is reported against its own fields, not every item type's.
InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[ReasoningItem, Tag("reasoning")],
    Discriminator(_item_type),
]


class FunctionTool(_Strict):
    """A function the model may call."""

    type: Literal["function"]
    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class TextFormat(_Strict):
    """`text.format`: plain text, any JSON object, or JSON matching a schema."""

    type: Literal["text", "json_object", "json_schema"]
    name: str | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None
    description: str | None = None


class TextConfig(_Strict):
    """`text`."""

    format: TextFormat | None = None
    verbosity: Literal["low", "medium", "high"] | None = None


class Reasoning(_Strict):
    """`reasoning`: how hard a thinking model thinks."""

    effort: Literal["none", "minimal", "low", "medium", "high", "xhigh"] | None = None
    summary: Literal["auto", "concise", "detailed"] | None = None
    generate_summary: Literal["auto", "concise", "detailed"] | None = None


class StreamOptions(_Strict):
    """`stream_options`."""

    include_obfuscation: bool | None = None  # accepted, nothing to obfuscate


class ResponsesRequest(_Strict):
    """`POST /v1/responses`; what needs stored state, and what cannot be honoured, is refused."""

    model: str = Field(min_length=1, max_length=256)
    input: str | list[InputItem]
    instructions: str | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    tools: list[FunctionTool] | None = None
    tool_choice: Literal["auto", "none", "required"] | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    text: TextConfig | None = None
    reasoning: Reasoning | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    previous_response_id: str | None = None
    conversation: str | dict[str, Any] | None = None
    background: bool | None = None
    store: bool | None = None
    include: list[str] | None = None
    metadata: dict[str, str] | None = None
    user: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None
    truncation: Literal["auto", "disabled"] | None = None
    service_tier: str | None = None
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    max_tool_calls: int | None = Field(default=None, ge=1)

    def to_chat_request(self) -> ChatRequest:
        """The same request in the project's (Ollama's) shape."""
        self._refuse_unsupported()
        options = Options(
            num_predict=self.max_output_tokens, temperature=self.temperature, top_p=self.top_p
        )
        messages = [Message(role="system", content=self.instructions)] if self.instructions else []
        if isinstance(self.input, str):
            messages.append(Message(role="user", content=self.input))
        else:
            messages += _messages(self.input)
        tools = [_tool(tool) for tool in self.tools or []] if self.tool_choice != "none" else []
        effort = self.reasoning.effort if self.reasoning else None
        return ChatRequest(
            model=self.model,
            messages=messages,
            options=options if options.model_dump(exclude_none=True) else None,
            format=self.format(),
            tools=tools or None,
            think=effort if effort in ("low", "medium", "high") else None,
            stream=self.stream,
        )

    def format(self) -> JsonFormat:
        """`text.format` as the pipeline's `format`."""
        requested = self.text.format if self.text else None
        if requested is None or requested.type == "text":
            return None
        if requested.type == "json_object":
            return "json"
        if not requested.schema_:
            raise InvalidRequest(
                "a json_schema format needs its schema", field="text.format.schema"
            )
        return requested.schema_

    def _refuse_unsupported(self) -> None:
        stateful = "nothing is stored here: send the whole conversation as `input` items"
        if self.previous_response_id is not None:
            raise InvalidRequest(stateful, field="previous_response_id")
        if self.conversation is not None:
            raise InvalidRequest(stateful, field="conversation")
        if self.background:
            raise InvalidRequest("background responses are not supported", field="background")
        if self.top_logprobs:
            raise InvalidRequest("log probabilities are not supported", field="top_logprobs")
        if self.tool_choice not in (None, "auto", "none"):
            raise InvalidRequest(
                "only 'auto' and 'none' are supported: models choose their tools",
                field="tool_choice",
            )


def _messages(items: list[InputItem]) -> list[Message]:
    """Input items as Ollama messages: calls join the assistant turn they follow, outputs become
    `tool` messages named after their call, images are passed on as base64."""
    names_by_call: dict[str, str] = {}
    converted: list[Message] = []
    for index, item in enumerate(items):
        if isinstance(item, MessageItem):
            text, images = _content(item.content, index)
            role = "system" if item.role == "developer" else item.role
            converted.append(Message(role=role, content=text, images=images or None))
        elif isinstance(item, FunctionCallItem):
            names_by_call[item.call_id] = item.name
            call = {"function": {"name": item.name, "arguments": _arguments(item, index)}}
            last = converted[-1] if converted else None
            if last is None or last.role != "assistant":
                last = Message(role="assistant", content="")
                converted.append(last)
            last.tool_calls = [*(last.tool_calls or []), call]
        elif isinstance(item, FunctionCallOutputItem):
            if item.call_id not in names_by_call:
                raise InvalidRequest(
                    f"answers no earlier function_call ({item.call_id!r})",
                    field=f"input.{index}.call_id",
                )
            text, images = _content(item.output, index)
            converted.append(
                Message(
                    role="tool",
                    content=text,
                    images=images or None,
                    tool_name=names_by_call[item.call_id],
                )
            )
    return converted


def _content(
    content: str
    | list[InputText | InputImage | OutputText | Refusal]
    | list[InputText | InputImage],
    index: int,
) -> tuple[str, list[str]]:
    if isinstance(content, str):
        return content, []
    texts, images = [], []
    for part in content:
        if isinstance(part, InputImage):
            prefix, _, data = part.image_url.partition(";base64,")
            if not prefix.startswith("data:image/") or not data:
                raise InvalidRequest(
                    "images must be base64 data URLs; the gateway does not fetch URLs",
                    field=f"input.{index}.content",
                )
            images.append(data)
        else:
            texts.append(part.refusal if isinstance(part, Refusal) else part.text)
    return "\n".join(texts), images


def _arguments(item: FunctionCallItem, index: int) -> dict[str, Any]:
    try:
        value = json.loads(item.arguments or "{}")
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise InvalidRequest("must be a JSON object", field=f"input.{index}.arguments")
    return value


def _tool(tool: FunctionTool) -> dict[str, Any]:
    """A Responses function tool as an Ollama (chat completions) one."""
    function: dict[str, Any] = {"name": tool.name}
    if tool.description:
        function["description"] = tool.description
    function["parameters"] = tool.parameters or {"type": "object", "properties": {}}
    return {"type": "function", "function": function}
