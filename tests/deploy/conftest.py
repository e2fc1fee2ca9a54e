"""Fixtures for the deployment tests: scripted Ollama servers that are always shut down."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.deploy.ollama_stub import OllamaFactory, OllamaStub


@pytest.fixture
def ollama_factory() -> Iterator[OllamaFactory]:
    """Make scripted Ollama servers: `make(models={...}, delay=1.0, start=True)`."""
    stubs: list[OllamaStub] = []

    def make(
        models: set[str] | None = None, *, delay: float = 0.0, start: bool = True
    ) -> OllamaStub:
        stub = OllamaStub(models)
        stubs.append(stub)
        if start:
            stub.start(delay)
        return stub

    yield make
    for stub in stubs:
        stub.stop()
