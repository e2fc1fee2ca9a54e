"""A small MCP server (official SDK) for the agent's tests: over stdio, or streamable HTTP.

    python -m tests.agent.tools.mcp_test_server stdio
    python -m tests.agent.tools.mcp_test_server http PORT

Its tools misbehave on request: `hang` never answers, `die` ends the process, `flood` answers
far more text than an agent step may read.
"""

from __future__ import annotations

import asyncio
import os
import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("llamarada-test")


@server.tool()
def echo(text: str) -> str:
    """Say the text back, with the server's process id."""
    return f"echo from {os.getpid()}: {text}"


@server.tool()
def flood(size: int) -> str:
    """`size` characters of text."""
    return "x" * size


@server.tool()
async def hang() -> str:
    """Never answer."""
    await asyncio.sleep(3600)
    return "too late"


@server.tool()
def die() -> str:
    """End the server's process at once."""
    os._exit(3)


@server.tool()
def secret() -> str:
    """A tool the operator does not allow."""
    return "should never be called"


def main() -> None:
    """Run over the transport named on the command line."""
    if sys.argv[1] == "stdio":
        server.run("stdio")
    else:
        import uvicorn

        app = server.streamable_http_app(stateless_http=True, json_response=True)
        uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")


if __name__ == "__main__":
    main()
