"""The weather tool against a scripted Open-Meteo server on 127.0.0.1."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from app.agent.tools.base import ToolArgumentsError, ToolError
from app.agent.tools.weather import (
    WEATHER_CODES,
    OpenMeteoWeather,
    describe_weather_code,
    validate_place,
    weather_tool,
)
from tests.agent.tools.openmeteo_server import OpenMeteoServer


class FakeTimer:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server() -> Iterator[OpenMeteoServer]:
    scripted = OpenMeteoServer()
    scripted.start()
    yield scripted
    scripted.stop()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as http:
        yield http


@pytest.fixture
def timer() -> FakeTimer:
    return FakeTimer()


@pytest.fixture
def weather(
    server: OpenMeteoServer, client: httpx.AsyncClient, timer: FakeTimer
) -> OpenMeteoWeather:
    return OpenMeteoWeather(
        client,
        geocoding_base=server.base_url,
        forecast_base=server.base_url + "/",
        timeout=0.5,
        timer=timer,
    )


async def test_weather_reports_current_conditions(
    weather: OpenMeteoWeather, server: OpenMeteoServer
) -> None:
    result = await weather_tool(weather).run({"place": "Monterrey"})

    assert result == (
        "Monterrey, Nuevo León, Mexico: 24.3 °C, mainly clear, humidity 41%, "
        "wind 9.4 km/h (local time 2026-11-29T11:00)"
    )
    search, forecast = server.requests
    assert search.path == "/v1/search"
    assert search.query == {
        "name": ["Monterrey"],
        "count": ["1"],
        "language": ["en"],
        "format": ["json"],
    }
    assert forecast.path == "/v1/forecast"
    assert forecast.query["latitude"] == ["25.67507"]
    assert forecast.query["longitude"] == ["-100.31847"]
    assert forecast.query["current"] == [
        "temperature_2m,relative_humidity_2m,wind_speed_10m,weather_code"
    ]


async def test_weather_answers_in_spanish(
    server: OpenMeteoServer, client: httpx.AsyncClient
) -> None:
    spanish = OpenMeteoWeather(
        client, geocoding_base=server.base_url, forecast_base=server.base_url, locale="es"
    )

    result = await weather_tool(spanish).run({"place": "monterrey"})

    assert result == (
        "Monterrey, Nuevo León, México: 24.3 °C, mayormente despejado, humedad 41 %, "
        "viento 9.4 km/h (hora local 2026-11-29T11:00)"
    )
    assert server.requests[0].query["language"] == ["es"]


async def test_weather_place_name_is_sent_only_as_a_query_parameter(
    weather: OpenMeteoWeather, server: OpenMeteoServer
) -> None:
    # Spaces, parentheses and non-ASCII letters arrive intact, and the path stays fixed.
    with pytest.raises(ToolError, match=re.escape("no place named 'Río (Ñuble)' found")):
        await weather.current("Río (Ñuble)")
    assert server.requests[0].path == "/v1/search"
    assert server.requests[0].query["name"] == ["Río (Ñuble)"]


async def test_weather_cache_hit_makes_no_request(
    weather: OpenMeteoWeather, server: OpenMeteoServer, timer: FakeTimer
) -> None:
    first = await weather.current("Monterrey")
    timer.now += 599

    again = await weather.current("  monterrey ")

    assert again == first
    assert len(server.requests) == 2


async def test_weather_cache_expires_after_ten_minutes(
    weather: OpenMeteoWeather, server: OpenMeteoServer, timer: FakeTimer
) -> None:
    await weather.current("Monterrey")
    server.forecast["current"]["temperature_2m"] = 30.5
    timer.now += 601

    later = await weather.current("Monterrey")

    assert later.temperature == 30.5
    assert len(server.requests) == 4


async def test_weather_unknown_place(weather: OpenMeteoWeather, server: OpenMeteoServer) -> None:
    with pytest.raises(ToolError, match=r"^no place named 'Atlantis' found$"):
        await weather.current("Atlantis")

    assert len(server.requests) == 1


async def test_weather_qualified_name_falls_back_to_matching_region(
    weather: OpenMeteoWeather, server: OpenMeteoServer
) -> None:
    colombia = await weather.current("Monterrey, Colombia")
    mexico = await weather.current("Monterrey, Nuevo León, MX")

    assert colombia.place == "Monterrey, Casanare, Colombia"
    assert mexico.place == "Monterrey, Nuevo León, Mexico"
    assert [r.query["name"][0] for r in server.requests if r.path == "/v1/search"] == [
        "Monterrey, Colombia",
        "Monterrey",
        "Monterrey, Nuevo León, MX",
        "Monterrey",
    ]


async def test_weather_upstream_500(weather: OpenMeteoWeather, server: OpenMeteoServer) -> None:
    server.status = 500

    with pytest.raises(ToolError, match=r"^the weather service failed \(HTTP 500\)"):
        await weather.current("Monterrey")


async def test_weather_upstream_400_passes_on_the_reason(
    weather: OpenMeteoWeather, server: OpenMeteoServer
) -> None:
    server.status = 400

    with pytest.raises(ToolError, match=r"\(HTTP 400\): Scripted failure 400$"):
        await weather.current("Monterrey")


async def test_weather_upstream_answer_not_json(
    weather: OpenMeteoWeather, server: OpenMeteoServer
) -> None:
    server.raw_body = b"<html>maintenance</html>"

    with pytest.raises(ToolError, match="could not be read"):
        await weather.current("Monterrey")


async def test_weather_upstream_missing_values(
    weather: OpenMeteoWeather, server: OpenMeteoServer
) -> None:
    server.forecast["current"]["temperature_2m"] = None

    with pytest.raises(ToolError, match="no current data for Monterrey, Nuevo León, Mexico"):
        await weather.current("Monterrey")


async def test_weather_upstream_timeout(server: OpenMeteoServer, client: httpx.AsyncClient) -> None:
    server.delay = 5.0
    weather = OpenMeteoWeather(
        client, geocoding_base=server.base_url, forecast_base=server.base_url, timeout=0.1
    )

    with pytest.raises(ToolError, match="did not answer in time"):
        await weather.current("Monterrey")

    assert len(server.requests) == 1


async def test_weather_upstream_unreachable(client: httpx.AsyncClient) -> None:
    closed = OpenMeteoServer()
    closed.start()
    base_url = closed.base_url
    closed.stop()
    weather = OpenMeteoWeather(client, geocoding_base=base_url, forecast_base=base_url)

    with pytest.raises(ToolError, match="could not be reached"):
        await weather.current("Monterrey")


async def test_weather_failures_are_not_cached(
    weather: OpenMeteoWeather, server: OpenMeteoServer
) -> None:
    server.status = 503
    with pytest.raises(ToolError):
        await weather.current("Monterrey")
    server.status = 200

    assert (await weather.current("Monterrey")).temperature == 24.3


@pytest.mark.parametrize(
    "place",
    [
        "http://169.254.169.254/latest/meta-data",
        "https://example.com",
        "file:///etc/passwd",
        "gopher://localhost:70",
        "localhost:8080",
        "javascript:alert(1)",
        "www.example.com",
        "example.com/weather",
        "..\\windows",
        "user@host",
        "Monterrey\n&count=100",
        "Monterrey\x00",
        "Monterrey\u200b",
        "Monterrey?x=1",
        "Monterrey#top",
        "%2e%2e%2f",
        "M" * 101,
        "",
        "   ",
    ],
)
async def test_weather_rejects_what_is_not_a_place_name(
    weather: OpenMeteoWeather, server: OpenMeteoServer, place: str
) -> None:
    with pytest.raises(ToolError):
        await weather.current(place)

    assert server.requests == []


@pytest.mark.parametrize(
    ("place", "expected"),
    [
        ("São Paulo", "São Paulo"),
        ("N'Djamena", "N'Djamena"),
        ("N\u2019Djamena", "N\u2019Djamena"),
        ("Saint-Étienne", "Saint-Étienne"),
        ("  Ciudad   de\u00a0México ", "Ciudad de México"),
        ("東京", "東京"),
        ("Washington, D.C.", "Washington, D.C."),
        ("10115", "10115"),
    ],
)
def test_validate_place_accepts_place_names(place: str, expected: str) -> None:
    assert validate_place(place) == expected


@pytest.mark.parametrize(
    ("place", "message"),
    [
        ("https://example.com", "looks like a URL"),
        ("a/b", "cannot contain '/'"),
        ("a@b", "cannot contain '@'"),
        ("a\\b", "cannot contain '\\\\'"),
        ("a\tb\x07", "control characters"),
        ("x" * 101, "too long"),
        ("a;b", "cannot contain ';'"),
    ],
)
def test_validate_place_says_what_is_wrong(place: str, message: str) -> None:
    with pytest.raises(ToolError, match=re.escape(message)):
        validate_place(place)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "missing required argument 'place'"),
        ({"place": 5}, "argument 'place' must be of type string"),
        ({"place": "x" * 500}, "argument 'place' is too long"),
        ({"place": "Lima", "url": "http://x"}, "unexpected argument 'url'"),
    ],
)
async def test_weather_tool_checks_arguments_against_its_schema(
    weather: OpenMeteoWeather, server: OpenMeteoServer, arguments: object, message: str
) -> None:
    with pytest.raises(ToolArgumentsError, match=message):
        await weather_tool(weather).run(arguments)

    assert server.requests == []


def test_describe_weather_code_names_every_code_in_both_languages() -> None:
    for code, (english, spanish) in WEATHER_CODES.items():
        assert describe_weather_code(code, "en") == english
        assert describe_weather_code(code, "es") == spanish
    assert describe_weather_code(42, "en") == "unknown conditions (code 42)"
    assert describe_weather_code(42, "es") == "condiciones desconocidas (código 42)"
