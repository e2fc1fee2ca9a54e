"""docker-compose.yml without Docker: load it, interpolate `${VAR...}` the way Compose does."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
OVERRIDE = REPO / "compose.override.yml"

# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, ${NAME:+alt}, $$.
_REFERENCE = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


class MissingVariable(LookupError):
    """A `${NAME:?message}` whose variable is not set: Compose stops with the message."""


def load(path: Path = COMPOSE) -> dict[str, Any]:
    """The compose file as plain data (YAML anchors and merge keys resolved)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Substitute variables in one string the way Compose does."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op") or "", match.group("arg") or ""
        value = env.get(name)
        unset_or_empty = not value if op.startswith(":") else value is None
        if op.endswith("?") and unset_or_empty:
            raise MissingVariable(f"required variable {name} is missing a value: {arg}")
        if op.endswith("-") and unset_or_empty:
            return arg
        if op.endswith("+"):
            return "" if unset_or_empty else arg
        return value or ""

    return _REFERENCE.sub(substitute, text)


def references(text: str) -> list[tuple[str, str]]:
    """Each `(name, operator)` a string refers to; operator is '' for a plain `${NAME}`."""
    return [
        (m.group("name") or m.group("bare"), m.group("op") or "")
        for m in _REFERENCE.finditer(text)
        if m.group(0) != "$$"
    ]


def environment(service: str, env: Mapping[str, str]) -> dict[str, str]:
    """The environment Compose would give `service`, interpolated with `env`."""
    spec = load()["services"][service].get("environment") or {}
    if isinstance(spec, list):
        spec = dict(item.split("=", 1) for item in spec)
    return {key: interpolate(str(value), env) for key, value in spec.items()}
