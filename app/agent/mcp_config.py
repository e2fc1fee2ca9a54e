"""The operator's MCP servers file: which servers the agent may use, and which of their tools.

The file is JSON in the shape MCP clients such as Claude Desktop use, plus an allowlist:

    {"mcpServers": {
        "time": {"command": "python", "args": ["-m", "mcp_server_time"],
                 "tools": ["get_current_time"]},
        "docs": {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer ..."},
                 "tools": ["search"]}}}

A server is a command run over stdio or a streamable-HTTP URL, never both. Only the tools named
in `tools` are offered to the model, as `<server>__<tool>`. Servers come from this file only,
never from a request.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

SERVER_NAME = r"^[A-Za-z0-9][A-Za-z0-9-]{0,19}$"
TOOL_NAME = r"^[A-Za-z0-9_-]{1,40}$"  # with the server's name and `__`, at most 62 characters

ToolName = Annotated[str, StringConstraints(pattern=TOOL_NAME)]


class McpServerConfig(BaseModel):
    """One server: `command` (+ `args`, `env`, `cwd`) over stdio, or `url` (+ `headers`)."""

    model_config = ConfigDict(extra="forbid")

    command: str | None = Field(default=None, min_length=1)
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] | None = None  # added to a minimal environment (no secrets of ours)
    cwd: Path | None = None
    url: str | None = Field(default=None, pattern=r"^https?://")
    headers: dict[str, str] = Field(default_factory=dict)
    tools: list[ToolName] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either 'command' (stdio) or 'url' (streamable HTTP)")
        if self.url is not None and (self.args or self.env or self.cwd):
            raise ValueError("'args', 'env' and 'cwd' go with 'command', not 'url'")
        if self.command is not None and self.headers:
            raise ValueError("'headers' go with 'url', not 'command'")
        return self


class McpServersFile(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    servers: dict[Annotated[str, StringConstraints(pattern=SERVER_NAME)], McpServerConfig] = Field(
        default_factory=dict, alias="mcpServers"
    )


def load_servers(path: Path) -> dict[str, McpServerConfig]:
    """The servers of the file at `path`; ValueError saying what is wrong and where."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return McpServersFile.model_validate(raw).servers
    except OSError as exc:
        raise ValueError(f"MCP servers file {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"MCP servers file {path}: not JSON ({exc})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"MCP servers file {path}: {where}: {first['msg']}") from None
