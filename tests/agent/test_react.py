"""The ReAct prompt and parser: what models actually write, read the way they meant it."""

from __future__ import annotations

import pytest

from app.agent.react import action_arguments, parse_reply, render_prompt
from app.agent.tools import Tool, calculator_tool, clock_tool


@pytest.mark.parametrize(
    ("text", "action", "action_input"),
    [
        (
            'Thought: add\nAction: calculator\nAction Input: {"expression": "2+2"}',
            "calculator",
            '{"expression": "2+2"}',
        ),
        ("Action: calculator\nAction Input: 2 + 2", "calculator", "2 + 2"),
        ("action:  Calculator \naction input: 2 + 2\n", "calculator", "2 + 2"),
        (
            'Action: `calculator`\nAction Input: ```json\n{"expression": "1"}\n```',
            "calculator",
            '```json\n{"expression": "1"}\n```',
        ),
        ("Action: [date]\nAction Input: none", "date", "none"),
        ("Action: calculator Action Input: 3*3", "calculator", "3*3"),
        ("Action: date", "date", None),
        ("Action: calculator(2 + 2)", "calculator", "2 + 2"),
        # The model invents the tool's answer and goes on: only the call is read.
        ("Action: date\nAction Input: {}\nObservation: Monday\nFinal Answer: Monday", "date", "{}"),
        # Both, action first: the action runs.
        ("Action: date\nAction Input: {}\nThought: done\nFinal Answer: hoy", "date", "{}"),
    ],
)
def test_parse_reply_reads_an_action(text: str, action: str, action_input: str | None) -> None:
    reply = parse_reply(text)

    assert reply.action == action
    assert reply.action_input == action_input
    assert reply.answer is None
    assert "Observation" not in reply.text
    assert "Final Answer" not in reply.text


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("Thought: I now know the final answer\nFinal Answer: 42", "42"),
        ("final answer:  Hoy es domingo.  ", "Hoy es domingo."),
        ("Final Answer: two\nlines", "two\nlines"),
        ("Final Answer: 4\nQuestion: and another?", "4"),
        # Final answer before an action: the answer stands.
        ("Final Answer: 4\nAction: calculator\nAction Input: 2+2", "4"),
        # No labels at all: plain words are the answer.
        ("Hola, ¿en qué te ayudo?", "Hola, ¿en qué te ayudo?"),
        ("Thought: the sky is blue", "the sky is blue"),
        ("", ""),
    ],
)
def test_parse_reply_reads_an_answer(text: str, answer: str) -> None:
    reply = parse_reply(text)

    assert reply.action is None
    assert reply.answer == answer


@pytest.mark.parametrize(
    ("raw", "tool", "expected"),
    [
        ('{"expression": "2 + 2"}', calculator_tool(), {"expression": "2 + 2"}),
        ('{"expression": "2"} and then I will see', calculator_tool(), {"expression": "2"}),
        ("2 + 2", calculator_tool(), {"expression": "2 + 2"}),
        ('"2 + 2"', calculator_tool(), {"expression": "2 + 2"}),
        ("'sqrt(2)'", calculator_tool(), {"expression": "sqrt(2)"}),
        ("42", calculator_tool(), {"expression": "42"}),
        ('```\n{"expression": "1"}\n```', calculator_tool(), {"expression": "1"}),
        ("", calculator_tool(), {}),
        (None, calculator_tool(), {}),
        ("none", clock_tool(), {}),
        ("Europe/Madrid", clock_tool(), {"timezone": "Europe/Madrid"}),
        ("[1, 2]", calculator_tool(), [1, 2]),
        ("2 + 2", None, "2 + 2"),
    ],
)
def test_action_arguments_maps_inputs_onto_the_schema(
    raw: str | None, tool: Tool | None, expected: object
) -> None:
    assert action_arguments(raw, tool) == expected


def test_render_prompt_lists_tools_with_their_arguments() -> None:
    prompt = render_prompt([calculator_tool(), clock_tool()])

    assert "Action: the tool's name, one of [calculator, date]" in prompt
    assert "- calculator: Evaluate an arithmetic expression" in prompt
    assert 'Arguments: {"expression": string}' in prompt
    assert 'Arguments: {"timezone": string (optional)}' in prompt
    assert "$" not in prompt


def test_render_prompt_without_tools_asks_for_the_answer() -> None:
    assert "(none: answer directly)" in render_prompt([])
