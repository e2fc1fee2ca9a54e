"""The tool-using agent: `POST /api/agent`, whole or as NDJSON, a line per step."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse

from app.agent.loop import AgentEvent, AgentResult, AgentTask
from app.agent.schemas import AgentRequest
from app.api.deps import AgentDep, CachePolicyDep, PrincipalDep
from app.api.errors import streamed
from app.api.responses import JSON
from app.api.routing import JsonBodyRoute
from app.wire.stream import NDJSON, ndjson

router = APIRouter(tags=["agent"], route_class=JsonBodyRoute)


@router.post(
    "/api/agent", response_model=None, responses=streamed(NDJSON, "steps, then the answer")
)
async def run_agent(
    body: AgentRequest, agent: AgentDep, policy: CachePolicyDep, caller: PrincipalDep
) -> Response:
    """Answer a question with tools: the output and every step (NDJSON when `stream`)."""
    task = AgentTask(body.input, body.model, body.tools, body.max_steps, caller=caller)
    if not body.stream:
        return JSON((await agent.run(task, policy)).to_json())
    events = agent.stream(task, policy)
    first = await anext(events)  # errors before the first step keep their HTTP status
    return StreamingResponse(ndjson(_lines(first, events)), media_type=NDJSON)


async def _lines(
    first: AgentEvent, rest: AsyncGenerator[AgentEvent, None]
) -> AsyncIterator[dict[str, Any]]:
    """A `step` line per tool call, then the `answer` line."""
    try:
        yield _line(first)
        async for event in rest:
            yield _line(event)
    finally:
        await rest.aclose()


def _line(event: AgentEvent) -> dict[str, Any]:
    kind = "answer" if isinstance(event, AgentResult) else "step"
    return {"type": kind, **event.to_json()}
