"""The `weather` tool: current weather by place name from Open-Meteo (no API key needed).

A place name goes to the geocoding API, its first match to the forecast API. The place name
only ever travels as a query parameter, and anything that looks like a URL is refused before
a request is made. Answers are cached per place for ten minutes; every failure of the service
becomes a ToolError that says what happened, never a traceback.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from cachetools import TTLCache

from app.agent.tools.base import Locale, Tool, ToolError

DEFAULT_GEOCODING_BASE = "https://geocoding-api.open-meteo.com"
DEFAULT_FORECAST_BASE = "https://api.open-meteo.com"
CACHE_TTL_SECONDS = 600.0
MAX_PLACE_LENGTH = 100
_CURRENT_FIELDS = ("temperature_2m", "relative_humidity_2m", "wind_speed_10m", "weather_code")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.\-]*:|://|^www\.", re.IGNORECASE)
# Besides letters, marks and digits; \u2019 is the typographic apostrophe (N\u2019Djamena).
_PLACE_PUNCTUATION = frozenset(" .,'\u2019-()")

# WMO weather interpretation codes, as Open-Meteo documents them: (English, Spanish).
WEATHER_CODES: dict[int, tuple[str, str]] = {
    0: ("clear sky", "cielo despejado"),
    1: ("mainly clear", "mayormente despejado"),
    2: ("partly cloudy", "parcialmente nublado"),
    3: ("overcast", "nublado"),
    45: ("fog", "niebla"),
    48: ("depositing rime fog", "niebla con escarcha"),
    51: ("light drizzle", "llovizna ligera"),
    53: ("moderate drizzle", "llovizna moderada"),
    55: ("dense drizzle", "llovizna intensa"),
    56: ("light freezing drizzle", "llovizna helada ligera"),
    57: ("dense freezing drizzle", "llovizna helada intensa"),
    61: ("slight rain", "lluvia ligera"),
    63: ("moderate rain", "lluvia moderada"),
    65: ("heavy rain", "lluvia fuerte"),
    66: ("light freezing rain", "lluvia helada ligera"),
    67: ("heavy freezing rain", "lluvia helada fuerte"),
    71: ("slight snowfall", "nevada ligera"),
    73: ("moderate snowfall", "nevada moderada"),
    75: ("heavy snowfall", "nevada fuerte"),
    77: ("snow grains", "granos de nieve"),
    80: ("slight rain showers", "chubascos ligeros"),
    81: ("moderate rain showers", "chubascos moderados"),
    82: ("violent rain showers", "chubascos violentos"),
    85: ("slight snow showers", "chubascos de nieve ligeros"),
    86: ("heavy snow showers", "chubascos de nieve fuertes"),
    95: ("thunderstorm", "tormenta eléctrica"),
    96: ("thunderstorm with slight hail", "tormenta eléctrica con granizo ligero"),
    99: ("thunderstorm with heavy hail", "tormenta eléctrica con granizo fuerte"),
}


def describe_weather_code(code: int, locale: Locale) -> str:
    """Name a WMO weather code in English or Spanish."""
    names = WEATHER_CODES.get(code)
    if names is None:
        if locale == "es":
            return f"condiciones desconocidas (código {code})"
        return f"unknown conditions (code {code})"
    return names[0] if locale == "en" else names[1]


def validate_place(place: str) -> str:
    """Return the place name with its spaces tidied, or raise ToolError if it is not one."""
    if len(place) > MAX_PLACE_LENGTH:
        raise ToolError(f"the place name is too long (at most {MAX_PLACE_LENGTH} characters)")
    # Before tidying spaces, which would turn newlines and tabs into plain spaces.
    if any(unicodedata.category(char) == "Cc" for char in place):
        raise ToolError("the place name contains control characters")
    name = " ".join(place.split())
    if not name:
        raise ToolError("give the name of a place, such as 'Monterrey'")
    if _SCHEME.search(name):
        raise ToolError("that looks like a URL: give a place name only, such as 'Monterrey'")
    for char in name:
        if char in "/\\@":
            raise ToolError(f"a place name cannot contain {char!r}: give a place name only")
        if unicodedata.category(char)[0] not in "LMN" and char not in _PLACE_PUNCTUATION:
            raise ToolError(f"a place name cannot contain {char!r}")
    return name


@dataclass(frozen=True)
class CurrentWeather:
    """The current weather at one place, in the units Open-Meteo reported."""

    place: str
    latitude: float
    longitude: float
    time: str
    temperature: float
    temperature_unit: str
    humidity_percent: float
    wind_speed: float
    wind_speed_unit: str
    weather_code: int

    def describe(self, locale: Locale) -> str:
        """One sentence for the model to quote, in English or Spanish."""
        conditions = describe_weather_code(self.weather_code, locale)
        temperature = f"{self.temperature:g} {self.temperature_unit}"
        wind = f"{self.wind_speed:g} {self.wind_speed_unit}"
        if locale == "es":
            return (
                f"{self.place}: {temperature}, {conditions}, humedad {self.humidity_percent:g} %, "
                f"viento {wind} (hora local {self.time})"
            )
        return (
            f"{self.place}: {temperature}, {conditions}, humidity {self.humidity_percent:g}%, "
            f"wind {wind} (local time {self.time})"
        )


class OpenMeteoWeather:
    """Current weather by place name from Open-Meteo, cached per place for ten minutes."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        geocoding_base: str = DEFAULT_GEOCODING_BASE,
        forecast_base: str = DEFAULT_FORECAST_BASE,
        locale: Locale = "en",
        timeout: float = 5.0,
        cache_ttl: float = CACHE_TTL_SECONDS,
        cache_size: int = 256,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        # The bases are settings, never model input; the place name only goes in `params`.
        self._search_url = f"{geocoding_base.rstrip('/')}/v1/search"
        self._forecast_url = f"{forecast_base.rstrip('/')}/v1/forecast"
        self.locale: Locale = locale
        self._timeout = timeout
        self._cache: TTLCache[str, CurrentWeather] = TTLCache(
            maxsize=cache_size, ttl=cache_ttl, timer=timer
        )

    async def current(self, place: str) -> CurrentWeather:
        """Return the current weather at a named place, or raise ToolError."""
        name = validate_place(place)
        key = name.casefold()
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        match = await self._geocode(name)
        weather = await self._forecast(match)
        self._cache[key] = weather
        return weather

    async def _geocode(self, name: str) -> dict[str, Any]:
        found = await self._search(name, count=1)
        if not found and "," in name:
            # The geocoder knows "Monterrey" but not "Monterrey, Mexico": search the first part
            # and prefer a match whose region or country is named in the rest.
            first, _, rest = name.partition(",")
            hints = {part.strip().casefold() for part in rest.split(",") if part.strip()}
            candidates = await self._search(first.strip(), count=10) if first.strip() else []
            found = [c for c in candidates if _region_names(c) & hints][:1] or candidates[:1]
        if not found:
            raise ToolError(f"no place named {name!r} found")
        return found[0]

    async def _search(self, name: str, count: int) -> list[dict[str, Any]]:
        params = {"name": name, "count": count, "language": self.locale, "format": "json"}
        data = await self._get_json(self._search_url, params)
        # Open-Meteo leaves `results` out altogether when nothing matches.
        results = data.get("results") or []
        if not isinstance(results, list):
            raise ToolError(_UNEXPECTED)
        return [result for result in results if isinstance(result, dict)]

    async def _forecast(self, match: dict[str, Any]) -> CurrentWeather:
        try:
            latitude = float(match["latitude"])
            longitude = float(match["longitude"])
        except (KeyError, TypeError, ValueError):
            raise ToolError(_UNEXPECTED) from None
        params = {
            "latitude": latitude,
            "longitude": longitude,
            "current": ",".join(_CURRENT_FIELDS),
            "timezone": "auto",
        }
        data = await self._get_json(self._forecast_url, params)
        place = _place_label(match)
        current, units = data.get("current"), data.get("current_units") or {}
        if not isinstance(current, dict) or not isinstance(units, dict):
            raise ToolError(_UNEXPECTED)
        values: list[Any] = [current.get(field) for field in _CURRENT_FIELDS]
        if any(value is None for value in values):
            raise ToolError(f"the weather service has no current data for {place}")
        try:
            temperature, humidity, wind, code = (float(value) for value in values)
            weather_code = int(code)
        except (TypeError, ValueError, OverflowError):
            raise ToolError(_UNEXPECTED) from None
        return CurrentWeather(
            place=place,
            latitude=latitude,
            longitude=longitude,
            time=str(current.get("time", "")),
            temperature=temperature,
            temperature_unit=str(units.get("temperature_2m", "°C")),
            humidity_percent=humidity,
            wind_speed=wind,
            wind_speed_unit=str(units.get("wind_speed_10m", "km/h")),
            weather_code=weather_code,
        )

    async def _get_json(self, url: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self._client.get(url, params=params, timeout=self._timeout)
        except httpx.TimeoutException:
            raise ToolError("the weather service did not answer in time; try again later") from None
        except httpx.HTTPError:
            raise ToolError("the weather service could not be reached; try again later") from None
        if response.status_code != httpx.codes.OK:
            raise ToolError(
                f"the weather service failed (HTTP {response.status_code}){_reason(response)}"
            )
        try:
            data = response.json()
        except ValueError:
            raise ToolError(_UNEXPECTED) from None
        if not isinstance(data, dict):
            raise ToolError(_UNEXPECTED)
        return data


def weather_tool(weather: OpenMeteoWeather) -> Tool:
    """Build the `weather` tool over an Open-Meteo client."""

    async def current_weather(arguments: dict[str, Any]) -> str:
        return (await weather.current(arguments["place"])).describe(weather.locale)

    return Tool(
        name="weather",
        description=(
            "Current weather (temperature, conditions, humidity, wind) at a place. "
            "Give the place name only, for example 'Monterrey'."
        ),
        parameters={
            "type": "object",
            "properties": {
                "place": {
                    "type": "string",
                    "description": "A city or place name, such as 'Monterrey' or 'Madrid'.",
                    "minLength": 1,
                    "maxLength": MAX_PLACE_LENGTH,
                }
            },
            "required": ["place"],
            "additionalProperties": False,
        },
        function=current_weather,
    )


_UNEXPECTED = "the weather service sent an answer that could not be read"


def _reason(response: httpx.Response) -> str:
    """Open-Meteo explains its 4xx answers as {"error": true, "reason": "..."}."""
    try:
        reason = response.json().get("reason")
    except (ValueError, AttributeError):
        return ""
    return f": {str(reason)[:200]}" if reason else ""


def _place_label(match: dict[str, Any]) -> str:
    parts: list[str] = []
    for key in ("name", "admin1", "country"):
        value = match.get(key)
        if isinstance(value, str) and value and value not in parts:
            parts.append(value)
    return ", ".join(parts) or "the place found"


def _region_names(match: dict[str, Any]) -> set[str]:
    keys = ("admin1", "admin2", "country", "country_code")
    return {str(match[key]).casefold() for key in keys if match.get(key)}
