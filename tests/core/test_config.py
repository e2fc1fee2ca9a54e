"""Settings from the environment, and the messages for bad values."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.core.config import ConfigError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env file here
    for name in list(os.environ):
        if name.startswith("LLAMARADA_"):
            monkeypatch.delenv(name)


def test_settings_defaults() -> None:
    settings = load_settings()
    assert settings.llm_backend == "embedded"
    assert settings.default_model == "smollm2:135m"
    assert settings.cache_ttl == 3600
    assert settings.redis_url is None
    assert settings.ollama_urls == ["http://localhost:11434"]


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMARADA_LLM_BACKEND", "ollama")
    monkeypatch.setenv("LLAMARADA_OLLAMA_URLS", "http://a:11434/, http://b:11434")
    monkeypatch.setenv("LLAMARADA_CACHE_TTL", "60")
    monkeypatch.setenv("LLAMARADA_REDIS_URL", "redis://:secret@localhost:6379/0")
    monkeypatch.setenv("LLAMARADA_EMBEDDED__N_CTX", "4096")
    monkeypatch.setenv("LLAMARADA_LIMITS__MAX_MESSAGES", "10")
    settings = load_settings()
    assert settings.ollama_urls == ["http://a:11434", "http://b:11434"]
    assert settings.cache_ttl == 60
    assert settings.embedded.n_ctx == 4096
    assert settings.limits.max_messages == 10
    assert "secret" not in repr(settings)  # secrets never print


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LLAMARADA_CACHE_TTL", "an hour"),
        ("LLAMARADA_CACHE_TTL", "-5"),
        ("LLAMARADA_LLM_BACKEND", "openai"),
        ("LLAMARADA_OLLAMA_URLS", "ftp://x"),
        ("LLAMARADA_OLLAMA_URLS", " , "),
        ("LLAMARADA_REDIS_URL", "localhost:6379"),
        ("LLAMARADA_EMBEDDED__N_CTX", "12"),
        ("LLAMARADA_LIMITS__MAX_BODY_BYTES", "lots"),
        ("LLAMARADA_SEMANTIC_CACHE", "maybe"),
        ("LLAMARADA_SEMANTIC_THRESHOLD", "1.5"),
        ("LLAMARADA_SEMANTIC_THRESHOLD", "0"),
        ("LLAMARADA_SEMANTIC_MAX_TEMPERATURE", "-1"),
        ("LLAMARADA_SEMANTIC_MAX_ENTRIES", "0"),
        ("LLAMARADA_FLIGHT_LEASE", "0"),
        ("LLAMARADA_FLIGHT_LEASE", "soon"),
    ],
)
def test_settings_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings()
