"""The agent's request shape (`POST /api/agent`)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.core.config import MAX_AGENT_STEPS

ToolName = Annotated[str, StringConstraints(min_length=1, max_length=64)]


class AgentRequest(BaseModel):
    """A question for the agent; `tools` names the tools it may use (default: all)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    input: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
    model: str = Field(default="", max_length=256)
    tools: list[ToolName] | None = Field(default=None, max_length=32)
    max_steps: int | None = Field(default=None, ge=1, le=MAX_AGENT_STEPS)
    stream: bool = False
