"""Tool emulation: the real SmolLM2 picks a tool under a grammar, an Ollama-protocol upstream
under its `format`, and only calls that validate against the tool's parameters go out."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from app.core.config import Settings
from app.core.errors import InvalidRequest, UpstreamError
from app.core.upstreams import parse_upstreams
from app.llm.tool_emulation import choice_schema, decide, parse_tools
from app.main import create_app
from tests.conftest import app_client
from tests.llm.ollama_script import Script, scripted_ollama
from tests.servers import serve_in_thread

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
}
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": WEATHER,
        },
    }
]
QUESTION = [{"role": "user", "content": "What is the weather in Paris? Use the get_weather tool."}]


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ('{"answer": "Hello"}', ("Hello", None)),
        (
            '{"tool": "get_weather", "arguments": {"city": "Lima", "unit": "celsius"}}',
            (
                "",
                [
                    {
                        "function": {
                            "name": "get_weather",
                            "arguments": {"city": "Lima", "unit": "celsius"},
                        }
                    }
                ],
            ),
        ),
    ],
)
def test_decide_reads_a_call_or_an_answer(output: str, expected: Any) -> None:
    assert decide(output, parse_tools(TOOLS)) == expected


@pytest.mark.parametrize(
    "output",
    [
        "not json",
        '{"tool": "get_weather", "arguments": {"city": "Lima", "unit": "kelvin"}}',  # enum
        '{"tool": "get_weather", "arguments": {"city": "Lima"}}',  # required
        '{"tool": "rm_rf", "arguments": {}}',  # not a tool of the request
        '{"tool": "get_weather", "arguments": {"city": "Lima", "unit": "celsius"}, "x": 1}',
        '{"answer": 42}',
        '{"tool": "get_weather", "arguments": {"city": "Li',  # cut short
    ],
)
def test_decide_refuses_anything_but_a_valid_call_or_answer(output: str) -> None:
    with pytest.raises(UpstreamError, match="neither a valid call"):
        decide(output, parse_tools(TOOLS))


@pytest.mark.parametrize(
    ("tools", "field"),
    [
        ([{"type": "function", "function": {}}], "tools.0"),
        ([{"type": "retrieval"}], "tools.0"),
        (
            [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}],
            "tools.0.function.parameters",
        ),
        (
            [{"type": "function", "function": {"name": "f", "parameters": {"type": 5}}}],
            "tools.0.function.parameters",
        ),
    ],
)
def test_parse_tools_names_the_malformed_tool(tools: list[dict[str, Any]], field: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        parse_tools(tools)
    assert raised.value.field == field


def test_choice_schema_admits_each_tool_and_an_answer() -> None:
    validator = Draft202012Validator(choice_schema(parse_tools(TOOLS)))
    assert validator.is_valid(
        {"tool": "get_weather", "arguments": {"city": "a", "unit": "celsius"}}
    )
    assert validator.is_valid({"answer": "hi"})
    assert not validator.is_valid({"tool": "other", "arguments": {}})
    assert not validator.is_valid({"tool": "get_weather", "arguments": {"city": "a"}})


@pytest.mark.timeout(300)
async def test_embedded_model_calls_a_tool_on_both_surfaces(settings: Settings) -> None:
    body = {
        "model": "smollm2:135m",
        "messages": QUESTION,
        "tools": TOOLS,
        "options": {"temperature": 0, "num_predict": 200},
        "stream": False,
    }
    async with app_client(create_app(settings)) as client:
        ollama = await client.post("/api/chat", json=body, timeout=240)
        openai = await client.post(
            "/v1/chat/completions",
            json={
                "model": "smollm2:135m",
                "messages": QUESTION,
                "tools": TOOLS,
                "temperature": 0,
                "max_tokens": 200,
            },
            timeout=240,
        )
        shown = await client.post("/api/show", json={"model": "smollm2:135m"})
    assert ollama.status_code == 200, ollama.text
    calls = ollama.json()["message"]["tool_calls"]
    assert [call["function"]["name"] for call in calls] == ["get_weather"]
    # Grammar-constrained: the arguments match the schema whatever the small model chose.
    assert Draft202012Validator(WEATHER).is_valid(calls[0]["function"]["arguments"])
    assert openai.status_code == 200, openai.text
    choice = openai.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    arguments = json.loads(choice["message"]["tool_calls"][0]["function"]["arguments"])
    assert Draft202012Validator(WEATHER).is_valid(arguments)
    assert "tools" in shown.json()["capabilities"]


@pytest.mark.timeout(300)
async def test_embedded_model_takes_a_tool_result_and_answers(settings: Settings) -> None:
    messages = [
        *QUESTION,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "function": {
                        "name": "get_weather",
                        "arguments": {"city": "Paris", "unit": "celsius"},
                    }
                }
            ],
        },
        {"role": "tool", "tool_name": "get_weather", "content": "sunny, 21 degrees"},
    ]
    body = {
        "model": "smollm2:135m",
        "messages": messages,
        "tools": TOOLS,
        "options": {"temperature": 0, "num_predict": 200},
        "stream": True,
    }
    async with app_client(create_app(settings)) as client:
        response = await client.post("/api/chat", json=body, timeout=240)
    assert response.status_code == 200, response.text
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines[-1]["done"] is True
    calls = [call for line in lines for call in line["message"].get("tool_calls") or []]
    text = "".join(line["message"]["content"] for line in lines)
    # Either a further valid call or a plain answer; never a malformed call.
    assert calls or text
    for call in calls:
        assert call["function"]["name"] == "get_weather"
        assert Draft202012Validator(WEATHER).is_valid(call["function"]["arguments"])


async def test_emulation_off_keeps_the_refusal(settings: Settings) -> None:
    off = settings.model_copy(update={"tool_emulation": False})
    body = {"model": "smollm2:135m", "messages": QUESTION, "tools": TOOLS, "stream": False}
    async with app_client(create_app(off)) as client:
        response = await client.post("/api/chat", json=body)
    assert response.status_code == 422
    assert "tools" in response.json()["error"]["message"]


@pytest.fixture
def script() -> Script:
    """An Ollama-protocol upstream whose model has no tools."""
    return Script(models=["m:1b"], refuse_tools=True)


@pytest.fixture
def upstream(script: Script) -> Iterator[str]:
    """The scripted upstream's URL."""
    with serve_in_thread(scripted_ollama(script)) as url:
        yield url


def pool_settings(upstream: str, tmp_path: Path, emulate: bool | None = True) -> Settings:
    """A gateway over the scripted Ollama upstream, cache off."""
    return Settings(
        _env_file=None,
        upstreams=parse_upstreams(f"ollama={upstream}"),
        tool_emulation=emulate,
        data_dir=tmp_path,
        cache_ttl=0,
    )


async def test_ollama_upstream_without_tools_gets_them_through_format(
    upstream: str, script: Script, tmp_path: Path
) -> None:
    script.pieces = [
        '{"tool": "get_weather", ',
        '"arguments": {"city": "Lima", "unit": "celsius"}}',
    ]
    body = {"model": "m:1b", "messages": QUESTION, "tools": TOOLS}
    async with app_client(create_app(pool_settings(upstream, tmp_path))) as client:
        response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    call = response.json()["choices"][0]["message"]["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == {"city": "Lima", "unit": "celsius"}
    native, emulated = script.bodies
    assert native["tools"] == TOOLS  # asked natively first, refused
    assert "tools" not in emulated
    assert emulated["format"] == choice_schema(parse_tools(TOOLS))
    assert "get_weather" in emulated["messages"][0]["content"]


@pytest.mark.parametrize(
    "output",
    [
        '{"tool": "get_weather", "arguments": {"town": 1}}',
        '{"tool": "get_weather", "arguments": {"city": "Lima", "unit": "celsius"}',
    ],
)
async def test_malformed_emulated_call_never_reaches_the_client(
    upstream: str, script: Script, tmp_path: Path, output: str
) -> None:
    script.pieces = [output]
    body = {"model": "m:1b", "messages": QUESTION, "tools": TOOLS, "stream": True}
    async with app_client(create_app(pool_settings(upstream, tmp_path))) as client:
        ollama = await client.post("/api/chat", json=body)
        openai = await client.post("/v1/chat/completions", json=body)
    for response in (ollama, openai):
        assert response.status_code == 502, response.text
        assert "tool_calls" not in response.text
        assert "neither a valid call" in response.text


async def test_pool_without_emulation_passes_the_refusal_on(
    upstream: str, script: Script, tmp_path: Path
) -> None:
    body = {"model": "m:1b", "messages": QUESTION, "tools": TOOLS, "stream": False}
    async with app_client(create_app(pool_settings(upstream, tmp_path, None))) as client:
        response = await client.post("/api/chat", json=body)
    assert response.status_code == 400
    assert "does not support tools" in response.text
    assert len(script.bodies) == 1
