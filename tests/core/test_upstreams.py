"""`LLAMARADA_UPSTREAMS`: typed upstreams, the old Ollama list still read, bad values named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.config import ConfigError, load_settings
from app.core.upstreams import Upstream, parse_upstreams

SECRET = "sk-do-not-print-7777"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no .env file here
    for name in list(os.environ):
        if name.startswith("LLAMARADA_"):
            monkeypatch.delenv(name)


def test_upstreams_read_kinds_urls_and_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "LLAMARADA_UPSTREAMS", f"ollama=http://a:11434/, OpenAI=http://b:8000/v1 ; key={SECRET}"
    )
    settings = load_settings()
    assert settings.llm_backend == "ollama"  # a typed list means the pool
    assert [(u.kind, u.url) for u in settings.pool_upstreams] == [
        ("ollama", "http://a:11434"),
        ("openai", "http://b:8000/v1"),
    ]
    key = settings.upstreams[1].api_key
    assert key is not None
    assert key.get_secret_value() == SECRET
    assert SECRET not in repr(settings)


def test_ollama_urls_keep_working_as_ollama_upstreams(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMARADA_LLM_BACKEND", "ollama")
    monkeypatch.setenv("LLAMARADA_OLLAMA_URLS", "http://a:11434,http://b:11434")
    settings = load_settings()
    assert settings.upstreams == []
    assert settings.pool_upstreams == [
        Upstream(kind="ollama", url="http://a:11434"),
        Upstream(kind="ollama", url="http://b:11434"),
    ]


def test_explicit_embedded_backend_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMARADA_LLM_BACKEND", "embedded")
    monkeypatch.setenv("LLAMARADA_UPSTREAMS", "openai=http://b:8000/v1")
    assert load_settings().llm_backend == "embedded"


@pytest.mark.parametrize(
    "value",
    [
        "vllm=http://b:8000/v1",
        "http://a:11434",
        "openai=b:8000/v1",
        f"openai=http://b:8000/v1;token={SECRET}",
        f"openai=http://b:8000/v1;key={SECRET};key={SECRET}",
        "openai=http://b:8000/v1;key=",
        " , ",
    ],
)
def test_malformed_upstreams_name_the_variable_and_hide_the_key(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("LLAMARADA_UPSTREAMS", value)
    with pytest.raises(ConfigError, match="LLAMARADA_UPSTREAMS") as raised:
        load_settings()
    assert SECRET not in str(raised.value)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://a:port", "has a port that is not a number"),
        ("http://a:99999", "has a port that is not a number"),
        ("http://:11434", "names no host"),
        (f"http://user:{SECRET}@a:x1", "has a port that is not a number"),
    ],
)
def test_a_server_url_that_cannot_be_reached_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, url: str, problem: str
) -> None:
    # As an upstreams entry (never quoted: it may hold a password) and as an Ollama URL.
    with pytest.raises(ValueError, match=f"entry 1: the URL after ollama= {problem}") as raised:
        parse_upstreams(f"ollama={url}")
    assert SECRET not in str(raised.value)
    monkeypatch.setenv("LLAMARADA_LLM_BACKEND", "ollama")
    monkeypatch.setenv("LLAMARADA_OLLAMA_URLS", f"http://ok:11434,{url}")
    with pytest.raises(ConfigError, match=f"LLAMARADA_OLLAMA_URLS: .*URL 2 {problem}") as failed:
        load_settings()
    assert SECRET not in str(failed.value)


def test_parse_upstreams_names_the_entry() -> None:
    with pytest.raises(ValueError, match="entry 2"):
        parse_upstreams("ollama=http://a:11434,ollama")


@pytest.mark.timeout(60)
def test_serve_with_malformed_upstreams_exits_naming_the_variable(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMARADA_")}
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "serve"],
        env={**env, "PYTHONPATH": str(ROOT), "LLAMARADA_UPSTREAMS": f"openai=ftp://b;key={SECRET}"},
        capture_output=True,
        text=True,
        timeout=50,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "LLAMARADA_UPSTREAMS" in result.stderr
    assert SECRET not in result.stderr
    assert "Traceback" not in result.stderr
