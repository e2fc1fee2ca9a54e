"""`POST /api/agent` over HTTP: the seed's question end to end, streaming, bad input, limits."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from app.llm.embedded import EmbeddedBackend
from app.main import create_app
from tests.agent.scripted import AgentScript, ScriptedReply, react, tool_call
from tests.agent.tools.openmeteo_server import OpenMeteoServer
from tests.conftest import app_client

SEED_QUESTION = "¿Qué día es hoy y cuál es el clima en Monterrey?"
WEATHER_ES = (
    "Monterrey, Nuevo León, México: 24.3 °C, mayormente despejado, humedad 41 %, "
    "viento 9.4 km/h (hora local 2026-11-29T11:00)"
)
SPANISH_DATE = re.compile(
    r"^(lunes|martes|miércoles|jueves|viernes|sábado|domingo), \d{1,2} de [a-z]+ de \d{4}, "
    r"\d\d:\d\d \(America/Monterrey\)$"
)

Client = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def agent_settings(settings: Settings, openmeteo: OpenMeteoServer) -> Settings:
    """Settings whose agent talks to the scripted Open-Meteo, in Spanish, in Monterrey."""
    agent = settings.agent.model_copy(
        update={
            "openmeteo_geocoding_url": openmeteo.base_url,
            "openmeteo_forecast_url": openmeteo.base_url,
            "timezone": "America/Monterrey",
            "locale": "es",
        }
    )
    return settings.model_copy(update={"agent": agent})


@pytest.fixture
def client_for(agent_settings: Settings) -> Client:
    """Open an app client on a scripted model: `async with client_for(replies) as client`."""

    def open_client(
        replies: list[ScriptedReply], native_tools: bool = True
    ) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        script = AgentScript(replies, native_tools=native_tools)
        scripted = agent_settings.model_copy(update={"default_model": script.model})
        return app_client(create_app(scripted, backend=script))

    return open_client


def ndjson(response: httpx.Response) -> list[dict[str, Any]]:
    """The NDJSON lines of a streamed answer."""
    return [json.loads(line) for line in response.text.splitlines() if line]


async def test_agent_api_answers_the_seed_question_end_to_end(
    client_for: Client, openmeteo: OpenMeteoServer
) -> None:
    replies: list[ScriptedReply] = [
        react("date", "{}", thought="Necesito la fecha de hoy."),
        react("weather", "Monterrey", thought="Ahora el clima en Monterrey."),
        "Thought: I now know the final answer\n"
        "Final Answer: Hoy es domingo; en Monterrey hay 24.3 °C y cielo mayormente despejado.",
    ]
    async with client_for(replies, native_tools=False) as client:
        response = await client.post("/api/agent", json={"input": SEED_QUESTION})

    assert response.status_code == 200
    body = response.json()
    assert body["output"] == (
        "Hoy es domingo; en Monterrey hay 24.3 °C y cielo mayormente despejado."
    )
    assert body["stop_reason"] == "answer"
    assert body["model"] == "scripted:1b"
    date, weather = body["steps"]
    assert date["tool"] == "date"
    assert date["arguments"] == {}
    assert SPANISH_DATE.match(date["result"]), date["result"]
    assert weather == {
        "tool": "weather",
        "arguments": {"place": "Monterrey"},
        "result": WEATHER_ES,
        "duration_ms": weather["duration_ms"],
    }
    assert weather["duration_ms"] >= 0
    assert [request.path for request in openmeteo.requests] == ["/v1/search", "/v1/forecast"]


async def test_agent_api_streams_a_line_per_step_then_the_answer(client_for: Client) -> None:
    replies: list[ScriptedReply] = [
        [tool_call("calculator", expression="6 * 7")],
        [tool_call("date")],
        "42, domingo",
    ]
    async with client_for(replies) as client:
        response = await client.post("/api/agent", json={"input": "6*7 y fecha", "stream": True})

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = ndjson(response)
    assert [line["type"] for line in lines] == ["step", "step", "answer"]
    assert lines[0] == {
        "type": "step",
        "tool": "calculator",
        "arguments": {"expression": "6 * 7"},
        "result": "42",
        "duration_ms": lines[0]["duration_ms"],
    }
    assert lines[1]["tool"] == "date"
    answer = lines[2]
    assert answer["output"] == "42, domingo"
    assert answer["stop_reason"] == "answer"
    assert [step["tool"] for step in answer["steps"]] == ["calculator", "date"]


async def test_agent_api_streams_an_answer_without_steps(client_for: Client) -> None:
    async with client_for(["hola"]) as client:
        response = await client.post("/api/agent", json={"input": "hola", "stream": True})

    assert [line["type"] for line in ndjson(response)] == ["answer"]
    assert ndjson(response)[0]["output"] == "hola"


@pytest.mark.parametrize("stream", [False, True])
async def test_agent_api_unknown_model_is_404(client_for: Client, stream: bool) -> None:
    async with client_for(["hola"]) as client:
        response = await client.post(
            "/api/agent", json={"input": "hola", "model": "nope:1b", "stream": stream}
        )

    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"
    assert "nope:1b" in response.json()["error"]["message"]


async def test_agent_api_unknown_tools_get_422_naming_them(client_for: Client) -> None:
    async with client_for(["hola"]) as client:
        response = await client.post(
            "/api/agent", json={"input": "hola", "tools": ["calculator", "shell", "rm"]}
        )

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"] == (
        "tools: unknown tools: 'rm', 'shell'; available: calculator, date, weather, "
        "knowledge_search"
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": "hola", "max_steps": 0}, "max_steps"),
        ({"input": "hola", "max_steps": 11}, "max_steps"),
        ({"input": "hola", "max_steps": "many"}, "max_steps"),
        ({"input": "   "}, "input"),
        ({}, "input"),
        ({"input": "hola", "tools": "calculator"}, "tools"),
        ({"input": "hola", "tools": [""]}, "tools.0"),
        ({"input": "hola", "temperature": 1}, "temperature"),
    ],
)
async def test_agent_api_bad_input_gets_422_naming_the_field(
    client_for: Client, body: dict[str, Any], field: str
) -> None:
    async with client_for(["hola"]) as client:
        response = await client.post("/api/agent", json=body)

    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith(f"{field}: ")


async def test_agent_api_stops_a_looping_model_with_the_steps_so_far(client_for: Client) -> None:
    # The model asks for a new calculation every time, forever.
    replies: list[ScriptedReply] = [
        [tool_call("calculator", expression=f"{n} * 2")] for n in range(20)
    ]
    async with client_for(replies) as client:
        response = await client.post("/api/agent", json={"input": "loop", "max_steps": 3})

    assert response.status_code == 200
    body = response.json()
    assert body["stop_reason"] == "max_steps"
    assert body["output"] == "Stopped after 3 steps without a final answer."
    assert [step["result"] for step in body["steps"]] == ["0", "2", "4"]


async def test_agent_api_stops_a_model_repeating_itself(client_for: Client) -> None:
    async with client_for([[tool_call("date")]]) as client:
        response = await client.post("/api/agent", json={"input": "fecha", "stream": True})

    lines = ndjson(response)
    assert [line["type"] for line in lines] == ["step", "answer"]
    assert lines[-1]["stop_reason"] == "repeated_call"


async def test_agent_api_refuses_a_calculator_attack(client_for: Client) -> None:
    attack = "__import__('os').system('id')"
    async with client_for([[tool_call("calculator", expression=attack)], "no"]) as client:
        response = await client.post("/api/agent", json={"input": "hack", "tools": ["calculator"]})

    (step,) = response.json()["steps"]
    assert step["arguments"] == {"expression": attack}
    assert "result" not in step
    assert step["error"]
    assert "uid=" not in response.text


async def test_agent_api_metrics_are_exposed(client_for: Client) -> None:
    replies: list[ScriptedReply] = [[tool_call("calculator", expression="1")], "1"]
    async with client_for(replies) as client:
        await client.post("/api/agent", json={"input": "1"})
        metrics = (await client.get("/metrics")).text

    assert "llama_agent_steps_count 1.0" in metrics
    assert 'llama_agent_tool_calls_total{outcome="ok",tool="calculator"} 1.0' in metrics
    assert 'llama_agent_tool_duration_seconds_count{tool="calculator"} 1.0' in metrics


@pytest.fixture
async def smollm2(settings: Settings) -> AsyncIterator[EmbeddedBackend]:
    """The real SmolLM2 through llama.cpp."""
    backend = EmbeddedBackend(settings.embedded)
    await backend.start()
    yield backend
    await backend.aclose()


async def test_agent_api_runs_the_real_smollm2_to_an_output(
    agent_settings: Settings, smollm2: EmbeddedBackend
) -> None:
    # Whatever the small model writes, the run ends well-formed within its limits; what it
    # answers is not judged here.
    agent = agent_settings.agent.model_copy(update={"max_step_tokens": 64, "total_timeout": 60})
    app = create_app(agent_settings.model_copy(update={"agent": agent}), backend=smollm2)
    async with app_client(app) as client:
        response = await client.post(
            "/api/agent", json={"input": "What is 12 * 7?", "max_steps": 3}, timeout=90
        )

    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "smollm2:135m"
    assert isinstance(body["output"], str)
    assert body["output"]
    assert len(body["steps"]) <= 3
    assert body["stop_reason"] in {"answer", "max_steps", "repeated_call", "timeout", "error"}
    for step in body["steps"]:
        assert ("result" in step) != ("error" in step)
