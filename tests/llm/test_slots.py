"""Cluster-wide slots on a real Redis: a shared cap, leases that lapse, per-process fallback."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import pytest

from app.llm.slots import ClusterSlots
from tests.conftest import RedisProcess

SERVER = "http://upstream:11434"


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> bool:
    """Whether `check` comes true within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def slots(url: str | None, lease: float = 1.0, cap: int = 2, queue: int = 1) -> ClusterSlots:
    """Slots with a short lease."""
    return ClusterSlots(url, max_concurrency=cap, max_queue=queue, lease_seconds=lease)


async def test_slots_cap_holds_across_processes_sharing_redis(redis_server: RedisProcess) -> None:
    one, two = slots(redis_server.url), slots(redis_server.url)
    try:
        assert await one.take(SERVER)
        assert await two.take(SERVER)
        assert not await one.take(SERVER)  # two held, one each: the cap is shared
        assert await one.take("http://other:11434")  # each server has its own cap
        assert await two.enter_queue(SERVER)
        assert not await one.enter_queue(SERVER)  # the queue of one is shared too
        two.leave_queue(SERVER)
        two.release(SERVER)
        assert await eventually(lambda: one.take(SERVER))  # the release lands in the background
    finally:
        await one.aclose()
        await two.aclose()


async def test_slots_unrefreshed_leases_lapse_and_refreshed_ones_stay(
    redis_server: RedisProcess,
) -> None:
    crashed, alive, other = (slots(redis_server.url, lease=1.5) for _ in range(3))
    await alive.start()  # refreshes its leases; `crashed` never does, as a dead process
    try:
        assert await crashed.take(SERVER)
        assert await alive.take(SERVER)
        assert not await other.take(SERVER)
        await asyncio.sleep(2.0)  # past the lease
        assert await other.take(SERVER)  # the crashed one's slot came free
        assert not await other.take(SERVER)  # the live one's did not
    finally:
        for each in (crashed, alive, other):
            await each.aclose()


async def test_slots_fall_back_to_per_process_limits_when_redis_is_down(
    redis_server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    shared = slots(redis_server.url, cap=1)
    try:
        assert await shared.take(SERVER)
        assert not await shared.take(SERVER)
        redis_server.stop()
        with caplog.at_level(logging.WARNING, logger="app.llm.slots"):
            for _ in range(5):  # granted: the pool's own per-process count is the limit now
                assert await shared.take(SERVER)
                assert await shared.enter_queue(SERVER)
        warnings = [r for r in caplog.records if "Redis is unreachable" in r.getMessage()]
        assert len(warnings) == 1  # logged once
        for _ in range(6):
            shared.release(SERVER)
    finally:
        await shared.aclose()


async def test_slots_without_redis_grant_everything() -> None:
    local = slots(None, cap=1)
    assert not local.shared
    assert await local.take(SERVER)
    assert await local.take(SERVER)  # the pool's own count applies the cap
    assert await local.enter_queue(SERVER)
    local.release(SERVER)
    local.release(SERVER)
    await local.aclose()
