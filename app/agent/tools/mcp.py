"""Tools from MCP servers: the one wrapper around the `mcp` client SDK for the agent.

Each server in the operator's file (app/agent/mcp_config.py) is kept connected by a task of its
own, so a call costs one round trip, not a process start. The tools it lists, as far as the
file allows them, become agent tools named `<server>__<tool>`; they run under the agent's
limits like any other (time, output size, steps; app/agent/steps.py), and are counted in the
same metrics. A server that dies, hangs or answers nonsense makes that call a ToolError: the
connection is dropped and opened again for later calls; the agent run goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx2
from jsonschema.exceptions import SchemaError
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, TextContent
from mcp_types import Tool as McpTool
from mcp_types.jsonrpc import CONNECTION_CLOSED, REQUEST_TIMEOUT

from app.agent.mcp_config import McpServerConfig
from app.agent.tools.base import Tool, ToolError, ToolResult
from app.core.metrics import Metrics

logger = logging.getLogger(__name__)

SEPARATOR = "__"  # between the server's name and the tool's in the name the model sees
MAX_RETRY_DELAY = 30.0  # seconds between attempts to reach a server that is down


class McpServer:
    """One MCP server, connected by a task of its own (restarted whenever it fails)."""

    def __init__(self, name: str, config: McpServerConfig, metrics: Metrics) -> None:
        self.name = name
        self.config = config
        self.listed: list[McpTool] | None = None  # what it offered the first time it answered
        self._metrics = metrics
        self._client: Client | None = None
        self._ready = asyncio.Event()
        self._broken = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start connecting (in the background)."""
        self._task = asyncio.create_task(self._keep_connected(), name=f"mcp-{self.name}")

    async def listed_within(self, seconds: float) -> list[McpTool] | None:
        """The server's tools once it answers, or None if it does not within `seconds`."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._ready.wait()
        return self.listed

    async def aclose(self) -> None:
        """Disconnect (stopping a stdio server's process)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def call(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        """Call one tool; waits for the connection (the caller's time limit bounds the wait)."""
        while True:
            await self._ready.wait()
            client = self._client
            if client is not None:
                break
        try:
            return await client.call_tool(tool, arguments)
        except asyncio.CancelledError:
            # Stopped by the step's time limit: a server that hangs is started again.
            self._drop("no answer in time")
            raise
        except MCPError as exc:
            if exc.code in (CONNECTION_CLOSED, REQUEST_TIMEOUT):
                self._drop(exc.message)
            raise
        except Exception as exc:
            self._drop(str(exc) or type(exc).__name__)
            raise

    def _drop(self, reason: str) -> None:
        if self._client is not None:
            logger.warning("MCP server dropped", extra={"mcp_server": self.name, "error": reason})
            self._client = None
            self._ready.clear()
            self._broken.set()

    async def _keep_connected(self) -> None:
        delay = 1.0
        while True:
            self._broken.clear()
            try:
                async with self._connect() as client:
                    tools = await _list_tools(client)
                    if self.listed is None:
                        self.listed = tools
                    self._client = client
                    self._ready.set()
                    self._metrics.mcp_server_up.labels(server=self.name).set(1)
                    logger.info("MCP server connected", extra={"mcp_server": self.name})
                    delay = 1.0
                    await self._broken.wait()
            except Exception as exc:  # the server failed: say so, and try again later
                logger.warning(
                    "MCP server unavailable",
                    extra={"mcp_server": self.name, "error": _reason(exc)},
                )
            finally:
                self._client = None
                self._ready.clear()
                self._metrics.mcp_server_up.labels(server=self.name).set(0)
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RETRY_DELAY)

    @contextlib.asynccontextmanager
    async def _connect(self) -> AsyncIterator[Client]:
        config = self.config
        async with contextlib.AsyncExitStack() as stack:
            if config.command is not None:
                params = StdioServerParameters(
                    command=config.command, args=config.args, env=config.env, cwd=config.cwd
                )
                transport = stdio_client(params, errlog=sys.stderr)
            else:
                assert config.url is not None  # one of the two, by the file's validation
                http = await stack.enter_async_context(
                    httpx2.AsyncClient(headers=config.headers, timeout=httpx2.Timeout(30.0))
                )
                transport = streamable_http_client(config.url, http_client=http)
            yield await stack.enter_async_context(Client(transport, cache=None))


async def _list_tools(client: Client) -> list[McpTool]:
    tools: list[McpTool] = []
    cursor: str | None = None
    while True:
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            return tools


def mcp_tools(server: McpServer) -> list[Tool]:
    """The agent tools of a server that has answered: those of its tools the file allows."""
    allowed = set(server.config.tools)
    offered = {tool.name: tool for tool in server.listed or [] if tool.name in allowed}
    missing = sorted(allowed - set(offered))
    if missing:
        logger.warning(
            "MCP server lacks allowed tools", extra={"mcp_server": server.name, "tools": missing}
        )
    tools = []
    for listed in offered.values():
        try:
            tools.append(_as_tool(server, listed))
        except (SchemaError, ValueError) as exc:
            logger.warning(
                "MCP tool skipped: its input schema is not usable",
                extra={"mcp_server": server.name, "tool": listed.name, "error": str(exc)[:200]},
            )
    return tools


def _as_tool(server: McpServer, listed: McpTool) -> Tool:
    name = f"{server.name}{SEPARATOR}{listed.name}"

    async def call(arguments: dict[str, Any]) -> ToolResult:
        try:
            result = await server.call(listed.name, arguments)
        except MCPError as exc:
            raise ToolError(
                f"{name}: the MCP server refused the call: {exc.message[:200]}"
            ) from None
        except Exception as exc:
            raise ToolError(
                f"{name}: the MCP server {server.name!r} failed ({_reason(exc)[:200]})"
            ) from None
        text = result_text(result)
        if result.is_error:
            raise ToolError(f"{name}: {text}")
        return text

    description = (listed.description or listed.title or listed.name).strip()
    return Tool(name, f"{description} (from MCP server {server.name})", listed.input_schema, call)


def result_text(result: CallToolResult) -> str:
    """A tool result as text for the model: its text blocks, else its structured content."""
    parts = [
        block.text if isinstance(block, TextContent) else f"[{block.type} content]"
        for block in result.content
    ]
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


def _reason(exc: BaseException) -> str:
    """A failure in words; anyio's task groups wrap it in groups, which say little."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return str(exc) or type(exc).__name__


class McpServers:
    """Every configured server: started with the app, their tools offered to the agent."""

    def __init__(self, servers: dict[str, McpServerConfig], metrics: Metrics) -> None:
        self.servers = [McpServer(name, config, metrics) for name, config in servers.items()]

    async def start(self, wait: float) -> list[Tool]:
        """Connect to every server; the tools of those that answer within `wait` seconds."""
        for server in self.servers:
            server.start()
        tools: list[Tool] = []
        listings = await asyncio.gather(*(s.listed_within(wait) for s in self.servers))
        for server, listed in zip(self.servers, listings, strict=True):
            if listed is None:
                logger.error(
                    "MCP server did not answer at start: its tools are not offered",
                    extra={"mcp_server": server.name, "waited_s": wait},
                )
                continue
            tools.extend(mcp_tools(server))
        return tools

    async def aclose(self) -> None:
        """Disconnect from every server."""
        await asyncio.gather(*(server.aclose() for server in self.servers))
