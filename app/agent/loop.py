"""The agent loop: ask the model, run the tools it calls, give it the results, until it answers.

Each run talks native tool calling first. A backend that refuses `tools` (the embedded
SmolLM2 raises InvalidRequest on the `tools` field; Ollama answers 400 "does not support
tools") gets the same run restarted in the ReAct text protocol, and the model is remembered so
later runs start there. Trying costs nothing on the embedded backend (the refusal comes before
any generation) and one short 400 on Ollama, and it needs no list of models to keep up to date.

Limits: at most `max_steps` tool calls, each within `tool_timeout`, the whole run within
`total_timeout`; tool output is cut to `max_tool_output_chars` before the model reads it; a
call repeated with the same arguments ends the run. Only the tools enabled for the request
run, whatever the model asks: any other name becomes an error observation.

Model calls go through CompletionService with the request's cache policy (by default the cache
is read and written). That is safe for tools that read the clock or the weather: the cache key
holds every message, so each tool result the model has seen is part of it, and a step is
reused only when the conversation up to it, fresh tool results included, is the same. Tools
always run again; only the model's words are reused (a calculator question asked twice costs
no generation the second time).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from app.agent.calling import NativeToolCalling, ReactToolCalling, ToolCall, ToolCalling, Turn
from app.agent.steps import Step, StepRunner, short_name
from app.agent.tools.base import Tool
from app.core import tracing
from app.core.auth import Principal
from app.core.cache import CachePolicy
from app.core.config import AgentSettings
from app.core.errors import InvalidRequest, LlamaradaError
from app.core.metrics import Metrics
from app.llm.base import ChatRequest, Message, Options
from app.llm.completions import CompletionService

logger = logging.getLogger(__name__)

StopReason = Literal["answer", "max_steps", "repeated_call", "timeout", "error"]

NO_ANSWER = "The model gave no answer."


@dataclass(frozen=True)
class AgentTask:
    """One question for the agent; `tools` None enables every tool; `caller` is who asks
    (its key's models, and its own knowledge bases)."""

    input: str
    model: str = ""
    tools: Sequence[str] | None = None
    max_steps: int | None = None
    caller: Principal = field(kw_only=True)


@dataclass
class AgentResult:
    """The end of a run: the answer (or why there is none) and every step."""

    output: str
    steps: list[Step]
    stop_reason: StopReason
    model: str

    def to_json(self) -> dict[str, Any]:
        """The result as the API shows it."""
        return {
            "output": self.output,
            "steps": [step.to_json() for step in self.steps],
            "stop_reason": self.stop_reason,
            "model": self.model,
        }


AgentEvent = Step | AgentResult


@dataclass
class _Run:
    """The state of one run."""

    task: AgentTask
    model: str
    calling: ToolCalling
    messages: list[Message]
    deadline: float
    max_steps: int
    policy: CachePolicy
    steps: list[Step] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    stop_reason: StopReason = "answer"
    output: str = ""

    def remaining(self) -> float:
        return self.deadline - asyncio.get_running_loop().time()

    def stop(self, reason: StopReason, output: str) -> None:
        self.stop_reason, self.output = reason, output


class AgentService:
    """Runs agent tasks over the completion pipeline with a fixed set of tools."""

    def __init__(
        self,
        completions: CompletionService,
        tools: Sequence[Tool],
        settings: AgentSettings,
        metrics: Metrics,
    ) -> None:
        self._completions = completions
        self._tools = {tool.name: tool for tool in tools}
        self._settings = settings
        self._metrics = metrics
        self._react_models: set[str] = set()  # models that refused native tool calls
        self._runner = StepRunner(
            self._tools, settings.tool_timeout, settings.max_tool_output_chars, metrics
        )

    def select_tools(self, names: Sequence[str] | None) -> list[Tool]:
        """The tools a request enables (all when None), or InvalidRequest naming unknown ones."""
        if names is None:
            return list(self._tools.values())
        unknown = sorted({name for name in names if name not in self._tools})
        if unknown:
            raise InvalidRequest(
                f"unknown tools: {', '.join(map(repr, unknown))}; "
                f"available: {', '.join(self._tools) or 'none'}",
                field="tools",
            )
        return [self._tools[name] for name in dict.fromkeys(names)]

    async def run(self, task: AgentTask, policy: CachePolicy | None = None) -> AgentResult:
        """Run a task to its end and return the result."""
        async for event in self.stream(task, policy):
            if isinstance(event, AgentResult):
                return event
        raise AssertionError("a run always ends with a result")

    async def stream(
        self, task: AgentTask, policy: CachePolicy | None = None
    ) -> AsyncGenerator[AgentEvent, None]:
        """Each step as it ends, then the result; errors before the first step are raised."""
        tools = [tool.bound(task.caller) for tool in self.select_tools(task.tools)]
        model = await self._completions.resolve_model(task.model, caller=task.caller)
        kind = ReactToolCalling if model in self._react_models else NativeToolCalling
        calling = kind(tools)
        run = _Run(
            task=task,
            model=model,
            calling=calling,
            messages=calling.opening(task.input),
            deadline=asyncio.get_running_loop().time() + self._settings.total_timeout,
            max_steps=task.max_steps or self._settings.max_steps,
            policy=policy or CachePolicy(),
        )
        agent = {"gen_ai.operation.name": "invoke_agent", "gen_ai.request.model": model}
        async for step in tracing.traced_stream("invoke_agent", self._steps(run), agent):
            yield step
        self._metrics.agent_steps.observe(len(run.steps))
        logger.info(
            "agent run",
            extra={
                "model": model,
                "calling": run.calling.name,
                "steps": len(run.steps),
                "stop_reason": run.stop_reason,
            },
        )
        yield AgentResult(run.output, run.steps, run.stop_reason, model)

    async def _steps(self, run: _Run) -> AsyncGenerator[Step, None]:
        """The loop; it records how it ended on `run`."""
        while True:
            try:
                turn = await self._next_turn(run)
            except TimeoutError:
                run.stop("timeout", self._out_of_time(run))
                return
            except LlamaradaError as exc:
                if not run.steps:
                    raise  # nothing done yet: the caller gets the error as it is
                logger.warning("agent model call failed", extra={"error": exc.message})
                run.stop("error", f"Stopped after {_count(run.steps)}: {exc.message}")
                return
            if not turn.calls:
                run.stop("answer", turn.answer or NO_ANSWER)
                return
            run.messages.append(turn.message)
            for call in turn.calls:
                if len(run.steps) >= run.max_steps:
                    output = f"Stopped after {_count(run.steps)} without a final answer."
                    run.stop("max_steps", output)
                    return
                if call.key() in run.seen:
                    run.stop(
                        "repeated_call",
                        f"Stopped: the model asked again for {short_name(call.name)!r} with the "
                        "same arguments.",
                    )
                    return
                run.seen.add(call.key())
                with tracing.span(f"execute_tool {short_name(call.name)}", _tool(call)) as span:
                    step = await self._runner.run(call, run.calling.tools, run.remaining())
                    if step.error is not None:
                        span.set_attribute("error.type", "tool_error")
                run.steps.append(step)
                yield step
                if run.remaining() <= 0:
                    run.stop("timeout", self._out_of_time(run))
                    return
                run.messages.append(run.calling.observation(call, step.observation))

    async def _next_turn(self, run: _Run) -> Turn:
        """The model's next step, within the run's time; falls back to ReAct if need be."""
        async with asyncio.timeout_at(run.deadline):
            try:
                return await self._ask(run)
            except InvalidRequest as exc:
                if run.steps or run.calling.name != "native" or not _refuses_tools(exc):
                    raise
            self._react_models.add(run.model)
            logger.info("no native tool calling; using ReAct", extra={"model": run.model})
            run.calling = ReactToolCalling(list(run.calling.tools.values()))
            run.messages = run.calling.opening(run.task.input)
            return await self._ask(run)

    async def _ask(self, run: _Run) -> Turn:
        request = ChatRequest(
            model=run.model,
            messages=list(run.messages),
            tools=run.calling.definitions(),
            # Temperature 0: the choice of tool and arguments should not be left to chance.
            options=Options(
                temperature=0, num_predict=self._settings.max_step_tokens, stop=run.calling.stop
            ),
        )
        reply = await self._completions.chat(request, run.policy, caller=run.task.caller)
        text: list[str] = []
        calls: list[dict[str, Any]] = []
        chunks = reply.chunks
        try:
            async for chunk in chunks:
                text.append(chunk.content)
                calls.extend(chunk.tool_calls or [])
        finally:
            # On a timeout, close the stream now so the generation stops now.
            if isinstance(chunks, AsyncGenerator):
                await chunks.aclose()
        return run.calling.read("".join(text), calls)

    def _out_of_time(self, run: _Run) -> str:
        return (
            f"Stopped: the agent ran out of time ({self._settings.total_timeout:g} s) "
            f"after {_count(run.steps)}."
        )


def _refuses_tools(exc: InvalidRequest) -> bool:
    """The backend said this model takes no `tools` (and not something else was wrong)."""
    return exc.field == "tools" or "does not support tools" in exc.message


def _tool(call: ToolCall) -> dict[str, str]:
    """A tool call's GenAI span attributes (its arguments only when content may be recorded)."""
    attributes = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": short_name(call.name),
    }
    if tracing.capture_content():
        attributes["gen_ai.tool.call.arguments"] = json.dumps(
            call.arguments, ensure_ascii=False, default=str
        )
    return attributes


def _count(steps: list[Step]) -> str:
    return "1 step" if len(steps) == 1 else f"{len(steps)} steps"
