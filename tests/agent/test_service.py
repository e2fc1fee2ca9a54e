"""The agent as the app builds it: settings from the environment, tools, and their bounds."""

from __future__ import annotations

import httpx
import pytest

from app.agent.build import build_agent, build_tools
from app.agent.loop import AgentTask
from app.core.auth import ANONYMOUS
from app.core.config import ConfigError, LimitSettings, Settings, load_settings
from app.core.metrics import Metrics
from app.llm.completions import CompletionService
from tests.agent.scripted import AgentScript


def test_agent_settings_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMARADA_AGENT__MAX_STEPS", "3")
    monkeypatch.setenv("LLAMARADA_AGENT__TIMEZONE", "america/monterrey")
    monkeypatch.setenv("LLAMARADA_AGENT__LOCALE", "en")
    monkeypatch.setenv("LLAMARADA_AGENT__OPENMETEO_FORECAST_URL", "http://127.0.0.1:9/")

    agent = load_settings(_env_file=None).agent

    assert (agent.max_steps, agent.timezone, agent.locale) == (3, "america/monterrey", "en")
    assert agent.openmeteo_forecast_url == "http://127.0.0.1:9"
    assert agent.tool_timeout == 10
    assert agent.total_timeout == 120


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TIMEZONE", "Mars/Olympus_Mons"),
        ("LOCALE", "fr"),
        ("MAX_STEPS", "11"),
        ("TOOL_TIMEOUT", "0"),
        ("OPENMETEO_GEOCODING_URL", "file:///etc/passwd"),
    ],
)
def test_agent_settings_refuse_bad_values_at_start_up(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"LLAMARADA_AGENT__{name}", value)

    with pytest.raises(ConfigError, match=f"LLAMARADA_AGENT__{name}"):
        load_settings(_env_file=None)


async def test_build_tools_offers_calculator_date_and_weather(settings: Settings) -> None:
    async with httpx.AsyncClient() as http:
        tools = build_tools(settings, http)

    assert [tool.name for tool in tools] == ["calculator", "date", "weather"]


async def test_build_agent_keeps_step_tokens_within_the_request_limit(settings: Settings) -> None:
    script = AgentScript(["4"])
    limited = settings.model_copy(update={"limits": LimitSettings(max_num_predict=100)})
    completions = CompletionService(script, None, Metrics(), limited.limits, script.model)
    async with httpx.AsyncClient() as http:
        agent = build_agent(limited, completions, http, Metrics())
        result = await agent.run(AgentTask("2 + 2", caller=ANONYMOUS))

    assert result.output == "4"
    options = script.requests[0].options
    assert options is not None
    assert options.num_predict == 100
