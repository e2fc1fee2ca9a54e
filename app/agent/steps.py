"""One step of the agent: running a tool call the model asked for, whatever becomes of it.

Only the tools enabled for the request run; any other name is refused without a call. The
arguments are validated (by `Tool.run`) before the tool sees them; the call has a time limit;
its output is cut before the model reads it. Every failure ends up as the step's `error`, which
the model reads as its observation; a tool's own bug is logged, and never shown.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from app.agent.calling import ToolCall
from app.agent.tools.base import Tool, ToolArgumentsError, ToolError, ToolResult
from app.core.metrics import Metrics

logger = logging.getLogger(__name__)

Outcome = Literal["ok", "error", "invalid_arguments", "refused", "timeout", "crashed"]

MAX_TOOL_NAME = 64  # a name the model made up is echoed back at most this long


@dataclass
class Step:
    """One tool call as it ran: exactly one of `result` and `error` is set."""

    tool: str
    arguments: object
    duration_ms: float
    result: str | None = None
    error: str | None = None

    @property
    def observation(self) -> str:
        """What the model reads about this step."""
        return f"Error: {self.error}" if self.error is not None else self.result or ""

    def to_json(self) -> dict[str, Any]:
        """The step as the API shows it."""
        outcome = {"result": self.result} if self.error is None else {"error": self.error}
        return {
            "tool": self.tool,
            "arguments": self.arguments,
            **outcome,
            "duration_ms": round(self.duration_ms, 1),
        }


class StepRunner:
    """Runs tool calls with a time limit and an output cap, and counts them in the metrics."""

    def __init__(
        self, known: Mapping[str, Tool], timeout: float, max_output_chars: int, metrics: Metrics
    ) -> None:
        self._known = known
        self._timeout = timeout
        self._max_output_chars = max_output_chars
        self._metrics = metrics

    async def run(self, call: ToolCall, enabled: Mapping[str, Tool], time_left: float) -> Step:
        """Run one call if its tool is enabled, within the tool timeout and `time_left`."""
        name = short_name(call.name)
        tool = enabled.get(call.name)
        if tool is None:
            self._count(name if name in self._known else "unknown", "refused")
            return Step(name, call.arguments, 0.0, error=self._refusal(name, enabled))
        limit = min(self._timeout, time_left)
        started = time.perf_counter()
        outcome, text = await _execute(tool, call.arguments, limit)
        elapsed = time.perf_counter() - started
        self._count(tool.name, outcome)
        self._metrics.agent_tool_duration.labels(tool=tool.name).observe(elapsed)
        text = _cap(text, self._max_output_chars)
        if outcome == "ok":
            return Step(tool.name, call.arguments, elapsed * 1000, result=text)
        return Step(tool.name, call.arguments, elapsed * 1000, error=text)

    def _refusal(self, name: str, enabled: Mapping[str, Tool]) -> str:
        names = ", ".join(enabled)
        choice = f"use one of: {names}" if names else "no tools are enabled: give the final answer"
        if name in self._known:
            return f"the tool {name!r} is not enabled for this request; {choice}"
        return f"there is no tool named {name!r}; {choice}"

    def _count(self, tool: str, outcome: Outcome) -> None:
        self._metrics.agent_tool_calls.labels(tool=tool, outcome=outcome).inc()


async def _execute(tool: Tool, arguments: object, limit: float) -> tuple[Outcome, str]:
    # The timeout stops tools that await (the weather's HTTP calls); a tool that computes
    # bounds its own work (the calculator refuses big inputs before it starts).
    scope = asyncio.timeout(max(limit, 0.0))
    try:
        async with scope:
            return "ok", _as_text(await tool.run(arguments))
    except ToolArgumentsError as exc:
        return "invalid_arguments", exc.message
    except ToolError as exc:
        return "error", exc.message
    except TimeoutError:
        if scope.expired():
            return "timeout", f"{tool.name} took longer than {limit:.3g} s and was stopped"
        logger.exception("tool failed", extra={"tool": tool.name})
        return "crashed", f"{tool.name} failed unexpectedly"
    except Exception:
        logger.exception("tool failed", extra={"tool": tool.name})
        return "crashed", f"{tool.name} failed unexpectedly"


def _as_text(result: ToolResult) -> str:
    return result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [cut: {len(text)} characters in all]"


def short_name(name: str) -> str:
    """A tool name as the model gave it, cut to MAX_TOOL_NAME characters."""
    return name if len(name) <= MAX_TOOL_NAME else name[: MAX_TOOL_NAME - 1] + "…"
