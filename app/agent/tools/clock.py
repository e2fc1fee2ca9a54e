"""The `date` tool: today's date and time in an IANA time zone, in Spanish or English.

Month and weekday names come from the tables below, not from the OS locale, so the answer is
the same on every machine and no process-wide `locale.setlocale` is needed.
"""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from app.agent.tools.base import Locale, Tool, ToolError

_WEEKDAYS: dict[Locale, tuple[str, ...]] = {
    "es": (
        "lunes",
        "martes",
        "miércoles",
        "jueves",
        "viernes",
        "sábado",
        "domingo",
    ),
    "en": (
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ),
}
_MONTHS: dict[Locale, tuple[str, ...]] = {
    "es": (
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
    ),
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}
_MAX_ZONE_NAME = 64


@functools.cache
def _zone_names() -> dict[str, str]:
    """Map each known IANA zone name, lower-cased, to its canonical spelling."""
    return {name.lower(): name for name in zoneinfo.available_timezones()}


def resolve_timezone(name: str) -> ZoneInfo:
    """Return the zone for an IANA name (any letter case), or raise ToolError."""
    # Only names from the tz database: ZoneInfo would also open other files under its path.
    canonical = _zone_names().get(name.strip().lower()) if len(name) <= _MAX_ZONE_NAME else None
    if canonical is None:
        shown = name if len(name) <= _MAX_ZONE_NAME else name[:_MAX_ZONE_NAME] + "…"
        raise ToolError(
            f"unknown time zone {shown!r}: use an IANA name such as "
            "'America/Mexico_City', 'Europe/Madrid' or 'UTC'"
        )
    return ZoneInfo(canonical)


def format_datetime(moment: datetime, locale: Locale) -> str:
    """Write a zone-aware moment as 'Sunday, 29 November 2026, 11:05 (UTC)' or in Spanish."""
    weekday = _WEEKDAYS[locale][moment.weekday()]
    month = _MONTHS[locale][moment.month - 1]
    zone = moment.tzinfo.key if isinstance(moment.tzinfo, ZoneInfo) else moment.tzname()
    clock = f"{moment.hour:02d}:{moment.minute:02d}"
    if locale == "es":
        return f"{weekday}, {moment.day} de {month} de {moment.year}, {clock} ({zone})"
    return f"{weekday}, {moment.day} {month} {moment.year}, {clock} ({zone})"


def _utc_now() -> datetime:
    return datetime.now(UTC)


def clock_tool(
    timezone: str = "UTC",
    locale: Locale = "en",
    now: Callable[[], datetime] = _utc_now,
) -> Tool:
    """Build the `date` tool; `now` returns an aware datetime (naive ones are taken as UTC)."""
    try:
        default_zone = resolve_timezone(timezone)
    except ToolError as error:
        raise ValueError(f"date tool: {error.message}") from None
    if locale not in _WEEKDAYS:
        raise ValueError(f"date tool: locale must be 'es' or 'en', not {locale!r}")

    async def today(arguments: dict[str, Any]) -> str:
        requested = arguments.get("timezone", "").strip()
        # Small models fill optional arguments with "": read that as "not given".
        zone = resolve_timezone(requested) if requested else default_zone
        moment = now()
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return format_datetime(moment.astimezone(zone), locale)

    return Tool(
        name="date",
        description=(
            "Today's date and the current time. "
            f"Optional: an IANA time zone such as 'America/Mexico_City' (default {timezone})."
        ),
        parameters={
            "type": "object",
            "properties": {
                "timezone": {
                    "type": "string",
                    "description": "IANA time zone name, for example 'Europe/Madrid'.",
                    "maxLength": _MAX_ZONE_NAME,
                }
            },
            "additionalProperties": False,
        },
        function=today,
    )
