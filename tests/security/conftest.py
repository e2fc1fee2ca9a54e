"""Keys for the attack tests, and apps on the scripted backend that require them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from app.core.config import Settings
from app.main import create_app
from tests.conftest import app_client
from tests.fakes import ScriptedBackend

MODEL = "scripted:1b"
ALICE = "alice-key-4f9c2b7e1d0a3c5b"
BOB = "bob-key-8e1d4a7c2f5b0d3e9"
ADMIN = "ops-key-1a2b3c4d5e6f7a8b9c"
LIMITED = "limited-key-5e6f7a8b9c0d1e2f"  # may use MODEL and knowledge bases only
KEYS = f"alice:{ALICE},bob:{BOB},ops:{ADMIN};admin,limited:{LIMITED};models=scripted:1b|kb:*"


def auth(key: str) -> dict[str, str]:
    """The header a client sends its key in."""
    return {"Authorization": f"Bearer {key}"}


def secured(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings with the four test keys, the data dir in a temp folder, the scripted model."""
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "api_keys": SecretStr(KEYS),
        "default_model": MODEL,
        **overrides,
    }
    return Settings(_env_file=None, **values)


@pytest.fixture
def backend() -> ScriptedBackend:
    """The scripted model every secured app answers with."""
    return ScriptedBackend(model=MODEL)


@pytest.fixture
async def client(tmp_path: Path, backend: ScriptedBackend) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app that requires keys; it sends none by itself."""
    async with app_client(create_app(secured(tmp_path), backend=backend)) as client:
        yield client
