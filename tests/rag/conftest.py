"""Knowledge-base fixtures: apps on the scripted backend, and a real `chroma run` server."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from app.core.config import Settings
from app.main import create_app
from tests.conftest import app_client, free_port
from tests.fakes import ScriptedBackend

MODEL = "scripted:1b"


class ChromaServer:
    """A real Chroma server (`chroma run`) on a free port that a test can kill and restart."""

    def __init__(self, path: Path) -> None:
        self.binary = Path(sys.executable).parent / "chroma"
        if not self.binary.exists():
            pytest.fail("the `chroma` command is missing (it comes with the chromadb package)")
        self.path = path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait for its heartbeat."""
        self._process = subprocess.Popen(
            [str(self.binary), "run", "--path", str(self.path), "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{self.url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self._process.poll() is not None:
                raise RuntimeError("chroma run did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        """Kill the server (SIGKILL: an outage, not a clean shutdown)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[ChromaServer]:
    """A running Chroma server with its data in a temp folder, stopped after the test."""
    server = ChromaServer(tmp_path / "chroma-server")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def backend() -> ScriptedBackend:
    """A model that answers every question with one cited sentence."""
    return ScriptedBackend(pieces=("The answer", " is in the documents", " [1]."), model=MODEL)


@pytest.fixture
async def client(settings: Settings, backend: ScriptedBackend) -> AsyncIterator[httpx.AsyncClient]:
    """An app with embedded Chroma in the temp data dir and the scripted model."""
    settings = settings.model_copy(update={"default_model": MODEL})
    async with app_client(create_app(settings, backend=backend)) as client:
        yield client


async def upload(
    client: httpx.AsyncClient, collection: str, *files: tuple[str, bytes]
) -> httpx.Response:
    """POST files to a collection as multipart parts named `files`."""
    parts = [("files", (name, data)) for name, data in files]
    return await client.post(f"/api/rag/collections/{collection}/documents", files=parts)
