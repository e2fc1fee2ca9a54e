"""Anthropic's Messages requests, converted into the pipeline's chat request.

A `/v1/messages` request becomes the same `ChatRequest` an equivalent `/api/chat` request would
(the system prompt as the first message, blocks flattened, `max_tokens` as `num_predict`), so
both share one cache entry, one set of limits and one set of metrics.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.core.errors import InvalidRequest
from app.llm.base import ChatRequest, Message, Options, Think


class Block(BaseModel):
    """What every content block may carry besides its content (accepted, without effect)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    cache_control: dict[str, Any] | None = None


class TextBlock(Block):
    """A text block."""

    type: Literal["text"]
    text: str
    citations: list[dict[str, Any]] | None = None


class ImageSource(BaseModel):
    """An image's bytes, base64: the gateway fetches no URL for a client."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["base64"]
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: str = Field(min_length=1)


class ImageBlock(Block):
    """An image block."""

    type: Literal["image"]
    source: ImageSource


class ToolUseBlock(Block):
    """The assistant's call of a tool."""

    type: Literal["tool_use"]
    id: str
    name: str
    input: dict[str, Any]


class ToolResultBlock(Block):
    """A tool's answer to the call `tool_use_id`."""

    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock] = ""
    is_error: bool | None = None


class ThinkingBlock(Block):
    """An earlier answer's reasoning, sent back with its signature."""

    type: Literal["thinking"]
    thinking: str
    signature: str = ""


class RedactedThinkingBlock(Block):
    """Reasoning the client cannot read; there is nothing to pass on."""

    type: Literal["redacted_thinking"]
    data: str


# Told apart by `type`: a bad block is reported against its own fields, not every block type's.
ContentBlock = Annotated[
    TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock,
    Field(discriminator="type"),
]


class MessageParam(BaseModel):
    """One turn of the conversation."""

    model_config = ConfigDict(extra="forbid", strict=True)

    role: Literal["user", "assistant"]
    content: str | list[ContentBlock]


class Tool(BaseModel):
    """A client tool the model may call."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=128)
    description: str | None = None
    input_schema: dict[str, Any]
    type: Literal["custom"] | None = None
    cache_control: dict[str, Any] | None = None
    strict: bool | None = None


class ToolChoice(BaseModel):
    """`tool_choice`: only `auto` and `none` can be honoured, the model picks its tools."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool | None = None


class ThinkingConfig(BaseModel):
    """`thinking`: extended reasoning on or off (the budget is the model's affair)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["enabled", "disabled", "adaptive"]
    budget_tokens: int | None = Field(default=None, ge=1)
    display: str | None = None


class Metadata(BaseModel):
    """`metadata`: an opaque user id, accepted."""

    model_config = ConfigDict(extra="forbid", strict=True)

    user_id: str | None = None


class JsonOutputFormat(BaseModel):
    """`output_config.format`: answer with JSON matching the schema."""

    model_config = ConfigDict(extra="forbid", strict=True)

    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema", min_length=1)


class OutputConfig(BaseModel):
    """`output_config`: how hard a thinking model thinks, and the answer's JSON schema."""

    model_config = ConfigDict(extra="forbid", strict=True)

    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None
    format: JsonOutputFormat | None = None


class CountTokensRequest(BaseModel):
    """`POST /v1/messages/count_tokens`: what a `/v1/messages` request would send the model."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(min_length=1, max_length=256)
    messages: list[MessageParam]
    system: str | list[TextBlock] | None = None
    tools: list[Tool] | None = None
    tool_choice: ToolChoice | None = None
    thinking: ThinkingConfig | None = None
    output_config: OutputConfig | None = None
    cache_control: dict[str, Any] | None = None  # prompt caching hints: accepted, no effect

    def estimated_tokens(self) -> int:
        """About a token per four characters of the prompt (Ollama's estimate too): the
        upstream servers have no tokenizer endpoint to ask."""
        return max(1, _prompt_chars(self) // 4)


class MessagesRequest(CountTokensRequest):
    """`POST /v1/messages`; parameters the gateway cannot honour are refused by name."""

    max_tokens: int = Field(ge=1)
    stop_sequences: list[str] | None = None
    stream: bool = False
    temperature: float | None = Field(default=None, ge=0, le=1)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=0)
    metadata: Metadata | None = None
    service_tier: Literal["auto", "standard_only"] | None = None
    speed: Literal["standard", "fast"] | None = None
    inference_geo: str | None = None

    def to_chat_request(self, max_tokens_cap: int) -> ChatRequest:
        """The same request in the project's (Ollama's) shape. `max_tokens` is required here, so
        clients send a generous budget (Claude Code asks for 32000): above the gateway's cap it
        is lowered to the cap, and an answer cut there ends with `stop_reason: "max_tokens"`."""
        choice = self.tool_choice.type if self.tool_choice else "auto"
        if choice in ("any", "tool"):
            raise InvalidRequest(
                "only 'auto' and 'none' are supported: models choose their tools",
                field="tool_choice.type",
            )
        options = Options(
            num_predict=min(self.max_tokens, max_tokens_cap),
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            stop=self.stop_sequences or None,
        )
        tools = [_tool(tool) for tool in self.tools or []] if choice == "auto" else []
        output = self.output_config or OutputConfig()
        return ChatRequest(
            model=self.model,
            messages=[*_system(self.system), *_messages(self.messages)],
            options=options,
            format=output.format.schema_ if output.format else None,
            tools=tools or None,
            think=_think(self.thinking, output.effort),
            stream=self.stream,
        )


def _system(system: str | list[TextBlock] | None) -> list[Message]:
    text = system if isinstance(system, str) or system is None else _joined(system)
    return [Message(role="system", content=text)] if text else []


def _messages(messages: list[MessageParam]) -> list[Message]:
    """Anthropic turns as Ollama messages: tool results become `tool` messages named after the
    call they answer, images go into `images`, reasoning into `thinking`."""
    names_by_id: dict[str, str] = {}
    converted: list[Message] = []
    for index, message in enumerate(messages):
        if isinstance(message.content, str):
            converted.append(Message(role=message.role, content=message.content))
            continue
        texts, images, thinking = [], [], []
        calls: list[dict[str, Any]] = []
        for block in message.content:
            if isinstance(block, TextBlock):
                texts.append(block.text)
            elif isinstance(block, ImageBlock):
                images.append(block.source.data)
            elif isinstance(block, ThinkingBlock):
                thinking.append(block.thinking)
            elif isinstance(block, ToolUseBlock):
                if message.role != "assistant":
                    raise InvalidRequest(
                        "tool_use blocks belong to assistant turns", field=f"messages.{index}"
                    )
                names_by_id[block.id] = block.name
                calls.append({"function": {"name": block.name, "arguments": block.input}})
            elif isinstance(block, ToolResultBlock):
                if block.tool_use_id not in names_by_id:
                    raise InvalidRequest(
                        f"answers no earlier tool_use block ({block.tool_use_id!r})",
                        field=f"messages.{index}.content",
                    )
                converted.append(_tool_result(block, names_by_id[block.tool_use_id]))
        if texts or images or thinking or calls or not message.content:
            converted.append(
                Message(
                    role=message.role,
                    content="\n".join(texts),
                    images=images or None,
                    tool_calls=calls or None,
                    thinking="".join(thinking) or None,
                )
            )
    return converted


def _tool_result(block: ToolResultBlock, name: str) -> Message:
    if isinstance(block.content, str):
        text, images = block.content, None
    else:
        text = _joined([part for part in block.content if isinstance(part, TextBlock)])
        images = [part.source.data for part in block.content if isinstance(part, ImageBlock)]
    if block.is_error:
        text = f"Error: {text}"
    return Message(role="tool", content=text, images=images or None, tool_name=name)


def _joined(blocks: list[TextBlock]) -> str:
    return "\n".join(block.text for block in blocks)


def _tool(tool: Tool) -> dict[str, Any]:
    """An Anthropic tool as an Ollama (OpenAI-style) function tool."""
    function: dict[str, Any] = {"name": tool.name, "parameters": tool.input_schema}
    if tool.description:
        function["description"] = tool.description
    return {"type": "function", "function": function}


_EFFORT: dict[str, Think] = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high"}
_EFFORT["max"] = "high"


def _think(thinking: ThinkingConfig | None, effort: str | None) -> Think:
    if thinking is not None:
        return thinking.type != "disabled"
    return None if effort is None else _EFFORT[effort]


def _prompt_chars(request: CountTokensRequest) -> int:
    chars = len(request.system) if isinstance(request.system, str) else 0
    if isinstance(request.system, list):
        chars += sum(len(block.text) for block in request.system)
    for message in request.messages:
        chars += len(message.role)
        if isinstance(message.content, str):
            chars += len(message.content)
        else:
            chars += sum(len(block.model_dump_json()) for block in message.content)
    for tool in request.tools or []:
        chars += len(tool.model_dump_json(exclude_none=True))
    return chars
