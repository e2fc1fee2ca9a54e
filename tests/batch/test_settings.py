"""The batch settings: documented in .env.example, and read from the environment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.core.config import BatchSettings, ConfigError, load_settings

ENV_EXAMPLE = Path(__file__).resolve().parents[2] / ".env.example"


@pytest.mark.parametrize("name", sorted(BatchSettings.model_fields))
def test_batch_settings_are_in_env_example_with_their_defaults(name: str) -> None:
    default = BatchSettings.model_fields[name].default
    variable = f"LLAMARADA_BATCH__{name.upper()}"
    found = re.search(rf"^(# )?{variable}=(.*)$", ENV_EXAMPLE.read_text(), re.MULTILINE)
    assert found, f"{variable} is missing from .env.example"
    if default is not None:
        assert float(found.group(2)) == float(default)


def test_batch_settings_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLAMARADA_BATCH__HEARTBEAT", "3")
    monkeypatch.setenv("LLAMARADA_BATCH__REDIS_URL", "redis://jobs:6379/1")
    settings = load_settings(_env_file=None)
    assert settings.batch.heartbeat == 3
    assert settings.batch.redis_url is not None
    assert settings.batch.redis_url.get_secret_value() == "redis://jobs:6379/1"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("LLAMARADA_BATCH__REDIS_URL", "http://x"), ("LLAMARADA_BATCH__MAX_ATTEMPTS", "0")],
)
def test_batch_settings_refuse_bad_values(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings(_env_file=None)
