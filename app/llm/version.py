"""Which Ollama API version the gateway speaks: its own in embedded mode, its pool's lowest."""

from __future__ import annotations

import re
from collections.abc import Iterable

# The Ollama release whose APIs the gateway implements (Anthropic's Messages API came in 0.14);
# clients that gate features on Ollama's version read this from `/api/version`.
OLLAMA_API_VERSION = "0.14.0"

_NUMBERS = re.compile(r"\d+")


def version_key(version: str) -> tuple[int, ...]:
    """`0.12.3-rc1` -> (0, 12, 3): the release numbers, for ordering."""
    return tuple(int(part) for part in _NUMBERS.findall(version.split("-")[0].split("+")[0]))


def lowest_version(versions: Iterable[str]) -> str | None:
    """The lowest of some version strings (those without numbers left out), or None."""
    numbered = [version for version in versions if version_key(version)]
    return min(numbered, key=version_key) if numbered else None


def api_version(backend: object) -> str:
    """The Ollama API version a backend speaks: a pool reports its servers' lowest, an
    in-process model the version the gateway implements."""
    reported = getattr(backend, "api_version", None)
    return reported if isinstance(reported, str) and reported else OLLAMA_API_VERSION
