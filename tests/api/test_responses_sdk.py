"""The official `openai` SDK, unchanged, on `/v1/responses` and the legacy `/v1/completions`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from app.core.config import Settings
from app.llm.base import ChatRequest
from app.main import create_app
from tests.fakes import ToolCallingBackend
from tests.servers import serve_in_thread

MODEL = "smollm2:135m"
WEATHER: Any = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
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
def client(url: str) -> Iterator[openai.OpenAI]:
    """The SDK pointed at the gateway's `/v1`."""
    with openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0) as sdk:
        yield sdk


def test_openai_sdk_responses_create_then_stream(client: openai.OpenAI) -> None:
    asked: Any = {
        "model": MODEL,
        "instructions": "Answer briefly.",
        "input": "Say 'yes' and nothing else.",
        "max_output_tokens": 300,  # room to finish: a cut answer's stream ends `incomplete`
        "temperature": 0,
    }
    created = client.responses.create(**asked)
    assert created.object == "response"
    assert created.id.startswith("resp_")
    assert created.model == MODEL
    assert created.status == "completed"
    assert created.output_text
    assert created.output[0].type == "message"
    assert created.usage is not None
    assert created.usage.output_tokens > 0
    assert created.usage.input_tokens > 5
    deltas = []
    with client.responses.stream(**asked) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert "".join(deltas) == created.output_text
    assert final.output_text == created.output_text
    assert final.status == created.status
    assert final.usage is not None
    assert final.usage.total_tokens == created.usage.total_tokens


def test_openai_sdk_responses_items_and_json_schema(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"color": {"type": "string", "maxLength": 12}},
        "required": ["color"],
        "additionalProperties": False,
    }
    conversation: Any = [
        {"role": "developer", "content": "You name colors."},
        {"role": "user", "content": [{"type": "input_text", "text": "Name a color."}]},
    ]
    answer = client.responses.create(
        model=MODEL,
        input=conversation,
        max_output_tokens=40,
        temperature=0,
        text={"format": {"type": "json_schema", "name": "color", "schema": schema}},
    )
    assert answer.status == "completed"
    assert isinstance(json.loads(answer.output_text)["color"], str)
    assert answer.text is not None
    assert answer.text.format is not None
    assert answer.text.format.type == "json_schema"


def test_openai_sdk_responses_refuses_stored_state(client: openai.OpenAI) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as stored:
        client.responses.create(model=MODEL, input="Go on.", previous_response_id="resp_123")
    assert stored.value.param == "previous_response_id"
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(model="missing:1b", input="Hi")
    assert missing.value.code == "model_not_found"


def test_openai_sdk_legacy_completions_whole_and_streamed(client: openai.OpenAI) -> None:
    whole = client.completions.create(model=MODEL, prompt="The sky is", max_tokens=8, temperature=0)
    assert whole.object == "text_completion"
    choice = whole.choices[0]
    assert choice.text
    assert choice.finish_reason in ("stop", "length")
    assert whole.usage is not None
    assert whole.usage.completion_tokens > 0
    parts = list(
        client.completions.create(
            model=MODEL,
            prompt="The sky is",
            max_tokens=8,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(p.choices[0].text for p in parts if p.choices) == choice.text
    assert parts[-1].usage is not None
    assert parts[-1].usage.total_tokens == whole.usage.total_tokens


def test_openai_sdk_responses_function_tools_round_trip(
    settings: Settings, request: pytest.FixtureRequest
) -> None:
    backend = ToolCallingBackend()
    with serve_in_thread(create_app(settings, backend=backend)) as base:
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0)
        request.addfinalizer(client.close)
        first = client.responses.create(
            model=backend.model, input="Weather in Monterrey?", tools=WEATHER
        )
        call = first.output[-1]
        assert call.type == "function_call"
        assert call.name == "get_weather"
        assert json.loads(call.arguments) == {"city": "Monterrey"}
        conversation: Any = [
            {"role": "user", "content": "Weather in Monterrey?"},
            *[item.model_dump(exclude_none=True) for item in first.output],
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ]
        second = client.responses.create(model=backend.model, input=conversation, tools=WEATHER)
        assert second.output_text == "It is sunny in Monterrey."
        with client.responses.stream(model=backend.model, input="Weather?", tools=WEATHER) as s:
            kinds = [event.type for event in s]
            streamed = s.get_final_response()
        assert "response.function_call_arguments.done" in kinds
        assert kinds[-1] == "response.completed"
        assert streamed.output[-1].type == "function_call"
    answered = backend.requests[1]
    assert isinstance(answered, ChatRequest)
    assert [m.role for m in answered.messages] == ["user", "assistant", "tool"]
    assert answered.messages[1].tool_calls == [
        {"function": {"name": "get_weather", "arguments": {"city": "Monterrey"}}}
    ]
    assert answered.messages[2].tool_name == "get_weather"
