"""The ReAct text protocol, for models without native tool calling: its prompt and its parser.

The model writes `Thought:`, `Action:` and `Action Input:` lines to call a tool, or a
`Final Answer:` line; the loop answers a call with an `Observation:` line. Small models stray
from the format, so the parser takes what it can: the input as JSON or as a plain string,
`tool(input)` on the action line, and plain text as the answer when no label is there.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass

from app.agent.tools.base import Tool

PROMPT_FILE = "react_prompt.txt"
# The model must not invent the tool's answer: generation stops where an observation would go.
STOP = ["Observation:"]

_ACTION = re.compile(r"\baction\s*:", re.IGNORECASE)
_INPUT = re.compile(r"\baction[ \t_]*input\s*:", re.IGNORECASE)
_FINAL = re.compile(r"\bfinal[ \t_]*answer\s*:", re.IGNORECASE)
_NEXT_LABEL = re.compile(
    r"^[ \t]*(?:observation|thought|action|final[ \t_]*answer|question)\s*:",
    re.IGNORECASE | re.MULTILINE,
)
_THOUGHT = re.compile(r"^\s*thought\s*:\s*", re.IGNORECASE)
_CALL_FORM = re.compile(r"([A-Za-z_][\w.-]*)\s*\((.*)\)", re.DOTALL)
_FENCE = re.compile(r"^```[\w-]*\s*(.*?)\s*```$", re.DOTALL)
_NOTHING = {"", "none", "null", "n/a", "{}"}
_NAME_JUNK = "`'\"[]*<>. \t"


@dataclass(frozen=True)
class ReactReply:
    """One reply read: a tool call (`action`, raw `action_input`) or an `answer`."""

    text: str  # the part of the reply kept in the conversation
    action: str | None = None
    action_input: str | None = None
    answer: str | None = None


@functools.cache
def _template() -> string.Template:
    # string.Template, not str.format: the prompt may hold JSON braces.
    resource = importlib.resources.files("app.agent").joinpath(PROMPT_FILE)
    return string.Template(resource.read_text(encoding="utf-8"))


def render_prompt(tools: Sequence[Tool]) -> str:
    """The system prompt: the format, and each tool with its arguments."""
    listed = "\n".join(describe_tool(tool) for tool in tools) or "(none: answer directly)"
    names = ", ".join(tool.name for tool in tools)
    return _template().substitute(tools=listed, tool_names=names).strip()


def describe_tool(tool: Tool) -> str:
    """One line for the prompt: name, description and the arguments' JSON shape."""
    required = set(tool.parameters.get("required", []))
    properties: dict[str, dict[str, object]] = tool.parameters.get("properties", {})
    fields = [
        f'"{name}": {spec.get("type", "any")}{"" if name in required else " (optional)"}'
        for name, spec in properties.items()
    ]
    return f"- {tool.name}: {tool.description} Arguments: {{{', '.join(fields)}}}"


def parse_reply(text: str) -> ReactReply:
    """Read a reply: whichever of an action and a final answer comes first wins."""
    action = _ACTION.search(text)
    final = _FINAL.search(text)
    if action is not None and (final is None or action.start() < final.start()):
        return _parse_action(text, action.end())
    if final is not None:
        body = text[final.end() :]
        label = _NEXT_LABEL.search(body)
        answer = body[: label.start()] if label else body
        return ReactReply(text=text[: final.end()] + answer.rstrip(), answer=answer.strip())
    # No label at all: the model answered in plain words, which is an answer.
    plain = text.strip()
    return ReactReply(text=plain, answer=_THOUGHT.sub("", plain))


def _parse_action(text: str, start: int) -> ReactReply:
    rest = text[start:]
    given = _INPUT.search(rest)
    raw: str | None = None
    if given is None:
        stripped = rest.lstrip()
        name_part = stripped.split("\n", 1)[0]
        end = start + len(rest) - len(stripped) + len(name_part)
    else:
        name_part = rest[: given.start()]
        after = rest[given.end() :]
        label = _NEXT_LABEL.search(after)
        raw = after[: label.start()] if label else after
        end = start + given.end() + len(raw)
    lines = name_part.strip().splitlines()
    name = lines[0].strip() if lines else ""
    called = _CALL_FORM.fullmatch(name)
    if called is not None and not (raw or "").strip():
        name, raw = called.group(1), called.group(2)  # `Action: calculator(2 + 2)`
    return ReactReply(
        text=text[:end].rstrip(),
        action=name.strip(_NAME_JUNK).lower(),
        action_input=None if raw is None else raw.strip(),
    )


def action_arguments(raw: str | None, tool: Tool | None) -> object:
    """The arguments object for a tool from its raw `Action Input` (Tool.run validates it).

    A JSON object is taken as is; a plain string, a JSON string or a number goes to the tool's
    single required argument (or its only argument); an empty input means no arguments.
    """
    if raw is None:
        return {}
    text = _unfence(raw.strip())
    if text.lower() in _NOTHING:
        return {}
    value = _json_value(text)
    if isinstance(value, dict):
        return value
    if tool is None or isinstance(value, bool) or not isinstance(value, str | int | float):
        return value
    target = single_argument(tool)
    return {target: str(value)} if target else value


def single_argument(tool: Tool) -> str | None:
    """The argument a lone value fills: the only required one, or the only one there is."""
    required: list[str] = tool.parameters.get("required", [])
    properties: dict[str, object] = tool.parameters.get("properties", {})
    if len(required) == 1:
        return required[0]
    if not required and len(properties) == 1:
        return next(iter(properties))
    return None


def _json_value(text: str) -> object:
    """The JSON value the text holds; an object may be followed by chatter, nothing else."""
    try:
        value, end = json.JSONDecoder().raw_decode(text)
    except ValueError:
        return _unquote(text)
    if isinstance(value, dict) or not text[end:].strip():
        return value
    return _unquote(text)


def _unfence(text: str) -> str:
    fenced = _FENCE.match(text)
    return fenced.group(1) if fenced else text


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"`":
        return text[1:-1].strip()
    return text
