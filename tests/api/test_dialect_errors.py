"""Bad input on the Anthropic, Responses and legacy completions routes: each malformed field
gets its dialect's own error body, naming the field, and never reaches the model."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from app.core.errors import UpstreamUnavailable
from app.main import create_app
from tests.conftest import app_client
from tests.fakes import ScriptedBackend

MODEL = "scripted:1b"
USER = [{"role": "user", "content": "hi"}]
MESSAGES = {"model": MODEL, "max_tokens": 16, "messages": USER}
RESPONSES = {"model": MODEL, "input": "hi"}
COMPLETIONS = {"model": MODEL, "prompt": "hi"}
PNG = "iVBORw0KGgo="
CALL = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}


def blocks(answer: httpx.Response) -> list[str]:
    """The events of a Server-Sent Events body."""
    return [block for block in answer.text.strip().split("\n\n") if block]


def without(body: dict[str, Any], field: str) -> dict[str, Any]:
    """The body less one field."""
    return {key: value for key, value in body.items() if key != field}


def user(*blocks: dict[str, Any]) -> list[dict[str, Any]]:
    """One user turn of content blocks."""
    return [{"role": "user", "content": list(blocks)}]


ANTHROPIC_CASES = [
    # missing required fields
    (without(MESSAGES, "max_tokens"), "max_tokens"),
    (without(MESSAGES, "messages"), "messages"),
    (without(MESSAGES, "model"), "model"),
    # numbers out of range, or of the wrong type
    ({**MESSAGES, "max_tokens": 0}, "max_tokens"),
    ({**MESSAGES, "max_tokens": "16"}, "max_tokens"),
    ({**MESSAGES, "temperature": 1.5}, "temperature"),
    ({**MESSAGES, "top_p": -0.1}, "top_p"),
    ({**MESSAGES, "top_k": -1}, "top_k"),
    ({**MESSAGES, "stream": "yes"}, "stream"),
    ({**MESSAGES, "stop_sequences": "END"}, "stop_sequences"),
    # roles and blocks
    ({**MESSAGES, "messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
    ({**MESSAGES, "messages": user({"type": "video", "url": "x"})}, "messages.0.content"),
    ({**MESSAGES, "system": [{"type": "image"}]}, "system"),
    (
        {**MESSAGES, "messages": user({"type": "image", "source": {"type": "url", "url": "x"}})},
        "messages.0.content",
    ),
    (
        {**MESSAGES, "messages": user({"type": "tool_result", "tool_use_id": "toolu_9"})},
        "messages.0.content",
    ),
    ({**MESSAGES, "messages": user(CALL)}, "messages.0"),
    # tools
    ({**MESSAGES, "tools": [{"name": "f"}]}, "tools.0.input_schema"),
    ({**MESSAGES, "tool_choice": {"type": "tool", "name": "f"}}, "tool_choice.type"),
    ({**MESSAGES, "tool_choice": {"type": "sometimes"}}, "tool_choice.type"),
    # what the gateway does not know
    ({**MESSAGES, "frequency_penalty": 1}, "frequency_penalty"),
    ({**MESSAGES, "output_config": {"format": {"type": "json_schema", "schema": []}}}, "schema"),
]
RESPONSES_CASES = [
    (without(RESPONSES, "input"), "input"),
    ({**RESPONSES, "max_output_tokens": 0}, "max_output_tokens"),
    ({**RESPONSES, "max_output_tokens": 10**6}, "max_output_tokens"),
    ({**RESPONSES, "input": [{"role": "user", "content": "x"}] * 300}, "input"),
    ({**RESPONSES, "temperature": 3}, "temperature"),
    ({**RESPONSES, "previous_response_id": "resp_1"}, "previous_response_id"),
    ({**RESPONSES, "conversation": "conv_1"}, "conversation"),
    ({**RESPONSES, "background": True}, "background"),
    ({**RESPONSES, "tool_choice": "required"}, "tool_choice"),
    ({**RESPONSES, "tools": [{"type": "web_search"}]}, "tools.0"),
    ({**RESPONSES, "input": [{"role": "robot", "content": "x"}]}, "input.0"),
    (
        {
            **RESPONSES,
            "input": [
                {
                    "role": "user",
                    "content": [{"type": "input_image", "image_url": "https://example.com/a.png"}],
                }
            ],
        },
        "input.0.content",
    ),
    (
        {**RESPONSES, "input": [{"type": "function_call_output", "call_id": "c", "output": "x"}]},
        "input.0.call_id",
    ),
    (
        {
            **RESPONSES,
            "input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "[1]"}],
        },
        "input.0.arguments",
    ),
    ({**RESPONSES, "text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
    (
        {
            **RESPONSES,
            "text": {"format": {"type": "json_schema", "schema": {"maxLength": 10**9}}},
        },
        "text.format.schema",
    ),
    ({**RESPONSES, "seed": 1}, "seed"),
]
COMPLETIONS_CASES = [
    (without(COMPLETIONS, "prompt"), "prompt"),
    ({**COMPLETIONS, "prompt": ["a", "b"]}, "prompt"),
    ({**COMPLETIONS, "prompt": [1, 2]}, "prompt"),
    ({**COMPLETIONS, "max_tokens": 0}, "max_tokens"),
    ({**COMPLETIONS, "max_tokens": 10**6}, "max_tokens"),
    ({**COMPLETIONS, "n": 2}, "n"),
    ({**COMPLETIONS, "echo": True}, "echo"),
    ({**COMPLETIONS, "logprobs": 2}, "logprobs"),
    ({**COMPLETIONS, "suffixes": "x"}, "suffixes"),
]


@pytest.fixture
def backend() -> ScriptedBackend:
    """The scripted model, which records every request that reaches it."""
    return ScriptedBackend()


@pytest.fixture
async def client(settings: Settings, backend: ScriptedBackend) -> AsyncIterator[httpx.AsyncClient]:
    """An app on the scripted backend."""
    async with app_client(create_app(settings, backend=backend)) as client:
        yield client


@pytest.mark.parametrize(("body", "field"), ANTHROPIC_CASES)
async def test_anthropic_bad_field_is_a_400_naming_it(
    client: httpx.AsyncClient, backend: ScriptedBackend, body: dict[str, Any], field: str
) -> None:
    answer = await client.post("/v1/messages", json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert field in error["error"]["message"]
    assert backend.calls == 0


@pytest.mark.parametrize(("body", "field"), RESPONSES_CASES)
async def test_responses_bad_field_is_a_4xx_naming_it(
    client: httpx.AsyncClient, backend: ScriptedBackend, body: dict[str, Any], field: str
) -> None:
    answer = await client.post("/v1/responses", json=body)
    assert answer.status_code in (400, 422), answer.text
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert field in error["message"]
    assert error["param"] is not None
    assert error["param"].startswith(field.split(".")[0])
    assert backend.calls == 0


@pytest.mark.parametrize(("body", "field"), COMPLETIONS_CASES)
async def test_legacy_completions_bad_field_is_a_4xx_naming_it(
    client: httpx.AsyncClient, backend: ScriptedBackend, body: dict[str, Any], field: str
) -> None:
    answer = await client.post("/v1/completions", json=body)
    assert answer.status_code in (400, 422), answer.text
    error = answer.json()["error"]
    assert field in error["message"]
    assert error["param"] == field
    assert backend.calls == 0


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens", "/v1/responses"])
async def test_bodies_that_are_not_json_are_400(client: httpx.AsyncClient, path: str) -> None:
    headers = {"Content-Type": "application/json"}
    broken = await client.post(path, content=b'{"model": ', headers=headers)
    nan = await client.post(path, content=b'{"model": "x", "max_tokens": NaN}', headers=headers)
    assert broken.status_code == 400
    assert nan.status_code in (400, 422)
    if path.startswith("/v1/messages"):
        assert broken.json()["type"] == "error"
        assert nan.json()["error"]["type"] == "invalid_request_error"
        assert "max_tokens" in nan.json()["error"]["message"]
    else:
        assert broken.json()["error"]["type"] == "invalid_request_error"


async def test_failures_mid_stream_end_with_the_dialects_error_event(settings: Settings) -> None:
    backend = ScriptedBackend(fail_after=2, error=UpstreamUnavailable("the model server left"))
    async with app_client(create_app(settings, backend=backend)) as client:
        messages = await client.post("/v1/messages", json={**MESSAGES, "stream": True})
        responses = await client.post("/v1/responses", json={**RESPONSES, "stream": True})
        legacy = await client.post("/v1/completions", json={**COMPLETIONS, "stream": True})
    assert messages.status_code == 200
    last = messages.text.strip().split("\n\n")[-1]
    assert last.startswith("event: error\n")
    error = '"error":{"type":"overloaded_error","message":"the model server left"}'
    assert '"type":"error",' + error in last
    assert "message_stop" not in messages.text
    last = responses.text.strip().split("\n\n")[-1]
    assert last.startswith("event: error\n")
    assert '"message":"the model server left"' in last
    assert "response.completed" not in responses.text
    numbers = [json.loads(b.split("data: ", 1)[1])["sequence_number"] for b in blocks(responses)]
    assert numbers == list(range(len(numbers)))  # the error event continues the numbering
    assert legacy.text.endswith("data: [DONE]\n\n")
    assert '"message":"the model server left"' in legacy.text


async def test_a_missing_model_is_404_in_each_dialect(client: httpx.AsyncClient) -> None:
    messages = await client.post("/v1/messages", json={**MESSAGES, "model": "nope:1b"})
    counted = await client.post(
        "/v1/messages/count_tokens", json={"model": "nope:1b", "messages": USER}
    )
    responses = await client.post("/v1/responses", json={**RESPONSES, "model": "nope:1b"})
    legacy = await client.post("/v1/completions", json={**COMPLETIONS, "model": "nope:1b"})
    for answer in (messages, counted):
        assert answer.status_code == 404
        assert answer.json()["error"]["type"] == "not_found_error"
    for answer in (responses, legacy):
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "model_not_found"


async def test_an_oversize_body_is_413_in_each_dialect(settings: Settings) -> None:
    limits = settings.limits.model_copy(update={"max_body_bytes": 1024})
    small = settings.model_copy(update={"limits": limits})
    words = [{"role": "user", "content": "word " * 400}]
    async with app_client(create_app(small, backend=ScriptedBackend())) as client:
        anthropic = await client.post("/v1/messages", json={**MESSAGES, "messages": words})
        openai = await client.post("/v1/responses", json={**RESPONSES, "input": "word " * 400})
    assert anthropic.status_code == 413
    assert anthropic.json() == {
        "type": "error",
        "error": {
            "type": "request_too_large",
            "message": "the request body is over the 1024-byte limit",
        },
    }
    assert openai.status_code == 413
    assert openai.json()["error"]["type"] == "payload_too_large"
