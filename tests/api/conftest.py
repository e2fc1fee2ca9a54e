"""An app on the real embedded model, with a counter on its generations."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.core.config import Settings
from app.llm.embedded import EmbeddedBackend
from app.main import create_app
from tests.conftest import app_client
from tests.fakes import CountingBackend


@pytest.fixture
async def model(settings: Settings) -> AsyncIterator[CountingBackend]:
    """The real SmolLM2 through llama.cpp, counting the generations it runs."""
    backend = CountingBackend(EmbeddedBackend(settings.embedded))
    await backend.start()
    yield backend
    await backend.aclose()


@pytest.fixture
async def client(settings: Settings, model: CountingBackend) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app on the real model with the in-process cache."""
    async with app_client(create_app(settings, backend=model)) as client:
        yield client
