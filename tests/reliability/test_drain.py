"""Graceful drain of a real `llamarada serve`: SIGTERM during a streamed answer.

The answer streams to its end, the process turns unready and refuses new requests at once,
and it exits as soon as the answer is done, well before the drain deadline; an answer that
outlives the deadline is cut there and the process still exits.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.reliability.replicas import Pace, chat_body, paced_ollama, replicas
from tests.servers import serve_in_thread

DEADLINE = 8.0  # LLAMARADA_SERVER__DRAIN_TIMEOUT here


@pytest.fixture
def pace() -> Pace:
    """An answer of about two seconds."""
    return Pace(pieces=20, delay=0.1)


@pytest.fixture
def upstream(pace: Pace) -> Iterator[str]:
    """The paced upstream over real HTTP."""
    with serve_in_thread(paced_ollama(pace)) as url:
        yield url


async def unready(client: httpx.AsyncClient, url: str, timeout: float = 5.0) -> httpx.Response:
    """`/health/ready` once it answers 503 (the signal reaches the handler, and with several
    workers each of them, a moment after it is sent)."""
    started = time.monotonic()
    while True:
        response = await client.get(f"{url}/health/ready")
        if response.status_code == 503 or time.monotonic() - started > timeout:
            return response
        await asyncio.sleep(0.02)


async def exit_within(process: object, timeout: float) -> float:
    """Seconds until the process exits."""
    started = time.monotonic()
    while process.poll() is None:  # type: ignore[attr-defined]
        assert time.monotonic() - started < timeout, "the process did not exit"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


@pytest.mark.timeout(180)
@pytest.mark.parametrize("workers", ["1", "2"])
async def test_sigterm_lets_the_stream_finish_and_refuses_new_requests(
    tmp_path: Path, upstream: str, pace: Pace, workers: str
) -> None:
    settings = {"LLAMARADA_SERVER__DRAIN_TIMEOUT": str(DEADLINE)}
    with replicas(tmp_path, 1, upstream, "--workers", workers, **settings) as (replica,):
        async with (
            httpx.AsyncClient(timeout=30) as streaming,
            httpx.AsyncClient(timeout=5) as other,
        ):
            url = replica.url
            async with streaming.stream("POST", f"{url}/api/chat", json=chat_body(1)) as answer:
                assert answer.status_code == 200
                lines = answer.aiter_lines()
                first = json.loads(await anext(lines))
                assert not first["done"]
                replica.process.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                ready = await unready(other, url)
                assert ready.status_code == 503
                assert ready.json()["status"] == "draining"
                refused = await other.post(f"{url}/api/chat", json={**chat_body(2)})
                assert refused.status_code == 503
                assert refused.headers["retry-after"] == "1"
                assert refused.json()["error"]["type"] == "server_draining"
                assert replica.process.poll() is None, "it exited with a stream in flight"

                rest = [json.loads(line) async for line in lines if line]
            assert rest[-1]["done"] is True
            assert 1 + len(rest) == pace.pieces + 1  # every piece, then the final line
            exited_after = await exit_within(replica.process, DEADLINE + 10)
            total = time.monotonic() - signalled
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{url}/health/live", timeout=1)
    assert total < DEADLINE, f"exited {total:.2f} s after SIGTERM"
    logs = [entry["message"] for entry in replica.logs()]
    assert any(message.startswith("draining") for message in logs)
    assert "drained" in logs
    print(f"\nexited {total:.2f} s after SIGTERM ({exited_after:.2f} s after the answer ended)")


@pytest.mark.timeout(180)
async def test_sigterm_cuts_an_answer_that_outlives_the_deadline(
    tmp_path: Path, upstream: str, pace: Pace
) -> None:
    pace.pieces, pace.delay = 200, 0.1  # twenty seconds
    deadline = 2.0
    settings = {"LLAMARADA_SERVER__DRAIN_TIMEOUT": str(deadline)}
    with replicas(tmp_path, 1, upstream, **settings) as (replica,):
        async with httpx.AsyncClient(timeout=30) as client:
            async with client.stream(
                "POST", f"{replica.url}/api/chat", json=chat_body(1)
            ) as answer:
                lines = answer.aiter_lines()
                await anext(lines)
                replica.process.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                with pytest.raises(httpx.TransportError):
                    async for _ in lines:
                        pass
            await exit_within(replica.process, 30)
            total = time.monotonic() - signalled
    assert total >= deadline, f"exited {total:.2f} s after SIGTERM, before the deadline"
    assert "drain deadline passed" in [entry["message"] for entry in replica.logs()]
