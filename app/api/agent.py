"""The tool-using agent: `POST /api/agent`, whole or as NDJSON, a line per step."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.agent.loop import AgentEvent, AgentResult, AgentTask
from app.api.deps import AgentDep, CachePolicyDep, PrincipalDep
from app.api.errors import streamed
from app.config import MAX_AGENT_STEPS
from app.core.errors import LlamaradaError

router = APIRouter(tags=["agent"])
logger = logging.getLogger(__name__)

NDJSON = "application/x-ndjson"
ToolName = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class AgentRequest(BaseModel):
    """A question for the agent; `tools` names the tools it may use (default: all)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    input: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
    model: str = Field(default="", max_length=256)
    tools: list[ToolName] | None = Field(default=None, max_length=32)
    max_steps: int | None = Field(default=None, ge=1, le=MAX_AGENT_STEPS)
    stream: bool = False


@router.post(
    "/api/agent", response_model=None, responses=streamed(NDJSON, "steps, then the answer")
)
async def run_agent(
    body: AgentRequest, agent: AgentDep, policy: CachePolicyDep, caller: PrincipalDep
) -> Response:
    """Answer a question with tools: the output and every step (NDJSON when `stream`)."""
    task = AgentTask(body.input, body.model, body.tools, body.max_steps, caller)
    if not body.stream:
        return JSONResponse((await agent.run(task, policy)).to_json())
    events = agent.stream(task, policy)
    first = await anext(events)  # errors before the first step keep their HTTP status
    return StreamingResponse(_ndjson(first, events), media_type=NDJSON)


async def _ndjson(
    first: AgentEvent, rest: AsyncGenerator[AgentEvent, None]
) -> AsyncIterator[bytes]:
    """A `step` line per tool call, then the `answer` line; a late error is an `error` line."""
    try:
        yield _line(first)
        async for event in rest:
            yield _line(event)
    except LlamaradaError as exc:
        yield _json({"type": "error", "error": {"type": exc.error_type, "message": exc.message}})
    except Exception:
        logger.exception("agent stream failed")
        error = {"type": "internal_error", "message": "internal error; see the server log"}
        yield _json({"type": "error", "error": error})
    finally:
        await rest.aclose()


def _line(event: AgentEvent) -> bytes:
    if isinstance(event, AgentResult):
        return _json({"type": "answer", **event.to_json()})
    return _json({"type": "step", **event.to_json()})


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode() + b"\n"
