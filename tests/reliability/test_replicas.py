"""Two `llamarada serve` replicas sharing one Redis hold one upstream's cap between them.

A paced Ollama-protocol upstream counts the answers it streams at once. Forty concurrent
streamed chats, spread over both replicas, never make it stream more than the cap; each client
gets its whole answer or a 503 with Retry-After. Then a replica holding every slot is
SIGKILLed: its leases lapse within the lease time and the other replica's waiting request runs.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from app.llm.slots import slot_key
from tests.conftest import RedisProcess
from tests.reliability.replicas import Outcome, Pace, Replica, paced_ollama, replicas, stream_chat
from tests.servers import serve_in_thread

CAP = 2
QUEUE = 4
LEASE = 3.0  # seconds
CLIENTS = 40
ARRIVAL = 0.05  # seconds between two clients' arrivals


@pytest.fixture
def pace() -> Pace:
    """The upstream's pace and what it counted."""
    return Pace(pieces=5, delay=0.1)


@pytest.fixture
def upstream(pace: Pace) -> Iterator[str]:
    """The paced upstream over real HTTP."""
    with serve_in_thread(paced_ollama(pace)) as url:
        yield url


def live_leases(client: redis.Redis, upstream: str, pid: int) -> int:
    """Leases on the upstream held by process `pid` that have not expired (Redis' clock)."""
    seconds, micros = client.time()
    now_ms = seconds * 1000 + micros // 1000
    members: list[bytes] = client.zrangebyscore(slot_key(upstream), f"({now_ms}", "+inf")  # type: ignore[assignment]
    return sum(1 for member in members if f":{pid}:" in member.decode())


async def wait_until(check: object, timeout: float) -> None:
    """Poll a zero-argument callable until it is truthy."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.mark.timeout(300)
async def test_replicas_hold_one_cap_and_free_a_killed_replicas_slots(
    tmp_path: Path, redis_server: RedisProcess, upstream: str, pace: Pace
) -> None:
    settings = {
        "LLAMARADA_REDIS_URL": redis_server.url,
        "LLAMARADA_POOL__MAX_CONCURRENCY": str(CAP),
        "LLAMARADA_POOL__MAX_QUEUE": str(QUEUE),
        "LLAMARADA_POOL__LEASE_SECONDS": str(LEASE),
        "LLAMARADA_LOG_LEVEL": "WARNING",
    }
    with replicas(tmp_path, 2, upstream, **settings) as (first, second):
        limits = httpx.Limits(max_connections=CLIENTS * 2)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            await load_wave(client, [first, second], pace)
            await kill_one_holding_every_slot(client, first, second, redis_server, upstream, pace)


async def load_wave(client: httpx.AsyncClient, both: list[Replica], pace: Pace) -> None:
    """Forty streamed chats, alternating replicas, arriving over two seconds (so both replicas
    get slots as they free): the upstream never sees over CAP."""

    async def client_number(n: int) -> Outcome:
        await asyncio.sleep(n * ARRIVAL)
        return await stream_chat(client, both[n % 2].url, n)

    outcomes = await asyncio.gather(*(client_number(n) for n in range(CLIENTS)))
    assert pace.peak == CAP, f"the upstream saw {pace.peak} answers at once"
    by_replica: list[list[int]] = [[], []]
    for number, outcome in enumerate(outcomes):
        by_replica[number % 2].append(outcome.status)
        assert outcome.status in (200, 503), outcome
        if outcome.status == 200:
            assert outcome.done, outcome
            assert outcome.pieces == pace.pieces, outcome
        else:
            assert outcome.retry_after is not None
            assert int(outcome.retry_after) >= 1
    answered = [statuses.count(200) for statuses in by_replica]
    # Both replicas took part, so a per-process cap would have let 2 x CAP through at once.
    assert all(count >= 1 for count in answered), by_replica
    # The running answers and the shared queue's waiters, at least, were served.
    assert sum(answered) >= CAP + 1
    assert pace.served == sum(answered)
    print(
        f"\nwave: {sum(answered)} answered {answered}, {CLIENTS - sum(answered)} got 503, "
        f"upstream peak {pace.peak}"
    )


async def kill_one_holding_every_slot(
    client: httpx.AsyncClient,
    doomed: Replica,
    survivor: Replica,
    redis_server: RedisProcess,
    upstream: str,
    pace: Pace,
) -> None:
    """SIGKILL a replica mid-answer holding every slot: its leases lapse within LEASE seconds,
    and a request waiting on the other replica then gets its answer."""
    pace.pieces, pace.delay = 100, 0.1  # answers that outlive the kill
    redis_client = redis.Redis(port=redis_server.port)
    pid = doomed.process.pid
    held = [asyncio.create_task(stream_chat(client, doomed.url, 1000 + n)) for n in range(CAP)]
    await wait_until(lambda: live_leases(redis_client, upstream, pid) == CAP, 30)
    await wait_until(lambda: pace.now == CAP, 30)

    pace.pieces, pace.delay = 3, 0.05
    doomed.process.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    waiting = asyncio.create_task(stream_chat(client, survivor.url, 2000))
    await wait_until(lambda: live_leases(redis_client, upstream, pid) == 0, LEASE + 5)
    freed_after = time.monotonic() - killed_at
    outcome = await asyncio.wait_for(waiting, 30)
    answered_after = time.monotonic() - killed_at
    for task in held:  # the killed replica's clients lost their connection
        with pytest.raises(httpx.TransportError):
            await task
    redis_client.close()

    assert freed_after <= LEASE + 0.5, f"the killed replica's slots stayed {freed_after:.2f} s"
    assert outcome.status == 200, outcome
    assert outcome.done, outcome
    assert pace.peak == CAP
    print(
        f"killed replica's slots free after {freed_after:.2f} s (lease {LEASE:g} s); "
        f"the waiting request answered {answered_after:.2f} s after the kill"
    )
