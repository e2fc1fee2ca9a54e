"""The agent as the app builds it: the tools from the settings, and the loop over them."""

from __future__ import annotations

from collections.abc import Sequence

import httpx

from app.agent.loop import AgentService
from app.agent.mcp_config import load_servers
from app.agent.tools import OpenMeteoWeather, Tool, calculator_tool, clock_tool, weather_tool
from app.agent.tools.knowledge import knowledge_tool
from app.agent.tools.mcp import McpServers
from app.core.config import Settings
from app.core.metrics import Metrics
from app.llm.completions import CompletionService
from app.rag.service import KnowledgeBase


def build_tools(
    settings: Settings, http: httpx.AsyncClient, knowledge: KnowledgeBase | None = None
) -> list[Tool]:
    """Every tool a request may enable: calculator, date, weather, knowledge-base search."""
    agent = settings.agent
    weather = OpenMeteoWeather(
        http,
        geocoding_base=agent.openmeteo_geocoding_url,
        forecast_base=agent.openmeteo_forecast_url,
        locale=agent.locale,
        # Half the tool's time per request (it makes two), so the weather's own message,
        # which says the service was slow, comes before the loop's generic timeout.
        timeout=agent.tool_timeout / 2,
    )
    tools = [
        calculator_tool(),
        clock_tool(timezone=agent.timezone, locale=agent.locale),
        weather_tool(weather),
    ]
    if knowledge is not None:
        tools.append(knowledge_tool(knowledge))
    return tools


def build_agent(
    settings: Settings,
    completions: CompletionService,
    http: httpx.AsyncClient,
    metrics: Metrics,
    knowledge: KnowledgeBase | None = None,
    extra_tools: Sequence[Tool] = (),
) -> AgentService:
    """The agent service; `http` (for Open-Meteo) belongs to the caller, who closes it;
    `extra_tools` (from MCP servers) are offered next to the built-in ones."""
    # A step may not ask for more tokens than any request may.
    step_tokens = min(settings.agent.max_step_tokens, settings.limits.max_num_predict)
    agent_settings = settings.agent.model_copy(update={"max_step_tokens": step_tokens})
    tools = [*build_tools(settings, http, knowledge), *extra_tools]
    return AgentService(completions, tools, agent_settings, metrics)


def mcp_servers(settings: Settings, metrics: Metrics) -> McpServers:
    """The MCP servers of the operator's file (none without one); `start` connects them."""
    path = settings.agent.mcp_servers_file
    return McpServers(load_servers(path) if path is not None else {}, metrics)
