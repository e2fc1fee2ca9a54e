"""Many requests at once on a real Redis: the pool waits for a free connection instead of failing,
no connection in use is torn down, and any Redis failure is a cache miss and in-process quotas,
never a 5xx."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from app.core.config import BatchSettings, QuotaSettings, Settings
from app.main import create_app
from tests.conftest import RedisProcess, app_client
from tests.fakes import ScriptedBackend

MODEL = "scripted:1b"
KEY = "load-key-0123456789abcdef"
QUOTAED = "quota-key-0123456789abcdef"
KEYS = f"load:{KEY},quotaed:{QUOTAED};rpm=100000;tpm=100000000"
CONCURRENT = 200


def load_settings(tmp_path: Path, url: str, **overrides: object) -> Settings:
    """An app with API keys, quotas and the cache on Redis, and the scripted model."""
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "redis_url": SecretStr(url),
        "api_keys": SecretStr(KEYS),
        "default_model": MODEL,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def chat(content: str) -> dict[str, object]:
    """A whole-answer chat request."""
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], "stream": False}


def asks(
    client: httpx.AsyncClient, key: str, count: int, questions: int = 20
) -> list[asyncio.Future[httpx.Response]]:
    """`count` chats started at once over `questions` distinct questions."""
    headers = {"Authorization": f"Bearer {key}"}
    return [
        asyncio.ensure_future(
            client.post("/api/chat", json=chat(f"q{i % questions}"), headers=headers)
        )
        for i in range(count)
    ]


async def wave(
    client: httpx.AsyncClient, key: str, count: int, questions: int = 20
) -> list[httpx.Response]:
    """`count` chats at once, their answers in order."""
    return list(await asyncio.gather(*asks(client, key, count, questions)))


def statuses(responses: list[httpx.Response]) -> Counter[int]:
    """How many answers had each status."""
    return Counter(response.status_code for response in responses)


def cache_results(responses: list[httpx.Response]) -> Counter[str]:
    """How many answers had each X-Cache value."""
    return Counter(response.headers.get("x-cache", "-") for response in responses)


@pytest.mark.parametrize("key", [KEY, QUOTAED], ids=["cached", "quotaed"])
async def test_redis_pool_waits_for_a_connection_under_200_concurrent_chats(
    tmp_path: Path, redis_server: RedisProcess, caplog: pytest.LogCaptureFixture, key: str
) -> None:
    caplog.set_level(logging.INFO)
    # Far fewer connections than requests at once: every command must wait for one, not fail.
    settings = load_settings(tmp_path, redis_server.url)
    app = create_app(settings, backend=ScriptedBackend(model=MODEL, delay=0.001))
    async with app_client(app) as client:
        warm = await wave(client, key, CONCURRENT)
        assert statuses(warm) == {200: CONCURRENT}
        hot = await wave(client, key, CONCURRENT)
        assert statuses(hot) == {200: CONCURRENT}
        # The cache never had to fail open: every answer of the second wave came from Redis.
        assert cache_results(hot) == {"HIT": CONCURRENT}
    messages = [record.getMessage() for record in caplog.records]
    assert "response cache unavailable, serving uncached" not in messages
    assert "quota store unavailable, counting in this process" not in messages
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("key", [KEY, QUOTAED], ids=["cached", "quotaed"])
async def test_redis_killed_amid_200_concurrent_chats_is_bypass_then_hit(
    tmp_path: Path, redis_server: RedisProcess, caplog: pytest.LogCaptureFixture, key: str
) -> None:
    caplog.set_level(logging.INFO)
    settings = load_settings(tmp_path, redis_server.url)
    app = create_app(settings, backend=ScriptedBackend(model=MODEL, delay=0.002))
    async with app_client(app) as client:
        assert statuses(await wave(client, key, CONCURRENT)) == {200: CONCURRENT}
        # Redis dies while most of the next 200 are in flight (cache reads and writes, quotas).
        during = asks(client, key, CONCURRENT, questions=CONCURRENT)
        in_flight = 0
        for count, answer in enumerate(asyncio.as_completed(during), start=1):
            await answer
            if count == CONCURRENT // 4:
                in_flight = sum(not future.done() for future in during)
                await asyncio.get_running_loop().run_in_executor(None, redis_server.stop)
        assert in_flight > CONCURRENT // 2
        assert statuses([future.result() for future in during]) == {200: CONCURRENT}
        down = await wave(client, key, CONCURRENT)
        assert statuses(down) == {200: CONCURRENT}
        assert cache_results(down) == {"BYPASS": CONCURRENT}

        redis_server.start()
        await asyncio.sleep(1.1)  # the pause before Redis is tried again
        assert statuses(await wave(client, key, CONCURRENT)) == {200: CONCURRENT}
        back = await wave(client, key, CONCURRENT)
        assert statuses(back) == {200: CONCURRENT}
        assert cache_results(back) == {"HIT": CONCURRENT}
    messages = [record.getMessage() for record in caplog.records]
    assert messages.count("response cache unavailable, serving uncached") == 1
    assert "response cache available again" in messages
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def _close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def _reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(1)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST
    writer.close()


async def _garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while await reader.read(4096):
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")  # not Redis's protocol
        await writer.drain()
    writer.close()


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while await reader.read(4096):
        pass  # reads everything, answers nothing: every command times out
    writer.close()


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def faulty_redis(handler: Handler) -> AsyncIterator[str]:
    """A TCP server where Redis should be, that fails in one way; yields its URL."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.close()


@pytest.mark.parametrize(
    "handler",
    [_close_at_once, _reset, _garbage, _silent],
    ids=["close", "reset", "garbage", "hang"],
)
async def test_redis_that_fails_in_any_way_is_a_miss_and_quotas_in_process(
    tmp_path: Path, redis_server: RedisProcess, handler: Handler
) -> None:
    async with faulty_redis(handler) as url:
        # Batch jobs keep a working Redis: this is about the cache and the quotas.
        batch = BatchSettings(redis_url=SecretStr(redis_server.url))
        settings = load_settings(tmp_path, url, quota=QuotaSettings(rpm=60), batch=batch)
        app = create_app(settings, backend=ScriptedBackend(model=MODEL))
        async with app_client(app) as client:
            answers = await wave(client, KEY, 60, questions=5)
            assert statuses(answers) == {200: 60}
            assert cache_results(answers) == {"BYPASS": 60}
            # The limits stayed on, counted in this process: the minute's budget is spent. (A
            # minute boundary crossed during the wave lets more through: the sliding window
            # weighs the last minute's count down as seconds pass, by up to its whole budget
            # when a slow wave, as with a Redis that never answers, ends late in the minute.)
            for _ in range(61):
                refused = await wave(client, KEY, 1)
                if refused[0].status_code == 429:
                    break
            assert refused[0].status_code == 429
            assert int(refused[0].headers["retry-after"]) >= 1
