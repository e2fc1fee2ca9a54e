"""Agent tools from MCP servers: real servers over stdio and streamable HTTP, and their faults."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from app.agent.loop import AgentTask
from app.agent.mcp_config import McpServerConfig, load_servers
from app.agent.tools.mcp import McpServers
from app.core.auth import ANONYMOUS
from app.core.config import AgentSettings, Settings
from app.core.metrics import Metrics
from app.main import create_app
from tests.agent.conftest import make_agent
from tests.agent.scripted import AgentScript, tool_call
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
START = 120.0  # seconds a server may take to start on a busy machine
TEST_SERVER = ["-m", "tests.agent.tools.mcp_test_server"]
ALLOWED = ["echo", "flood", "hang", "die"]  # not `secret`


def stdio_test_server() -> McpServerConfig:
    """The test server, started by the gateway over stdio."""
    return McpServerConfig(
        command=sys.executable,
        args=[*TEST_SERVER, "stdio"],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT)},
        tools=ALLOWED,
    )


@pytest.fixture(scope="module")
def http_server() -> Iterator[str]:
    """The test server over streamable HTTP, in a process of its own; yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, *TEST_SERVER, "http", str(port)],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    deadline = time.monotonic() + START
    while True:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the MCP test server did not start")
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()  # uvicorn may wait for the `hang` call: then it is killed
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@asynccontextmanager
async def started(servers: dict[str, McpServerConfig], metrics: Metrics) -> AsyncIterator[Any]:
    """The servers connected, and the agent tools they offer."""
    mcp = McpServers(servers, metrics)
    try:
        yield await mcp.start(START)
    finally:
        await mcp.aclose()


async def test_mcp_tools_over_streamable_http_with_allowlist_and_output_cap(
    http_server: str,
) -> None:
    metrics = Metrics()
    config = McpServerConfig(url=http_server, tools=ALLOWED)
    async with started({"web": config}, metrics) as tools:
        assert sorted(t.name for t in tools) == [f"web__{name}" for name in sorted(ALLOWED)]
        script = AgentScript(
            [
                [tool_call("web__echo", text="hola")],
                [tool_call("web__flood", size=50_000)],
                [tool_call("web__secret")],
                "Done.",
            ]
        )
        agent = make_agent(script, tools, metrics=metrics, max_tool_output_chars=500)
        result = await agent.run(agent_task("Say hola"))
    assert result.stop_reason == "answer"
    echo, flood, secret = result.steps
    assert echo.result is not None
    assert echo.result.endswith(": hola")
    assert flood.result is not None
    assert flood.result.startswith("x" * 500 + "… [cut: 50000 characters")
    assert secret.error is not None
    assert "no tool named 'web__secret'" in secret.error
    ok = metrics.agent_tool_calls.labels(tool="web__echo", outcome="ok")._value.get()
    assert ok == 1
    assert metrics.mcp_server_up.labels(server="web")._value.get() == 0  # closed now


async def test_mcp_tool_that_hangs_is_a_timeout_and_the_run_goes_on(http_server: str) -> None:
    metrics = Metrics()
    config = McpServerConfig(url=http_server, tools=ALLOWED)
    async with started({"web": config}, metrics) as tools:
        script = AgentScript(
            [[tool_call("web__hang")], [tool_call("web__echo", text="after")], "Done."]
        )
        agent = make_agent(script, tools, metrics=metrics, tool_timeout=2)
        result = await agent.run(agent_task("Wait"))
    assert result.stop_reason == "answer"
    assert result.output == "Done."
    hang, echo = result.steps
    assert hang.error == "web__hang took longer than 2 s and was stopped"
    assert echo.result is not None
    assert echo.result.endswith(": after")
    timeouts = metrics.agent_tool_calls.labels(tool="web__hang", outcome="timeout")._value.get()
    assert timeouts == 1


async def test_mcp_stdio_server_that_dies_is_a_tool_error_and_is_started_again() -> None:
    metrics = Metrics()
    async with started({"local": stdio_test_server()}, metrics) as tools:
        script = AgentScript(
            [
                [tool_call("local__echo", text="before")],
                [tool_call("local__die")],
                [tool_call("local__echo", text="after")],
                "Done.",
            ]
        )
        agent = make_agent(script, tools, metrics=metrics, tool_timeout=START)
        result = await agent.run(agent_task("Die"))
    assert result.stop_reason == "answer"
    before, died, after = result.steps
    assert died.error is not None
    assert died.error.startswith("local__die: the MCP server")
    assert before.result is not None
    assert after.result is not None
    # A new process answered: "echo from PID: ..."
    assert before.result.split(":")[0] != after.result.split(":")[0]
    assert metrics.agent_tool_calls.labels(tool="local__die", outcome="error")._value.get() == 1


async def test_mcp_server_down_at_start_offers_no_tools_and_blocks_nothing() -> None:
    down = McpServerConfig(url=f"http://127.0.0.1:{free_port()}/mcp", tools=["anything"])
    mcp = McpServers({"down": down}, Metrics())
    started_at = time.monotonic()
    assert await mcp.start(1.0) == []
    assert time.monotonic() - started_at < 10
    await mcp.aclose()


def test_mcp_servers_file_is_checked_at_start(tmp_path: Path) -> None:
    path = tmp_path / "mcp.json"
    cases = {
        '{"mcpServers": {"a": {"command": "x", "url": "http://h/mcp", "tools": ["t"]}}}': (
            "either 'command'"
        ),
        '{"mcpServers": {"a": {"command": "x"}}}': "mcpServers.a.tools",
        '{"mcpServers": {"a b": {"command": "x", "tools": ["t"]}}}': "mcpServers.a b",
        '{"mcpServers": {"a": {"url": "file:///etc/passwd", "tools": ["t"]}}}': "url",
        "not json": "not JSON",
    }
    for text, expected in cases.items():
        path.write_text(text)
        with pytest.raises(ValueError, match="MCP servers file") as error:
            load_servers(path)
        assert expected in str(error.value), (text, str(error.value))
    good = {"mcpServers": {"t": {"command": "uvx", "args": ["mcp-server-time"], "tools": ["x"]}}}
    path.write_text(json.dumps(good))
    assert load_servers(path)["t"].args == ["mcp-server-time"]


async def test_mcp_time_server_from_pypi_through_the_agent_api(tmp_path: Path) -> None:
    """mcp-server-time, started by the gateway over stdio, from the operator's file."""
    servers = {
        "mcpServers": {
            "time": {
                "command": sys.executable,
                "args": ["-m", "mcp_server_time", "--local-timezone", "UTC"],
                "tools": ["get_current_time"],
            }
        }
    }
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps(servers))
    agent = AgentSettings(mcp_servers_file=path, mcp_start_timeout=START)
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", agent=agent)
    script = AgentScript([[tool_call("time__get_current_time", timezone="Europe/Madrid")], "Done."])
    app = create_app(settings, backend=script)
    async with (
        LifespanManager(app, startup_timeout=START + 30) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://localhost"
        ) as client,
    ):
        # Listed next to the built-in tools; `convert_time` is not in the allowlist.
        refused = await client.post(
            "/api/agent", json={"input": "x", "tools": ["time__convert_time"]}
        )
        assert refused.status_code == 422
        assert "time__get_current_time" in refused.json()["error"]["message"]
        assert "calculator" in refused.json()["error"]["message"]
        body = {"input": "What time is it in Madrid?", "model": script.model}
        answer = await client.post("/api/agent", json=body, timeout=START)
        assert answer.status_code == 200, answer.text
        (step,) = answer.json()["steps"]
        assert step["tool"] == "time__get_current_time"
        now = json.loads(step["result"])
        assert now["timezone"] == "Europe/Madrid"
        assert now["datetime"].endswith(("+01:00", "+02:00"))
        metrics = (await client.get("/metrics")).text
    assert 'llama_mcp_server_up{server="time"} 1.0' in metrics
    assert 'llama_agent_tool_calls_total{outcome="ok",tool="time__get_current_time"} 1.0' in metrics


def agent_task(text: str) -> AgentTask:
    """A task of the test caller."""
    return AgentTask(text, caller=ANONYMOUS)
