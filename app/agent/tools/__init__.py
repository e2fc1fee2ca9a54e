"""The agent's tools: each a name, a description, a JSON schema and an async function."""

from app.agent.tools.base import Locale, Tool, ToolArgumentsError, ToolError, ToolResult
from app.agent.tools.calculator import calculator_tool
from app.agent.tools.clock import clock_tool
from app.agent.tools.weather import OpenMeteoWeather, weather_tool

__all__ = [
    "Locale",
    "OpenMeteoWeather",
    "Tool",
    "ToolArgumentsError",
    "ToolError",
    "ToolResult",
    "calculator_tool",
    "clock_tool",
    "weather_tool",
]
