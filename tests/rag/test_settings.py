"""The knowledge-base settings: each in .env.example with its default, and the parse limits."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.core.config import RagSettings
from app.rag.parsing import ParseLimits

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"


@pytest.mark.parametrize("name", sorted(RagSettings.model_fields))
def test_rag_settings_are_in_env_example_with_their_defaults(name: str) -> None:
    default = RagSettings.model_fields[name].default
    variable = f"LLAMARADA_RAG__{name.upper()}"
    found = re.search(rf"^(# )?{variable}=(.*)$", ENV_EXAMPLE.read_text(), re.MULTILINE)
    assert found, f"{variable} is missing from .env.example"
    if isinstance(default, int | float) and not isinstance(default, bool):
        assert float(found.group(2)) == float(default)
    else:
        assert found.group(2) == str(default)


def test_parse_limits_come_from_the_settings() -> None:
    settings = RagSettings(
        parse_cpu_seconds=7, parse_wall_seconds=9.5, parse_memory_mb=300, max_pages=12
    )
    limits = ParseLimits.of(settings)
    assert limits == ParseLimits(
        cpu_seconds=7,
        wall_seconds=9.5,
        memory_bytes=300 * 1024 * 1024,
        max_pages=12,
        max_chars=settings.max_document_chars,
    )
