"""Anthropic Messages, OpenAI Responses and legacy completions against their documented samples.

Each sample below carries the field names and JSON types of the examples in Anthropic's and
OpenAI's API references (values are ours); a response passes when it has every documented field
with the documented type (`conforms`, shared with the Ollama and OpenAI chat contracts).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from app import __version__
from app.core.config import Settings
from app.llm.base import ChatRequest, Chunk
from app.main import create_app
from tests.api.test_contracts import conforms
from tests.conftest import app_client
from tests.fakes import ScriptedBackend, ToolCallingBackend
from tests.rag.conftest import upload

MODEL = "scripted:1b"
ANTHROPIC_MESSAGE = {
    "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
    "type": "message",
    "role": "assistant",
    "content": [{"type": "text", "text": "Hi! My name is Claude."}],
    "model": "claude-sonnet-4-5",
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 2095, "output_tokens": 503},
}
ANTHROPIC_EVENTS = {  # the "basic streaming request" example, event by event
    "message_start": {
        "type": "message_start",
        "message": {
            "id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": "claude-sonnet-4-5",
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 25, "output_tokens": 1},
        },
    },
    "content_block_start": {
        "type": "content_block_start",
        "index": 0,
        "content_block": {"type": "text", "text": ""},
    },
    "ping": {"type": "ping"},
    "content_block_delta": {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": "Hello"},
    },
    "content_block_stop": {"type": "content_block_stop", "index": 0},
    "message_delta": {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": 15},
    },
    "message_stop": {"type": "message_stop"},
}
ANTHROPIC_TOOL_EVENTS = {
    "content_block_start": {
        "type": "content_block_start",
        "index": 1,
        "content_block": {
            "type": "tool_use",
            "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
            "name": "get_weather",
            "input": {},
        },
    },
    "content_block_delta": {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '{"location":'},
    },
}
ANTHROPIC_COUNT = {"input_tokens": 2095}
ANTHROPIC_ERROR = {
    "type": "error",
    "error": {"type": "not_found_error", "message": "The requested resource could not be found."},
}
RESPONSE = {
    "id": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b",
    "object": "response",
    "created_at": 1741476542,
    "status": "completed",
    "error": None,
    "incomplete_details": None,
    "instructions": None,
    "max_output_tokens": None,
    "model": "gpt-4.1-2025-04-14",
    "output": [
        {
            "type": "message",
            "id": "msg_67ccd2bf17f0819081ff3bb2cf6508e60bb6a6b452d3795b",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "In a peaceful grove beneath..."}],
        }
    ],
    "parallel_tool_calls": True,
    "previous_response_id": None,
    "reasoning": {"effort": None, "summary": None},
    "store": True,
    "temperature": None,  # documented as number or null
    "text": {"format": {"type": "text"}},
    "tool_choice": "auto",
    "tools": [],
    "top_p": None,
    "truncation": "disabled",
    "usage": {
        "input_tokens": 36,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 87,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 123,
    },
    "user": None,
    "metadata": {},
}
RESPONSE_EVENTS = {
    "response.output_text.delta": {
        "type": "response.output_text.delta",
        "item_id": "msg_123",
        "output_index": 0,
        "content_index": 0,
        "delta": "In",
        "sequence_number": 1,
    },
    "response.output_text.done": {
        "type": "response.output_text.done",
        "item_id": "msg_123",
        "output_index": 0,
        "content_index": 0,
        "text": "In a shimmering forest...",
        "sequence_number": 1,
    },
    "response.output_item.added": {
        "type": "response.output_item.added",
        "output_index": 0,
        "item": {"id": "msg_123", "status": "in_progress", "type": "message", "role": "assistant"},
        "sequence_number": 1,
    },
}
RESPONSE_FUNCTION_CALL = {
    "type": "function_call",
    "id": "fc_12345xyz",
    "call_id": "call_12345xyz",
    "name": "get_weather",
    "arguments": '{"location":"Paris, France"}',
}
TEXT_COMPLETION = {
    "id": "cmpl-uqkvlQyYK7bGYrRHQ0eXlWi7",
    "object": "text_completion",
    "created": 1589478378,
    "model": "gpt-3.5-turbo-instruct",
    "system_fingerprint": "fp_44709d6fcb",
    "choices": [
        {
            "text": "\n\nThis is indeed a test",
            "index": 0,
            "logprobs": None,
            "finish_reason": "length",
        }
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
}
TEXT_COMPLETION_CHUNK = {
    "id": "cmpl-7iA7iJjj8V2zOkCGvWF2hAkDWBQZe",
    "object": "text_completion",
    "created": 1690759702,
    "choices": [{"text": "This", "index": 0, "logprobs": None, "finish_reason": None}],
    "model": "gpt-3.5-turbo-instruct",
    "system_fingerprint": "fp_44709d6fcb",
}
OLLAMA_VERSION = {"version": "0.5.1"}


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An app on the scripted backend."""
    async with app_client(create_app(settings, backend=ScriptedBackend())) as client:
        yield client


def named_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """The `(event, data)` pairs of a Server-Sent Events body."""
    pairs = []
    for block in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in lines:
            pairs.append((lines["event"], json.loads(lines["data"])))
    return pairs


def message(**extra: Any) -> dict[str, Any]:
    """A Messages request for the scripted model."""
    question = [{"role": "user", "content": "hi"}]
    return {"model": MODEL, "max_tokens": 32, "messages": question, **extra}


async def test_contract_anthropic_message_count_and_error(client: httpx.AsyncClient) -> None:
    whole = await client.post("/v1/messages", json=message(system="Be brief."))
    assert whole.status_code == 200
    conforms(ANTHROPIC_MESSAGE, whole.json())
    assert whole.json()["content"][0]["text"] == "Hello, world."
    counted = await client.post("/v1/messages/count_tokens", json={**message(), "max_tokens": None})
    assert counted.status_code == 400  # count_tokens takes no max_tokens: refused by name
    assert "max_tokens" in counted.json()["error"]["message"]
    request = {"model": MODEL, "messages": message()["messages"]}
    conforms(ANTHROPIC_COUNT, (await client.post("/v1/messages/count_tokens", json=request)).json())
    missing = await client.post("/v1/messages", json={**message(), "model": "nope:1b"})
    assert missing.status_code == 404
    conforms(ANTHROPIC_ERROR, missing.json())


async def test_contract_anthropic_stream_events(client: httpx.AsyncClient) -> None:
    streamed = await client.post("/v1/messages", json=message(stream=True))
    assert streamed.headers["content-type"].startswith("text/event-stream")
    events = named_events(streamed.text)
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "ping"]
    assert names[2] == "content_block_start"
    assert set(names[3:-3]) == {"content_block_delta"}
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    for name, data in events:
        assert data["type"] == name
        conforms(ANTHROPIC_EVENTS[name], data)
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert text == "Hello, world."
    assert events[-2][1]["usage"] == {"input_tokens": 3, "output_tokens": 4}


async def test_contract_anthropic_tool_use_events(settings: Settings) -> None:
    tools = [{"name": "get_weather", "input_schema": {"type": "object"}}]
    async with app_client(create_app(settings, backend=ToolCallingBackend())) as client:
        body = {**message(), "tools": tools, "stream": True}
        events = named_events((await client.post("/v1/messages", json=body)).text)
    starts = [d for n, d in events if n == "content_block_start"]
    deltas = [d for n, d in events if n == "content_block_delta"]
    conforms(ANTHROPIC_TOOL_EVENTS["content_block_start"], starts[0])
    conforms(ANTHROPIC_TOOL_EVENTS["content_block_delta"], deltas[0])
    assert json.loads(deltas[0]["delta"]["partial_json"]) == {"city": "Monterrey"}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


async def test_contract_responses_whole_and_streamed(client: httpx.AsyncClient) -> None:
    body = {"model": MODEL, "input": "hi"}
    whole = await client.post("/v1/responses", json=body)
    conforms(RESPONSE, whole.json())
    assert whole.json()["output"][0]["content"][0]["text"] == "Hello, world."
    events = named_events((await client.post("/v1/responses", json={**body, "stream": True})).text)
    names = [name for name, _ in events]
    assert names[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert names[-5:] == [
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
    for name, data in events:
        assert data["type"] == name
        if name in RESPONSE_EVENTS:
            conforms(RESPONSE_EVENTS[name], data)
    conforms(RESPONSE, events[-1][1]["response"])
    assert events[0][1]["response"]["status"] == "in_progress"


async def test_contract_responses_cut_short_is_incomplete(settings: Settings) -> None:
    backend = ScriptedBackend(done_reason="length")
    async with app_client(create_app(settings, backend=backend)) as client:
        body = {"model": MODEL, "input": "hi", "max_output_tokens": 4}
        whole = (await client.post("/v1/responses", json=body)).json()
        events = named_events(
            (await client.post("/v1/responses", json=body | {"stream": True})).text
        )
        cut = (await client.post("/v1/messages", json=message())).json()
    assert whole["status"] == "incomplete"
    assert whole["incomplete_details"] == {"reason": "max_output_tokens"}
    assert events[-1][0] == "response.incomplete"
    assert cut["stop_reason"] == "max_tokens"


async def test_anthropic_max_tokens_above_the_cap_is_lowered_to_it(settings: Settings) -> None:
    """`max_tokens` is required, so clients send a budget (Claude Code: 32000), not a limit."""
    backend = ScriptedBackend(done_reason="length")
    async with app_client(create_app(settings, backend=backend)) as client:
        cut = await client.post("/v1/messages", json=message() | {"max_tokens": 32000})
    assert cut.status_code == 200, cut.text
    assert cut.json()["stop_reason"] == "max_tokens"
    options = backend.requests[0].options
    assert options is not None
    assert options.num_predict == settings.limits.max_num_predict


async def test_contract_responses_function_call(settings: Settings) -> None:
    tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
    async with app_client(create_app(settings, backend=ToolCallingBackend())) as client:
        body = {"model": MODEL, "input": "Weather?", "tools": [tool]}
        whole = (await client.post("/v1/responses", json=body)).json()
        events = named_events(
            (await client.post("/v1/responses", json=body | {"stream": True})).text
        )
    conforms(RESPONSE_FUNCTION_CALL, whole["output"][0])
    names = [name for name, _ in events]
    assert "response.function_call_arguments.delta" in names
    done = next(d for n, d in events if n == "response.function_call_arguments.done")
    assert json.loads(done["arguments"]) == {"city": "Monterrey"}
    conforms(RESPONSE_FUNCTION_CALL, events[-1][1]["response"]["output"][0])


async def test_contract_legacy_completions(client: httpx.AsyncClient) -> None:
    body = {"model": MODEL, "prompt": "Say this is a test", "max_tokens": 7}
    conforms(TEXT_COMPLETION, (await client.post("/v1/completions", json=body)).json())
    streamed = await client.post("/v1/completions", json={**body, "stream": True})
    events = [line[6:] for line in streamed.text.split("\n\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    for event in events[:-1]:
        conforms(TEXT_COMPLETION_CHUNK, json.loads(event))
    assert json.loads(events[-2])["choices"][0]["finish_reason"] == "stop"


async def test_contract_version_is_ollamas_with_the_gateways_beside(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get("/api/version")
    conforms(OLLAMA_VERSION, answer.json())
    assert answer.json()["version"] == "0.14.0"
    assert answer.json()["llamarada_version"] == __version__
    assert answer.headers["x-llamarada-version"] == __version__


async def test_kb_models_cite_their_sources_on_every_new_surface(settings: Settings) -> None:
    backend = ScriptedBackend(pieces=("Grass", " [1]."))
    settings = settings.model_copy(update={"default_model": MODEL})
    async with app_client(create_app(settings, backend=backend)) as client:
        await client.post("/api/rag/collections", json={"name": "zoo"})
        await upload(client, "zoo", ("llamas.txt", b"Llamas eat grass and hay."))
        question = [{"role": "user", "content": "What do llamas eat?"}]
        asked = {"model": "kb:zoo", "max_tokens": 64, "messages": question}
        whole = (await client.post("/v1/messages", json=asked)).json()
        streamed = named_events(
            (await client.post("/v1/messages", json={**asked, "stream": True})).text
        )
        answer = await client.post(
            "/v1/responses", json={"model": "kb:zoo", "input": "What do llamas eat?"}
        )
    text = whole["content"][0]
    assert "[1] llamas.txt" in text["text"]
    assert text["citations"][0]["type"] == "search_result_location"
    assert text["citations"][0]["source"] == "llamas.txt"
    assert "Llamas eat grass" in text["citations"][0]["cited_text"]
    cited = [d["delta"]["citation"] for n, d in streamed if d.get("delta", {}).get("citation")]
    assert cited == text["citations"]
    annotations = answer.json()["output"][0]["content"][0]["annotations"]
    assert annotations[0]["type"] == "file_citation"
    assert annotations[0]["filename"] == "llamas.txt"


@dataclass
class ThinkingBackend(ScriptedBackend):
    """Reasons first, then answers: a thinking model's chunks."""

    def chat(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        """Two thinking pieces, then the answer."""
        return self._think()

    async def _think(self) -> AsyncGenerator[Chunk, None]:
        for piece in ("Hmm", ", blue."):
            yield Chunk(thinking=piece)
        yield Chunk(content="Blue.")
        yield Chunk(done=True, done_reason="stop", prompt_eval_count=4, eval_count=5)


async def test_reasoning_is_a_thinking_block_and_a_reasoning_item(settings: Settings) -> None:
    async with app_client(create_app(settings, backend=ThinkingBackend())) as client:
        asked = message(thinking={"type": "enabled", "budget_tokens": 1024})
        whole = (await client.post("/v1/messages", json=asked)).json()
        events = named_events(
            (await client.post("/v1/messages", json=asked | {"stream": True})).text
        )
        body = {"model": MODEL, "input": "Color?", "reasoning": {"effort": "low"}}
        response = (await client.post("/v1/responses", json=body)).json()
        streamed = named_events(
            (await client.post("/v1/responses", json=body | {"stream": True})).text
        )
    assert [block["type"] for block in whole["content"]] == ["thinking", "text"]
    assert whole["content"][0]["thinking"] == "Hmm, blue."
    starts = [
        (d["index"], d["content_block"]["type"]) for n, d in events if n == "content_block_start"
    ]
    assert starts == [(0, "thinking"), (1, "text")]
    thought = [
        d["delta"]["thinking"] for n, d in events if n == "content_block_delta" and d["index"] == 0
    ]
    assert "".join(thought) == "Hmm, blue."
    assert [item["type"] for item in response["output"]] == ["reasoning", "message"]
    assert response["output"][0]["content"][0]["text"] == "Hmm, blue."
    assert response["output"][1]["content"][0]["text"] == "Blue."
    names = [name for name, _ in streamed]
    assert names.count("response.reasoning_text.delta") == 2
    assert names.count("response.output_item.done") == 2
    final = streamed[-1][1]["response"]["output"]
    assert [item["type"] for item in final] == ["reasoning", "message"]
