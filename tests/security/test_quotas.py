"""Quotas: requests and tokens per minute per key, 429 with Retry-After, in Redis or in process."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from pydantic import SecretStr

from app.core.auth import Principal
from app.core.config import QuotaSettings
from app.core.errors import QuotaExceeded
from app.core.quota import WINDOW, Quotas, wait_seconds
from app.main import create_app
from tests.conftest import RedisProcess, app_client
from tests.fakes import ScriptedBackend
from tests.security.conftest import ALICE, BOB, KEYS, MODEL, auth, secured

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": False}


class Clock:
    """A settable clock for the sliding window."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("last", "this", "elapsed", "limit", "cost", "expected"),
    [
        (0, 0, 0, 10, 1, 0),
        (0, 9, 30, 10, 1, 0),
        (0, 10, 30, 10, 1, 30 + 60 * (1 - 9 / 10)),  # next window, then this one fades
        (10, 0, 3, 10, 1, 3),  # fits once 10 * (1 - t / 60) <= 9: at t = 6
        (20, 0, 0, 10, 1, 60 * (1 - 9 / 20)),
        (0, 0, 0, 10, 11, 60),  # never fits: a minute, not forever
    ],
)
def test_wait_seconds_is_when_the_sliding_window_has_room(
    last: int, this: int, elapsed: float, limit: int, cost: int, expected: float
) -> None:
    assert wait_seconds(last, this, elapsed, limit, cost) == pytest.approx(max(expected, 0))


async def test_quotas_slide_instead_of_resetting_at_the_minute() -> None:
    clock = Clock(WINDOW * 1000)
    quotas = Quotas(QuotaSettings(rpm=10), clock=clock)
    caller = Principal("alice")
    for _ in range(10):
        await quotas.admit(caller, generates=True)
    with pytest.raises(QuotaExceeded) as refused:
        await quotas.admit(caller, generates=True)
    assert (refused.value.retry_after or 0) >= 1
    clock.now += 75  # 15 s into the next window, the last one weighs 75 %: 7.5 of 10 used
    for _ in range(2):
        await quotas.admit(caller, generates=True)
    with pytest.raises(QuotaExceeded):
        await quotas.admit(caller, generates=True)
    clock.now += 60  # and a window later, those 2 weigh 1.5
    for _ in range(8):
        await quotas.admit(caller, generates=True)
    with pytest.raises(QuotaExceeded):
        await quotas.admit(caller, generates=True)
    await quotas.admit(Principal("bob"), generates=True)  # one key's use is not another's


async def test_quotas_requests_per_minute_give_429_with_retry_after(tmp_path: Path) -> None:
    settings = secured(tmp_path, quota=QuotaSettings(rpm=3))
    async with app_client(create_app(settings, backend=ScriptedBackend(model=MODEL))) as client:
        for _ in range(3):
            assert (await client.post("/api/chat", json=CHAT, headers=auth(ALICE))).is_success
        refused = await client.post("/api/chat", json=CHAT, headers=auth(ALICE))
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 2 * 60
        assert refused.json()["error"]["type"] == "rate_limit_error"
        openai = await client.get("/v1/models", headers=auth(ALICE))
        assert openai.status_code == 429
        assert openai.json()["error"]["code"] == "rate_limit_exceeded"
        assert (await client.post("/api/chat", json=CHAT, headers=auth(BOB))).is_success
        assert (await client.get("/health/ready")).status_code == 200  # never counted


async def test_quotas_per_key_overrides_the_default(tmp_path: Path) -> None:
    keys = KEYS.replace(f"bob:{BOB}", f"bob:{BOB};rpm=1")
    settings = secured(tmp_path, api_keys=SecretStr(keys), quota=QuotaSettings(rpm=100))
    async with app_client(create_app(settings, backend=ScriptedBackend(model=MODEL))) as client:
        assert (await client.get("/api/tags", headers=auth(BOB))).is_success
        assert (await client.get("/api/tags", headers=auth(BOB))).status_code == 429
        for _ in range(5):
            assert (await client.get("/api/tags", headers=auth(ALICE))).is_success


async def test_quotas_tokens_are_counted_after_the_answer(tmp_path: Path) -> None:
    # The scripted answer costs 3 prompt + 4 answer tokens; 10 per minute allows two answers.
    settings = secured(tmp_path, quota=QuotaSettings(tpm=10))
    backend = ScriptedBackend(model=MODEL)
    async with app_client(create_app(settings, backend=backend)) as client:
        assert (await client.post("/api/chat", json=CHAT, headers=auth(ALICE))).is_success
        second = {**CHAT, "messages": [{"role": "user", "content": "again"}], "stream": True}
        streamed = await client.post("/api/chat", json=second, headers=auth(ALICE))
        assert streamed.is_success
        refused = await client.post("/api/chat", json=CHAT, headers=auth(ALICE))
        assert refused.status_code == 429
        assert "tokens per minute" in refused.json()["error"]["message"]
        assert (await client.get("/api/tags", headers=auth(ALICE))).is_success  # reading is free
        bobs = {**CHAT, "messages": [{"role": "user", "content": "bob's"}]}
        assert (await client.post("/api/chat", json=bobs, headers=auth(BOB))).is_success
    assert backend.calls == 3


async def test_quotas_cached_answers_cost_no_tokens(tmp_path: Path) -> None:
    settings = secured(tmp_path, quota=QuotaSettings(tpm=10))
    async with app_client(create_app(settings, backend=ScriptedBackend(model=MODEL))) as client:
        for _ in range(5):
            response = await client.post("/api/chat", json=CHAT, headers=auth(ALICE))
            assert response.is_success, response.text
        assert response.headers["x-cache"] == "HIT"


async def test_quotas_are_shared_through_redis(tmp_path: Path, redis_server: RedisProcess) -> None:
    settings = secured(
        tmp_path, redis_url=SecretStr(redis_server.url), quota=QuotaSettings(rpm=4), cache_ttl=0
    )
    first = create_app(settings, backend=ScriptedBackend(model=MODEL))
    second = create_app(settings, backend=ScriptedBackend(model=MODEL))
    async with app_client(first) as one, app_client(second) as two:
        for client in (one, two, one, two):
            assert (await client.get("/api/tags", headers=auth(ALICE))).is_success
        assert (await one.get("/api/tags", headers=auth(ALICE))).status_code == 429
        assert (await two.get("/api/tags", headers=auth(ALICE))).status_code == 429


async def test_quotas_stay_on_when_redis_is_down(
    tmp_path: Path, redis_server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = secured(
        tmp_path, redis_url=SecretStr(redis_server.url), quota=QuotaSettings(rpm=3), cache_ttl=0
    )
    async with app_client(create_app(settings, backend=ScriptedBackend(model=MODEL))) as client:
        assert (await client.get("/api/tags", headers=auth(ALICE))).is_success
        redis_server.stop()
        results = await asyncio.gather(
            *(client.get("/api/tags", headers=auth(ALICE)) for _ in range(6))
        )
        statuses = sorted(r.status_code for r in results)
        # Counting moved into this process: its own 3 per minute, not unlimited.
        assert statuses == [200, 200, 200, 429, 429, 429]
        redis_server.start()
        await asyncio.sleep(1.1)  # the pause before Redis is tried again
        # Back on Redis, which lost its counts with the restart: a fresh 3 (the outage never
        # gave more than the limit per process).
        back = [await client.get("/api/tags", headers=auth(ALICE)) for _ in range(4)]
        assert [r.status_code for r in back] == [200, 200, 200, 429]
    outages = [r for r in caplog.records if r.getMessage().startswith("quota store unavailable")]
    assert len(outages) == 1
    assert any(r.getMessage() == "quota store available again" for r in caplog.records)
