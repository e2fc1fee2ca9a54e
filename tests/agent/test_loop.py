"""The agent loop on a scripted model: both tool-calling styles, every limit, every refusal."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from app.agent.loop import AgentResult, AgentTask
from app.agent.steps import Step
from app.agent.tools import Tool, ToolError
from app.core.auth import ANONYMOUS
from app.core.cache import MemoryCache
from app.core.errors import ModelNotFound, UpstreamUnavailable
from app.core.metrics import Metrics
from app.llm.base import Message
from tests.agent.conftest import TODAY_ES, make_agent
from tests.agent.scripted import AgentScript, ScriptedReply, react, tool_call
from tests.agent.tools.openmeteo_server import OpenMeteoServer

FINAL = "Thought: I now know the final answer\nFinal Answer: Listo."


def slow_tool(seconds: float) -> Tool:
    """A tool that takes `seconds` to answer."""

    async def wait(arguments: dict[str, Any]) -> str:
        await asyncio.sleep(seconds)
        return "finally"

    return Tool("slow", "Waits.", {"type": "object", "properties": {}}, wait)


def echo_tool() -> Tool:
    """A tool that repeats its text n times."""

    async def echo(arguments: dict[str, Any]) -> str:
        return str(arguments["text"]) * int(arguments.get("times", 1))

    parameters = {
        "type": "object",
        "properties": {"text": {"type": "string"}, "times": {"type": "integer"}},
        "required": ["text"],
    }
    return Tool("echo", "Repeats text.", parameters, echo)


def broken_tool() -> Tool:
    """A tool with a bug: it raises something that is not a ToolError."""

    async def fail(arguments: dict[str, Any]) -> str:
        raise RuntimeError("bug in the tool")

    return Tool("broken", "Always fails.", {"type": "object", "properties": {}}, fail)


def observations(message: list[Message]) -> list[str]:
    """What the loop told the model about its tool calls, in order."""
    return [m.content for m in message if m.role == "tool" or m.content.startswith("Observation")]


def script_for(native: bool, *calls: tuple[str, dict[str, Any]], final: str = FINAL) -> AgentScript:
    """A script that makes these calls, natively or in ReAct, then gives `final`."""
    replies: list[ScriptedReply] = [
        [tool_call(name, **arguments)] if native else react(name, json.dumps(arguments))
        for name, arguments in calls
    ]
    answer = final if not native else final.split("Final Answer: ")[-1]
    return AgentScript([*replies, answer], native_tools=native)


async def test_agent_react_calls_calculator_then_date_then_answers(tools: list[Tool]) -> None:
    script = AgentScript(
        [
            react("calculator", '{"expression": "6 * 7"}', thought="Multiply first."),
            "Thought: now the date\nAction: date\nAction Input: {}\n",
            "Thought: I now know the final answer\nFinal Answer: 42; hoy es domingo.",
        ],
        native_tools=False,
    )
    agent = make_agent(script, tools)

    result = await agent.run(AgentTask("¿Cuánto es 6 por 7 y qué día es hoy?", caller=ANONYMOUS))

    assert result.output == "42; hoy es domingo."
    assert result.stop_reason == "answer"
    assert [(s.tool, s.arguments, s.result, s.error) for s in result.steps] == [
        ("calculator", {"expression": "6 * 7"}, "42", None),
        ("date", {}, TODAY_ES, None),
    ]
    assert script.refused == 1  # native first, refused, then ReAct
    first, _, last = script.requests
    assert first.tools is None
    assert first.options is not None
    assert first.options.stop == ["Observation:"]
    assert first.options.temperature == 0
    system = first.messages[0].content
    assert "Action Input:" in system
    assert "[calculator, date, weather]" in system
    assert first.messages[1].content == "Question: ¿Cuánto es 6 por 7 y qué día es hoy?"
    assert observations(last.messages) == ["Observation: 42", f"Observation: {TODAY_ES}"]


async def test_agent_react_is_remembered_for_the_model(tools: list[Tool]) -> None:
    script = AgentScript(["Final Answer: hola"], native_tools=False)
    agent = make_agent(script, tools)

    for _ in range(3):
        assert (await agent.run(AgentTask("hola", caller=ANONYMOUS))).output == "hola"

    assert script.refused == 1
    assert len(script.requests) == 3


async def test_agent_native_tool_calls_run_in_order(tools: list[Tool]) -> None:
    script = AgentScript(
        [
            [tool_call("calculator", expression="2 ** 10")],
            [tool_call("date"), tool_call("calculator", expression="1 + 1")],
            "Son 1024; hoy es domingo.",
        ]
    )
    agent = make_agent(script, tools)

    result = await agent.run(
        AgentTask("2 a la 10, y la fecha", tools=["calculator", "date"], caller=ANONYMOUS)
    )

    assert result.output == "Son 1024; hoy es domingo."
    assert [(s.tool, s.result) for s in result.steps] == [
        ("calculator", "1024"),
        ("date", TODAY_ES),
        ("calculator", "2"),
    ]
    assert script.refused == 0
    first, _, last = script.requests
    assert first.tools is not None
    assert [t["function"]["name"] for t in first.tools] == ["calculator", "date"]
    assert first.options is not None
    assert first.options.stop is None
    tool_messages = [(m.tool_name, m.content) for m in last.messages if m.role == "tool"]
    assert tool_messages == [("calculator", "1024"), ("date", TODAY_ES), ("calculator", "2")]
    assert last.messages[2].tool_calls == [tool_call("calculator", expression="2 ** 10")]


async def test_agent_native_arguments_as_a_json_string_are_read(tools: list[Tool]) -> None:
    call = {"function": {"name": "calculator", "arguments": '{"expression": "3 * 3"}'}}
    agent = make_agent(AgentScript([[call], "9"]), tools)

    result = await agent.run(AgentTask("3 por 3", caller=ANONYMOUS))

    assert [(s.arguments, s.result) for s in result.steps] == [({"expression": "3 * 3"}, "9")]


@pytest.mark.parametrize("native", [True, False], ids=["native", "react"])
async def test_agent_refuses_a_tool_not_enabled(
    native: bool, tools: list[Tool], openmeteo: OpenMeteoServer
) -> None:
    script = script_for(native, ("weather", {"place": "Monterrey"}))
    agent = make_agent(script, tools)

    result = await agent.run(
        AgentTask("¿Clima en Monterrey?", tools=["calculator"], caller=ANONYMOUS)
    )

    (step,) = result.steps
    assert step.tool == "weather"
    assert step.result is None
    assert step.error == (
        "the tool 'weather' is not enabled for this request; use one of: calculator"
    )
    assert openmeteo.requests == []  # nothing was called
    assert result.stop_reason == "answer"
    assert observations(script.requests[-1].messages)[0].endswith(step.error)


@pytest.mark.parametrize("native", [True, False], ids=["native", "react"])
async def test_agent_refuses_an_unknown_tool(native: bool, tools: list[Tool]) -> None:
    script = script_for(native, ("shell", {"command": "id"}))
    metrics = Metrics()
    agent = make_agent(script, tools, metrics=metrics)

    result = await agent.run(AgentTask("run id", caller=ANONYMOUS))

    assert result.steps[0].error == (
        "there is no tool named 'shell'; use one of: calculator, date, weather"
    )
    refused = {"tool": "unknown", "outcome": "refused"}
    assert metrics.registry.get_sample_value("llama_agent_tool_calls_total", refused) == 1


@pytest.mark.parametrize("native", [True, False], ids=["native", "react"])
async def test_agent_invalid_arguments_become_an_observation_and_the_loop_goes_on(
    native: bool, tools: list[Tool]
) -> None:
    script = script_for(
        native,
        ("calculator", {"expression": 5}),
        ("calculator", {"expr": "1 + 1"}),
        ("calculator", {"expression": "1 + 1"}),
    )
    agent = make_agent(script, tools)

    result = await agent.run(AgentTask("1 + 1", caller=ANONYMOUS))

    assert [(s.error, s.result) for s in result.steps] == [
        ("calculator: argument 'expression' must be of type string", None),
        ("calculator: missing required argument 'expression'", None),
        (None, "2"),
    ]
    assert result.stop_reason == "answer"
    assert observations(script.requests[-1].messages)[0].endswith(
        "Error: calculator: argument 'expression' must be of type string"
    )


async def test_agent_tool_that_raises_becomes_an_observation(tools: list[Tool]) -> None:
    metrics = Metrics()
    script = script_for(True, ("broken", {}), ("calculator", {"expression": "2"}))
    agent = make_agent(script, [*tools, broken_tool()], metrics=metrics)

    result = await agent.run(AgentTask("try", caller=ANONYMOUS))

    assert [(s.tool, s.error) for s in result.steps] == [
        ("broken", "broken failed unexpectedly"),
        ("calculator", None),
    ]
    assert "bug in the tool" not in json.dumps(result.to_json())
    crashed = {"tool": "broken", "outcome": "crashed"}
    assert metrics.registry.get_sample_value("llama_agent_tool_calls_total", crashed) == 1


@pytest.mark.parametrize("native", [True, False], ids=["native", "react"])
async def test_agent_stops_on_a_repeated_identical_call(native: bool, tools: list[Tool]) -> None:
    call = ("calculator", {"expression": "2 + 2"})
    script = script_for(native, call, ("date", {}), call)
    agent = make_agent(script, tools)

    result = await agent.run(AgentTask("2 + 2", caller=ANONYMOUS))

    assert result.stop_reason == "repeated_call"
    assert result.output == (
        "Stopped: the model asked again for 'calculator' with the same arguments."
    )
    assert [s.tool for s in result.steps] == ["calculator", "date"]


async def test_agent_stops_at_max_steps_with_the_steps_so_far(tools: list[Tool]) -> None:
    calls = [("calculator", {"expression": f"{n} + 1"}) for n in range(6)]

    capped = await make_agent(script_for(False, *calls), tools, max_steps=4).run(
        AgentTask("count", max_steps=2, caller=ANONYMOUS)
    )
    default = await make_agent(script_for(False, *calls), tools, max_steps=4).run(
        AgentTask("count", caller=ANONYMOUS)
    )

    assert capped.stop_reason == "max_steps"
    assert capped.output == "Stopped after 2 steps without a final answer."
    assert [s.result for s in capped.steps] == ["1", "2"]
    assert default.stop_reason == "max_steps"
    assert len(default.steps) == 4


async def test_agent_tool_timeout_is_an_observation(tools: list[Tool]) -> None:
    metrics = Metrics()
    script = script_for(True, ("slow", {}), ("calculator", {"expression": "1"}))
    agent = make_agent(script, [*tools, slow_tool(5)], metrics=metrics, tool_timeout=0.05)

    result = await agent.run(AgentTask("wait", caller=ANONYMOUS))

    slow, calculator = result.steps
    assert slow.error == "slow took longer than 0.05 s and was stopped"
    assert 40 <= slow.duration_ms < 1000
    assert calculator.result == "1"
    assert result.stop_reason == "answer"
    timeout = {"tool": "slow", "outcome": "timeout"}
    assert metrics.registry.get_sample_value("llama_agent_tool_calls_total", timeout) == 1


async def test_agent_total_timeout_stops_a_slow_tool(tools: list[Tool]) -> None:
    script = script_for(True, ("calculator", {"expression": "1"}), ("slow", {}))
    agent = make_agent(script, [*tools, slow_tool(5)], tool_timeout=5, total_timeout=0.2)

    started = asyncio.get_running_loop().time()
    result = await agent.run(AgentTask("wait", caller=ANONYMOUS))

    assert asyncio.get_running_loop().time() - started < 1
    assert result.stop_reason == "timeout"
    assert result.output == "Stopped: the agent ran out of time (0.2 s) after 2 steps."
    assert result.steps[0].result == "1"
    assert result.steps[1].error is not None


async def test_agent_total_timeout_stops_a_slow_model(tools: list[Tool]) -> None:
    script = script_for(True, ("calculator", {"expression": "1"}))
    script.delay = 0.3  # the first reply comes in time, the second cannot
    agent = make_agent(script, tools, total_timeout=0.45)

    result = await agent.run(AgentTask("wait", caller=ANONYMOUS))

    assert result.stop_reason == "timeout"
    assert [s.result for s in result.steps] == ["1"]


async def test_agent_caps_the_tool_output_fed_back(tools: list[Tool]) -> None:
    script = script_for(True, ("echo", {"text": "ab", "times": 5000}))
    agent = make_agent(script, [echo_tool()], max_tool_output_chars=100)

    result = await agent.run(AgentTask("echo", caller=ANONYMOUS))

    expected = "ab" * 50 + "… [cut: 10000 characters in all]"
    assert result.steps[0].result == expected
    assert observations(script.requests[-1].messages) == [expected]


@pytest.mark.parametrize("native", [True, False], ids=["native", "react"])
@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('touch {marker}')",
        "().__class__.__bases__[0].__subclasses__()",
        "(lambda: __import__('os').system('touch {marker}'))()",
        "[__import__('os').system('touch {marker}') for _ in 'a']",
        "9**9**9",
        "eval(\"__import__('os').system('touch {marker}')\")",
    ],
)
async def test_agent_calculator_attack_is_an_observation_error_and_runs_nothing(
    native: bool, expression: str, tools: list[Tool], tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    attack = expression.format(marker=marker)
    script = AgentScript(
        [
            [tool_call("calculator", expression=attack)]
            if native
            else f"Thought: let me compute\nAction: calculator\nAction Input: {attack}",
            "Final Answer: no",
        ],
        native_tools=native,
    )
    agent = make_agent(script, tools)

    result = await agent.run(AgentTask("hack", caller=ANONYMOUS))

    (step,) = result.steps
    assert step.arguments == {"expression": attack}
    assert step.result is None
    assert step.error
    assert not marker.exists()


async def test_agent_model_error_before_any_step_is_raised(tools: list[Tool]) -> None:
    agent = make_agent(AgentScript(["hi"]), tools)

    with pytest.raises(ModelNotFound):
        await agent.run(AgentTask("hi", model="nope", caller=ANONYMOUS))


async def test_agent_model_error_after_steps_ends_the_run_with_them(tools: list[Tool]) -> None:
    script = script_for(True, ("calculator", {"expression": "5"}))
    script.failures = {2: UpstreamUnavailable("the model server went away")}
    agent = make_agent(script, tools)

    result = await agent.run(AgentTask("5", caller=ANONYMOUS))

    assert result.stop_reason == "error"
    assert result.output == "Stopped after 1 step: the model server went away"
    assert [s.result for s in result.steps] == ["5"]


async def test_agent_metrics_count_steps_calls_and_durations(tools: list[Tool]) -> None:
    metrics = Metrics()
    script = script_for(True, ("calculator", {"expression": "1"}), ("calculator", {}))
    agent = make_agent(script, tools, metrics=metrics)

    await agent.run(AgentTask("1", caller=ANONYMOUS))

    sample = metrics.registry.get_sample_value
    assert sample("llama_agent_steps_count") == 1
    assert sample("llama_agent_steps_sum") == 2
    assert sample("llama_agent_tool_calls_total", {"tool": "calculator", "outcome": "ok"}) == 1
    invalid = {"tool": "calculator", "outcome": "invalid_arguments"}
    assert sample("llama_agent_tool_calls_total", invalid) == 1
    assert sample("llama_agent_tool_duration_seconds_count", {"tool": "calculator"}) == 2


async def test_agent_stream_yields_each_step_then_the_result(tools: list[Tool]) -> None:
    script = script_for(True, ("calculator", {"expression": "1"}), ("date", {}))
    agent = make_agent(script, tools)

    events = [event async for event in agent.stream(AgentTask("1 y fecha", caller=ANONYMOUS))]

    assert [type(event) for event in events] == [Step, Step, AgentResult]
    result = events[-1]
    assert isinstance(result, AgentResult)
    assert result.steps == events[:2]


async def test_agent_stream_yields_a_step_before_the_next_model_call(tools: list[Tool]) -> None:
    script = script_for(True, ("calculator", {"expression": "1"}))
    events = make_agent(script, tools).stream(AgentTask("1", caller=ANONYMOUS))

    first = await anext(events)

    assert isinstance(first, Step)
    assert len(script.requests) == 1  # the step came out before the model was asked again
    assert isinstance(await anext(events), AgentResult)
    await events.aclose()


async def test_agent_reuses_cached_model_steps_but_runs_tools_again(tools: list[Tool]) -> None:
    script = script_for(True, ("calculator", {"expression": "6 * 7"}))
    agent = make_agent(script, tools, cache=MemoryCache(60, 100))

    first = await agent.run(AgentTask("6 por 7", caller=ANONYMOUS))
    again = await agent.run(AgentTask("6 por 7", caller=ANONYMOUS))

    assert first.to_json()["steps"][0]["result"] == "42"
    assert [s.result for s in again.steps] == ["42"]
    assert again.output == first.output
    assert len(script.requests) == 2  # the second run was answered from the cache


async def test_agent_step_results_are_part_of_the_cache_key(tools: list[Tool]) -> None:
    """A step after a tool result is reused only if the result is the same: nothing stale."""
    calls = iter(["lunes", "martes"])

    async def today(arguments: dict[str, Any]) -> str:
        return next(calls)

    day = Tool("day", "The day.", {"type": "object", "properties": {}}, today)
    script = AgentScript([[tool_call("day")], "answer"])
    agent = make_agent(script, [day], cache=MemoryCache(60, 100))

    await agent.run(AgentTask("¿qué día?", caller=ANONYMOUS))
    await agent.run(AgentTask("¿qué día?", caller=ANONYMOUS))

    # Run 2: the first step came from the cache, the step after the new result did not.
    assert len(script.requests) == 3
    assert observations(script.requests[-1].messages) == ["martes"]


async def test_agent_tool_error_message_is_fed_back(tools: list[Tool]) -> None:
    async def refuse(arguments: dict[str, Any]) -> str:
        raise ToolError("the service is closed on Sundays")

    closed = Tool("closed", "Closed.", {"type": "object", "properties": {}}, refuse)
    script = script_for(False, ("closed", {}))
    agent = make_agent(script, [closed])

    result = await agent.run(AgentTask("open?", caller=ANONYMOUS))

    assert result.steps[0].error == "the service is closed on Sundays"
    assert observations(script.requests[-1].messages) == [
        "Observation: Error: the service is closed on Sundays"
    ]
