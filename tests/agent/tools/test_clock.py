"""The date tool: Spanish and English, time zones, and refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from app.agent.tools.base import Locale, ToolArgumentsError, ToolError
from app.agent.tools.clock import clock_tool, format_datetime, resolve_timezone

# Sunday 29 November 2026, 17:05 UTC: 11:05 in Mexico City (UTC-6 all year since 2022).
MOMENT = datetime(2026, 11, 29, 17, 5, 30, tzinfo=UTC)


def fixed(moment: datetime = MOMENT) -> datetime:
    return moment


@pytest.mark.parametrize(
    ("zone", "locale", "expected"),
    [
        (
            "America/Mexico_City",
            "es",
            "domingo, 29 de noviembre de 2026, 11:05 (America/Mexico_City)",
        ),
        ("UTC", "en", "Sunday, 29 November 2026, 17:05 (UTC)"),
        ("Europe/Madrid", "es", "domingo, 29 de noviembre de 2026, 18:05 (Europe/Madrid)"),
        ("Asia/Tokyo", "en", "Monday, 30 November 2026, 02:05 (Asia/Tokyo)"),
        ("Pacific/Kiritimati", "es", "lunes, 30 de noviembre de 2026, 07:05 (Pacific/Kiritimati)"),
    ],
)
async def test_date_tool_tells_the_configured_zone_and_locale(
    zone: str, locale: Locale, expected: str
) -> None:
    tool = clock_tool(timezone=zone, locale=locale, now=fixed)

    assert await tool.run({}) == expected


async def test_date_tool_takes_a_zone_argument_in_any_letter_case() -> None:
    tool = clock_tool(timezone="UTC", locale="es", now=fixed)

    answer = await tool.run({"timezone": "america/monterrey"})

    assert answer == "domingo, 29 de noviembre de 2026, 11:05 (America/Monterrey)"


async def test_date_tool_reads_an_empty_zone_as_the_default() -> None:
    tool = clock_tool(timezone="America/Mexico_City", locale="en", now=fixed)

    assert await tool.run({"timezone": "  "}) == (
        "Sunday, 29 November 2026, 11:05 (America/Mexico_City)"
    )


async def test_date_tool_takes_a_naive_now_as_utc() -> None:
    tool = clock_tool(timezone="UTC", now=lambda: datetime(2026, 11, 29, 11, 5))

    assert await tool.run({}) == "Sunday, 29 November 2026, 11:05 (UTC)"


async def test_date_tool_uses_the_real_clock_by_default() -> None:
    answer = await clock_tool().run({})

    assert isinstance(answer, str)
    assert answer.endswith(" (UTC)")
    assert str(datetime.now(UTC).year) in answer


@pytest.mark.parametrize(
    "zone",
    [
        "Mars/Olympus_Mons",
        "America",
        "../../etc/passwd",
        "/etc/localtime",
        "zone.tab",
        "posixrules",
        "America/Mexico_City\x00",
        "UTC+5",
    ],
)
async def test_date_tool_refuses_an_unknown_zone(zone: str) -> None:
    tool = clock_tool(now=fixed)

    with pytest.raises(ToolError, match=r"^unknown time zone .*: use an IANA name such as"):
        await tool.run({"timezone": zone})


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"timezone": 5}, "date: argument 'timezone' must be of type string"),
        ({"timezone": "A" * 65}, "date: argument 'timezone' is too long (at most 64"),
        ({"zone": "UTC"}, "date: unexpected argument 'zone'"),
    ],
)
async def test_date_tool_checks_arguments_against_its_schema(
    arguments: dict[str, object], message: str
) -> None:
    with pytest.raises(ToolArgumentsError) as refused:
        await clock_tool(now=fixed).run(arguments)

    assert refused.value.message.startswith(message)


def test_clock_tool_refuses_a_bad_configuration() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Nowhere/Town'"):
        clock_tool(timezone="Nowhere/Town")
    with pytest.raises(ValueError, match="locale must be 'es' or 'en'"):
        clock_tool(locale="fr")  # type: ignore[arg-type]


def test_format_datetime_names_every_weekday_and_month() -> None:
    zone = resolve_timezone("UTC")
    mondays = [datetime(2026, month, 1, tzinfo=zone) for month in range(1, 13)]
    week = [datetime(2026, 11, 23, tzinfo=zone) + timedelta(days=n) for n in range(7)]

    assert [format_datetime(m, "es").split(" de ")[1] for m in mondays] == [
        "enero", "febrero", "marzo", "abril", "mayo", "junio",
        "julio", "agosto", "septiembre", "octubre", "noviembre", "diciembre",
    ]  # fmt: skip
    assert [format_datetime(m, "en").split(" ")[2] for m in mondays] == [
        "January", "February", "March", "April", "May", "June",
        "July", "August", "September", "October", "November", "December",
    ]  # fmt: skip
    assert [format_datetime(d, "es").split(",")[0] for d in week] == [
        "lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo",
    ]  # fmt: skip
    assert [format_datetime(d, "en").split(",")[0] for d in week] == [
        "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
    ]  # fmt: skip


def test_format_datetime_names_a_fixed_offset_zone() -> None:
    moment = datetime(2026, 11, 29, 11, 5, tzinfo=timezone(timedelta(hours=-6)))

    assert format_datetime(moment, "en") == "Sunday, 29 November 2026, 11:05 (UTC-06:00)"
