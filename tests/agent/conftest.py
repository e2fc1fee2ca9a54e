"""Agent fixtures: the scripted Open-Meteo, the real tools over it, and agents on a script."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app.agent.loop import AgentService
from app.agent.tools import Tool, calculator_tool, clock_tool, weather_tool
from app.agent.tools.weather import OpenMeteoWeather
from app.core.cache import ResponseCache
from app.core.config import AgentSettings, LimitSettings
from app.core.metrics import Metrics
from app.llm.completions import CompletionService
from tests.agent.scripted import AgentScript
from tests.agent.tools.openmeteo_server import OpenMeteoServer

# Sunday 29 November 2026, 17:05 UTC: 11:05 in Monterrey.
MOMENT = datetime(2026, 11, 29, 17, 5, 30, tzinfo=UTC)
TODAY_ES = "domingo, 29 de noviembre de 2026, 11:05 (America/Monterrey)"


@pytest.fixture
def openmeteo() -> Iterator[OpenMeteoServer]:
    """The scripted Open-Meteo on 127.0.0.1."""
    server = OpenMeteoServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def tools(openmeteo: OpenMeteoServer) -> AsyncIterator[list[Tool]]:
    """calculator, date (a fixed moment, Monterrey, Spanish) and weather (scripted Open-Meteo)."""
    async with httpx.AsyncClient() as http:
        weather = OpenMeteoWeather(
            http,
            geocoding_base=openmeteo.base_url,
            forecast_base=openmeteo.base_url,
            locale="es",
            timeout=2.0,
        )
        yield [
            calculator_tool(),
            clock_tool(timezone="America/Monterrey", locale="es", now=lambda: MOMENT),
            weather_tool(weather),
        ]


def make_agent(
    script: AgentScript,
    tools: Sequence[Tool],
    *,
    metrics: Metrics | None = None,
    cache: ResponseCache | None = None,
    **settings: Any,
) -> AgentService:
    """An agent on the scripted model through a real CompletionService."""
    metrics = metrics or Metrics()
    completions = CompletionService(script, cache, metrics, LimitSettings(), script.model)
    return AgentService(completions, tools, AgentSettings(**settings), metrics)
