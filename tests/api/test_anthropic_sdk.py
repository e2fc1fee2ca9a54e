"""The official `anthropic` SDK, unchanged, against a running Llamarada on `/v1/messages`."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from pydantic import SecretStr

from app.core.config import Settings
from app.llm.base import ChatRequest
from app.main import create_app
from tests.fakes import ScriptedBackend, ToolCallingBackend
from tests.servers import serve_in_thread

MODEL = "smollm2:135m"
KEY = "anthropic-test-key-0123456789"
# This SDK has no sampling arguments of its own; the API (and the gateway) still takes them.
COLD = {"temperature": 0}
QUESTION: Any = [{"role": "user", "content": "Name a fruit."}]
WEATHER: Any = [
    {
        "name": "get_weather",
        "description": "Current weather in a city",
        "input_schema": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    """A Llamarada on the real embedded model, over real HTTP."""
    with serve_in_thread(create_app(Settings(_env_file=None))) as base:
        yield base


@pytest.fixture
def client(url: str) -> Iterator[anthropic.Anthropic]:
    """The SDK pointed at the gateway (any key: the gateway has none configured)."""
    with anthropic.Anthropic(base_url=url, api_key="unused", max_retries=0) as sdk:
        yield sdk


def test_anthropic_sdk_create_then_stream_the_same_answer(client: anthropic.Anthropic) -> None:
    created = client.messages.create(
        model=MODEL, max_tokens=8, system="Answer briefly.", messages=QUESTION, extra_body=COLD
    )
    assert created.type == "message"
    assert created.role == "assistant"
    assert created.model == MODEL
    assert created.id.startswith("msg_")
    assert created.stop_reason in ("end_turn", "max_tokens")
    assert created.content[0].type == "text"
    assert created.content[0].text
    assert created.usage.input_tokens > 5
    assert 0 < created.usage.output_tokens <= 8
    with client.messages.stream(
        model=MODEL, max_tokens=8, system="Answer briefly.", messages=QUESTION, extra_body=COLD
    ) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed == created.content[0].text
    assert final.content[0].type == "text"
    assert final.content[0].text == streamed
    assert final.stop_reason == created.stop_reason
    assert final.usage.output_tokens == created.usage.output_tokens
    assert final.usage.input_tokens == created.usage.input_tokens  # the real count, at the end


def test_anthropic_sdk_max_tokens_is_the_stop_reason(client: anthropic.Anthropic) -> None:
    story: Any = [{"role": "user", "content": "Tell me a long story about a dragon."}]
    cut = client.messages.create(model=MODEL, max_tokens=3, messages=story, extra_body=COLD)
    assert cut.stop_reason == "max_tokens"
    assert cut.usage.output_tokens == 3


def test_anthropic_sdk_count_tokens_grows_with_the_prompt(client: anthropic.Anthropic) -> None:
    short = client.messages.count_tokens(model=MODEL, messages=QUESTION)
    longer: Any = [{"role": "user", "content": "Name a fruit. " * 40}]
    long = client.messages.count_tokens(model=MODEL, messages=longer, system="Be brief.")
    assert short.input_tokens >= 1
    assert long.input_tokens > 10 * short.input_tokens


def test_anthropic_sdk_errors_are_its_exception_types(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        client.messages.create(model="missing:1b", max_tokens=8, messages=QUESTION)
    assert missing.value.type == "not_found_error"
    assert "missing:1b" in missing.value.message
    with pytest.raises(anthropic.BadRequestError) as bad:
        client.messages.create(
            model=MODEL, max_tokens=8, messages=QUESTION, extra_body={"temperature": 3}
        )
    assert bad.value.type == "invalid_request_error"
    assert "temperature" in bad.value.message
    with pytest.raises(anthropic.BadRequestError) as choice:
        client.messages.create(
            model=MODEL,
            max_tokens=8,
            messages=QUESTION,
            tools=WEATHER,
            tool_choice={"type": "any"},
        )
    assert "tool_choice" in choice.value.message
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="missing:1b", messages=QUESTION)


def test_anthropic_sdk_tool_use_and_tool_result_round_trip(
    settings: Settings, request: pytest.FixtureRequest
) -> None:
    backend = ToolCallingBackend()
    with serve_in_thread(create_app(settings, backend=backend)) as base:
        client = anthropic.Anthropic(base_url=base, api_key="unused", max_retries=0)
        request.addfinalizer(client.close)
        messages: Any = [{"role": "user", "content": "Weather in Monterrey?"}]
        first = client.messages.create(
            model=backend.model, max_tokens=64, messages=messages, tools=WEATHER
        )
        assert first.stop_reason == "tool_use"
        use = first.content[-1]
        assert use.type == "tool_use"
        assert use.name == "get_weather"
        assert use.input == {"city": "Monterrey"}
        assert use.id.startswith("toolu_")
        messages += [
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}],
            },
        ]
        second = client.messages.create(
            model=backend.model, max_tokens=64, messages=messages, tools=WEATHER
        )
        assert second.stop_reason == "end_turn"
        assert second.content[0].type == "text"
        assert second.content[0].text == "It is sunny in Monterrey."
        with client.messages.stream(
            model=backend.model,
            max_tokens=64,
            messages=[{"role": "user", "content": "Weather?"}],
            tools=WEATHER,
        ) as stream:
            streamed = stream.get_final_message()
        assert streamed.stop_reason == "tool_use"
        assert streamed.content[-1].type == "tool_use"
        assert streamed.content[-1].input == {"city": "Monterrey"}
    # The tool result reached the backend as a `tool` message named after its call.
    answered = backend.requests[1]
    assert isinstance(answered, ChatRequest)
    assert [m.role for m in answered.messages] == ["user", "assistant", "tool"]
    assert answered.messages[1].tool_calls == [
        {"function": {"name": "get_weather", "arguments": {"city": "Monterrey"}}}
    ]
    assert answered.messages[2].tool_name == "get_weather"
    assert answered.messages[2].content == "sunny"
    assert answered.tools is not None
    assert answered.tools[0]["function"]["parameters"] == WEATHER[0]["input_schema"]


def test_anthropic_sdk_sends_images_and_keys(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    backend = ScriptedBackend()
    settings = Settings(
        _env_file=None, data_dir=tmp_path / "data", api_keys=SecretStr(f"claude:{KEY}")
    )
    pixel = base64.b64encode(b"\x89PNG\r\n\x1a\n-not-really-a-png").decode()
    with serve_in_thread(create_app(settings, backend=backend)) as base:
        client = anthropic.Anthropic(base_url=base, api_key=KEY, max_retries=0)
        bearer = anthropic.Anthropic(base_url=base, auth_token=KEY, max_retries=0)
        stranger = anthropic.Anthropic(base_url=base, api_key="not-a-key-0123456789", max_retries=0)
        for sdk in (client, bearer, stranger):
            request.addfinalizer(sdk.close)
        content: Any = [
            {"type": "text", "text": "What is this?"},
            {
                "type": "image",
                "source": {"type": "base64", "media_type": "image/png", "data": pixel},
            },
        ]
        seen = client.messages.create(
            model=backend.model, max_tokens=8, messages=[{"role": "user", "content": content}]
        )
        assert seen.content[0].type == "text"
        assert seen.content[0].text == "Hello, world."
        again = bearer.messages.create(model=backend.model, max_tokens=8, messages=QUESTION)
        assert again.content[0].type == "text"
        with pytest.raises(anthropic.AuthenticationError) as refused:
            stranger.messages.create(model=backend.model, max_tokens=8, messages=QUESTION)
    assert refused.value.type == "authentication_error"
    sent = backend.requests[0]
    assert isinstance(sent, ChatRequest)
    assert sent.messages[0].content == "What is this?"
    assert sent.messages[0].images == [pixel]
