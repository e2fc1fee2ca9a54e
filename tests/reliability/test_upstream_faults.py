"""Upstream faults through the HTTP API: a model server that hangs, 500s, 503s or cuts a stream.

The backend and pool tests (tests/llm/test_ollama.py, tests/llm/test_pool.py) cover each fault at
the Backend seam, failover and the breaker; these check what a client of each surface then gets,
and that the gateway keeps answering once the upstream is well again.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from app.core.config import PoolSettings, Settings
from app.main import create_app
from tests.conftest import app_client
from tests.llm.ollama_script import Script, scripted_ollama
from tests.servers import serve_in_thread

MODEL = "llama3.2:1b"


@pytest.fixture
def script() -> Script:
    """What the scripted upstream does next."""
    return Script(pieces=["Hola", " mundo", "."])


@pytest.fixture
def upstream(script: Script) -> Iterator[str]:
    """The scripted Ollama server over real HTTP."""
    with serve_in_thread(scripted_ollama(script)) as url:
        yield url


@pytest.fixture
async def client(upstream: str) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway in front of it: cache off, a breaker that never opens, short read timeout."""
    settings = Settings(
        _env_file=None,
        llm_backend="ollama",
        ollama_urls=[upstream],
        ollama_read_timeout=0.5,
        cache_ttl=0,
        default_model=MODEL,
        pool=PoolSettings(breaker_failures=1000),
    )
    async with app_client(create_app(settings)) as client:
        yield client


def chat(content: str, stream: bool) -> dict[str, object]:
    """A chat request body, the same on both surfaces."""
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], "stream": stream}


async def still_answers(client: httpx.AsyncClient, script: Script) -> None:
    """Once the upstream is well again, so is every answer."""
    script.status, script.delay, script.cut_after = 200, 0.0, None
    for path in ("/api/chat", "/v1/chat/completions"):
        response = await client.post(path, json=chat("again", stream=False))
        assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("status", "expected", "kind"),
    [
        (500, 502, "upstream_error"),
        (503, 503, "upstream_unavailable"),
        (429, 503, "overloaded_error"),  # the model server is busy: come back later
    ],
)
async def test_upstream_error_status_reaches_both_surfaces_as_a_clear_error(
    client: httpx.AsyncClient, script: Script, status: int, expected: int, kind: str
) -> None:
    script.status = status
    for path in ("/api/chat", "/v1/chat/completions"):
        for stream in (False, True):
            response = await client.post(path, json=chat(f"{path}{stream}", stream))
            assert response.status_code == expected, (path, stream, response.text)
            assert response.json()["error"]["type"] == kind
            if expected == 503:
                assert int(response.headers["retry-after"]) >= 1
    await still_answers(client, script)


async def test_upstream_that_hangs_is_503_not_a_hung_client(
    client: httpx.AsyncClient, script: Script
) -> None:
    script.delay = 3.0  # longer than the 0.5 s read timeout
    for path in ("/api/chat", "/v1/chat/completions"):
        response = await client.post(path, json=chat(path, stream=False), timeout=10)
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"]
    await still_answers(client, script)


async def test_upstream_cut_mid_stream_ends_each_stream_with_an_error(
    client: httpx.AsyncClient, script: Script
) -> None:
    script.cut_after = 1
    ndjson = await client.post("/api/chat", json=chat("ndjson", stream=True))
    assert ndjson.status_code == 200  # the first piece had gone out
    lines = [json.loads(line) for line in ndjson.text.splitlines()]
    assert lines[0]["message"]["content"] == "Hola"
    assert "error" in lines[-1]
    sse = await client.post("/v1/chat/completions", json=chat("sse", stream=True))
    events = [e.removeprefix("data: ") for e in sse.text.split("\n\n") if e]
    assert events[-1] == "[DONE]"
    assert "error" in json.loads(events[-2])
    whole = await client.post("/api/chat", json=chat("whole", stream=False))
    assert whole.status_code == 502
    assert whole.json()["error"]["type"] == "upstream_error"
    await still_answers(client, script)
