"""What a tool of the agent is: a name, a description, a JSON schema and an async function.

The loop (app/agent/loop.py) offers tools to the model by `definition()`, and runs what the
model asks through `Tool.run`, which validates the arguments first. Anything a tool wants the
model or the user to read goes out as a `ToolError`; any other exception is a bug.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from app.core.auth import Principal

# A tool answers with text, or with a small JSON-able object the loop serialises.
ToolResult = str | dict[str, Any]
ToolFunction = Callable[[dict[str, Any]], Awaitable[ToolResult]]
# The languages tools answer in.
Locale = Literal["es", "en"]

# Error messages go back into the model's context: keep echoed values short.
_MAX_ECHO = 80


class ToolError(Exception):
    """A failure whose message is meant for the model and the user: what went wrong, plainly."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ToolArgumentsError(ToolError):
    """The arguments did not match the tool's JSON schema; the message names the argument."""


# eq=False: a tool is itself, and stays hashable although its schema is a dict.
@dataclass(frozen=True, eq=False)
class Tool:
    """A tool the agent can call: `parameters` is the JSON schema of its arguments object."""

    name: str
    description: str
    parameters: dict[str, Any]
    function: ToolFunction = field(repr=False)
    # Set for tools over the caller's own objects (knowledge_search): its function per caller.
    for_caller: Callable[[Principal], ToolFunction] | None = field(default=None, repr=False)
    _validator: Draft202012Validator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # A broken schema is a programming error: fail when the tool is built, not when called.
        Draft202012Validator.check_schema(self.parameters)
        if self.parameters.get("type") != "object":
            raise ValueError(f"tool {self.name!r}: the parameters schema must be of type object")
        object.__setattr__(self, "_validator", Draft202012Validator(self.parameters))

    def bound(self, caller: Principal) -> Tool:
        """The tool as it runs for one caller (itself, for tools that touch nothing of theirs)."""
        if self.for_caller is None:
            return self
        return replace(self, function=self.for_caller(caller))

    def definition(self) -> dict[str, Any]:
        """Return the function definition in the shape Ollama's and OpenAI's `tools` take."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def validate(self, arguments: object) -> dict[str, Any]:
        """Return the arguments if they match the schema, or raise ToolArgumentsError."""
        error = best_match(self._validator.iter_errors(arguments))
        if error is not None:
            raise ToolArgumentsError(f"{self.name}: {_describe(error)}")
        if not isinstance(arguments, dict):  # unreachable: the schema's type is object
            raise ToolArgumentsError(f"{self.name}: the arguments must be a JSON object")
        return arguments

    async def run(self, arguments: object) -> ToolResult:
        """Validate the arguments, then call the tool's function with them."""
        return await self.function(self.validate(arguments))


def _describe(error: ValidationError) -> str:
    """Say which argument is wrong and why, without echoing long values."""
    where = ".".join(str(part) for part in error.path)
    if error.validator == "required" and isinstance(error.instance, Mapping):
        required = error.validator_value if isinstance(error.validator_value, list) else []
        missing = [name for name in required if name not in error.instance]
        return f"missing required argument {_short(missing[0] if missing else '?')!r}"
    if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
        known = error.schema.get("properties", {}) if isinstance(error.schema, Mapping) else {}
        extra = [str(name) for name in error.instance if name not in known]
        return f"unexpected argument {_short(extra[0] if extra else '?')!r}"
    if not where:
        if error.validator == "type":
            return "the arguments must be a JSON object"
        return _short(error.message, 200)
    if error.validator == "type":
        return f"argument {where!r} must be of type {error.validator_value}"
    if error.validator == "maxLength":
        return f"argument {where!r} is too long (at most {error.validator_value} characters)"
    if error.validator == "minLength":
        return f"argument {where!r} is too short (at least {error.validator_value} characters)"
    return f"argument {where!r}: {_short(error.message, 200)}"


def _short(value: object, limit: int = _MAX_ECHO) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
