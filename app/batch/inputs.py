"""A batch's input: a JSON body, or JSONL (ours or OpenAI's) where each bad line fails alone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.batch.records import BatchItem, BatchRequest, chat_item, prompt_messages
from app.core.errors import InvalidRequest, PayloadTooLarge
from app.llm.base import Message, Options
from app.wire.codec import loads
from app.wire.openai import ChatCompletionRequest

_CUSTOM_ID = re.compile(r'"custom_id"\s*:\s*"([^"\\]{1,512})"')


@dataclass
class ParsedInput:
    """The items read, by index, and the lines that could not be read."""

    items: dict[int, BatchItem] = field(default_factory=dict)
    invalid: dict[int, tuple[str | None, InvalidRequest]] = field(default_factory=dict)
    line_numbers: dict[int, int] = field(default_factory=dict)  # item index -> line in the file

    @property
    def total(self) -> int:
        """Items, good and bad."""
        return len(self.items) + len(self.invalid)


class JsonlLine(BaseModel):
    """One line of a `/api/batch/jobs` JSONL upload: a prompt or a chat."""

    model_config = ConfigDict(extra="forbid", strict=True)

    custom_id: str | None = Field(default=None, max_length=512)
    model: str | None = Field(default=None, max_length=256)
    prompt: str | None = None
    system: str | None = None
    messages: list[Message] | None = None
    options: Options | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> JsonlLine:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("send exactly one of 'prompt' and 'messages'")
        return self


class OpenAILine(BaseModel):
    """One line of an OpenAI batch input file."""

    model_config = ConfigDict(extra="forbid", strict=True)

    custom_id: str = Field(min_length=1, max_length=512)
    method: Literal["POST"]
    url: str
    body: dict[str, Any]


def from_request(body: BatchRequest) -> ParsedInput:
    """The items of a JSON body."""
    return ParsedInput(items=dict(enumerate(body.items())))


def from_jsonl(data: bytes, *, model: str, max_items: int) -> ParsedInput:
    """The items of our JSONL; `model` serves lines that name none."""
    parsed = ParsedInput()
    for index, number, value in _lines(data, max_items, parsed):
        _add_native(parsed, index, number, value, model)
    return parsed


def from_json_list(values: list[Any], *, model: str, max_items: int) -> ParsedInput:
    """The items of a JSON array: prompts as strings, or objects shaped like JSONL lines."""
    if not values:
        raise InvalidRequest("the batch has no items")
    if len(values) > max_items:
        raise PayloadTooLarge(f"more than {max_items} items; split the batch into several jobs")
    parsed = ParsedInput()
    for index, value in enumerate(values):
        line = {"prompt": value} if isinstance(value, str) else value
        _add_native(parsed, index, index + 1, line, model)
    return parsed


def _add_native(parsed: ParsedInput, index: int, number: int, value: Any, model: str) -> None:
    custom_id = _custom_id(value)
    try:
        line = JsonlLine.model_validate(value)
    except ValidationError as exc:
        parsed.invalid[index] = (custom_id, _invalid(exc, number))
        return
    if line.prompt is not None:
        messages = prompt_messages(line.prompt, line.system)
    else:
        messages = [m.model_dump(exclude_none=True) for m in line.messages or []]
    parsed.items[index] = chat_item(line.model or model, messages, line.options, line.custom_id)


def from_openai_jsonl(data: bytes, *, endpoint: str, max_items: int) -> ParsedInput:
    """The items of an OpenAI batch input file: unique `custom_id`s, one endpoint."""
    parsed = ParsedInput()
    seen: dict[str, int] = {}
    for index, number, value in _lines(data, max_items, parsed):
        custom_id = _custom_id(value)
        try:
            line = OpenAILine.model_validate(value)
            if line.url != endpoint:
                raise InvalidRequest(f"must be the batch's endpoint {endpoint}", field="url")
            if line.custom_id in seen:
                raise InvalidRequest(
                    f"duplicate of line {seen[line.custom_id]}'s", field="custom_id"
                )
            ChatCompletionRequest.model_validate(line.body).to_chat_request()
        except ValidationError as exc:
            parsed.invalid[index] = (custom_id, _invalid(exc, number))
            continue
        except InvalidRequest as exc:
            where = f"line {number}: {exc.field}" if exc.field else f"line {number}"
            detail = exc.message.removeprefix(f"{exc.field}: ")
            parsed.invalid[index] = (custom_id, InvalidRequest(detail, field=where))
            continue
        seen[line.custom_id] = number
        parsed.items[index] = BatchItem(route="openai_chat", body=line.body, custom_id=custom_id)
    return parsed


def _lines(data: bytes, max_items: int, parsed: ParsedInput) -> Iterator[tuple[int, int, Any]]:
    """(item index, line number, JSON value) of each non-blank line; bad JSON fails alone."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"the file is not UTF-8 text: {exc}") from None
    index = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        if index >= max_items:
            raise PayloadTooLarge(f"more than {max_items} items; split the batch into several jobs")
        parsed.line_numbers[index] = number
        try:
            value = loads(raw, f"line {number}")
        except InvalidRequest as error:
            # A custom_id readable in the broken line still lets the caller match the error.
            salvaged = _CUSTOM_ID.search(raw)
            parsed.invalid[index] = (salvaged.group(1) if salvaged else None, error)
        else:
            yield index, number, value
        index += 1
    if index == 0:
        raise InvalidRequest("the batch has no items")


def _custom_id(value: Any) -> str | None:
    custom_id = value.get("custom_id") if isinstance(value, dict) else None
    return custom_id if isinstance(custom_id, str) else None


def _invalid(exc: ValidationError, number: int) -> InvalidRequest:
    return InvalidRequest.from_validation(exc, f"line {number}")
