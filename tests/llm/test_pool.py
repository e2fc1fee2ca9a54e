"""The pool of Ollama servers: routing, failover, breaker, saturation, cancellation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack

import httpx
import pytest

from app.core.config import PoolSettings, Settings
from app.core.errors import Overloaded, UpstreamError, UpstreamUnavailable
from app.core.metrics import Metrics
from app.llm.base import ChatRequest, Chunk
from app.llm.pool import Breaker, Member, OllamaPool
from app.main import create_app
from tests.conftest import free_port
from tests.llm.ollama_script import Script, scripted_ollama
from tests.servers import serve_in_thread

FAST = PoolSettings(breaker_cooldown=0.3, health_interval=60)


def chat(model: str = "m:1b", content: str = "hi") -> ChatRequest:
    """A small chat request."""
    return ChatRequest.model_validate(
        {"model": model, "messages": [{"role": "user", "content": content}]}
    )


async def text(stream: AsyncIterator[Chunk]) -> str:
    """The whole answer."""
    return "".join([chunk.content async for chunk in stream])


@pytest.fixture
def servers() -> Iterator[tuple[list[Script], list[str]]]:
    """Two scripted Ollama servers, both serving `m:1b`."""
    scripts = [Script(models=["m:1b"], pieces=["one"]), Script(models=["m:1b"], pieces=["two"])]
    with ExitStack() as stack:
        urls = [stack.enter_context(serve_in_thread(scripted_ollama(s))) for s in scripts]
        yield scripts, urls


def breaker_of(member: Member) -> Breaker:
    """The member's breaker state, read afresh (it changes between awaits)."""
    return member.breaker


async def make_pool(
    urls: list[str],
    settings: PoolSettings = FAST,
    *,
    connect_timeout: float = 5.0,
    read_timeout: float = 300.0,
) -> OllamaPool:
    """A started pool over the URLs."""
    pool = OllamaPool(
        urls, settings, Metrics(), connect_timeout=connect_timeout, read_timeout=read_timeout
    )
    await pool.start()
    return pool


async def test_pool_routes_by_model(servers: tuple[list[Script], list[str]]) -> None:
    scripts, urls = servers
    scripts[0].models = ["a:1b"]
    scripts[1].models = ["b:1b"]
    pool = await make_pool(urls)
    try:
        assert await text(pool.chat(chat("b:1b"))) == "two"
        assert await text(pool.chat(chat("a:1b"))) == "one"
        assert sorted(m.name for m in await pool.list_models()) == ["a:1b", "b:1b"]
    finally:
        await pool.aclose()
    assert [b["model"] for b in scripts[0].bodies] == ["a:1b"]
    assert [b["model"] for b in scripts[1].bodies] == ["b:1b"]


async def test_pool_prefers_a_server_with_the_model_loaded(
    servers: tuple[list[Script], list[str]],
) -> None:
    scripts, urls = servers
    scripts[1].loaded = ["m:1b"]
    pool = await make_pool(urls)
    try:
        for _ in range(3):
            assert await text(pool.chat(chat())) == "two"
    finally:
        await pool.aclose()


async def test_pool_sends_to_the_least_busy(servers: tuple[list[Script], list[str]]) -> None:
    scripts, urls = servers
    for script in scripts:
        script.pieces = ["x", "y", "z"]
        script.delay = 0.2
    pool = await make_pool(urls)
    try:
        first = pool.chat(chat())
        await anext(first)  # one server is now busy with it
        await text(pool.chat(chat("m:1b", "other")))
        await first.aclose()
    finally:
        await pool.aclose()
    assert len(scripts[0].bodies) == len(scripts[1].bodies) == 1


@pytest.mark.parametrize("fault", ["refused", "503", "hang"])
async def test_pool_fails_over_before_the_first_byte(
    servers: tuple[list[Script], list[str]], fault: str
) -> None:
    scripts, urls = servers
    scripts[1].loaded = ["m:1b"]  # the faulty server is the one tried first
    bad = urls[1]
    if fault == "refused":
        bad = f"http://127.0.0.1:{free_port()}"
    elif fault == "503":
        scripts[1].status = 503
    else:
        scripts[1].delay = 5
    pool = await make_pool([bad, urls[0]], read_timeout=0.5, connect_timeout=0.5)
    pool.members[0].loaded = {"m:1b"}
    pool.members[0].models = dict(pool.members[1].models or {})
    try:
        assert await text(pool.chat(chat())) == "one"
    finally:
        await pool.aclose()


async def test_pool_never_retries_after_the_first_byte(
    servers: tuple[list[Script], list[str]],
) -> None:
    scripts, urls = servers
    scripts[0].pieces = ["a", "b", "c"]
    scripts[0].cut_after = 1
    scripts[0].loaded = ["m:1b"]
    pool = await make_pool(urls)
    stream = pool.chat(chat())
    try:
        assert (await anext(stream)).content == "a"
        with pytest.raises(UpstreamError):
            await anext(stream)
    finally:
        await pool.aclose()
    assert scripts[1].bodies == []


async def test_pool_breaker_opens_and_closes(servers: tuple[list[Script], list[str]]) -> None:
    scripts, urls = servers
    scripts[0].status = 500
    scripts[0].loaded = ["m:1b"]
    pool = await make_pool(urls, PoolSettings(breaker_failures=2, breaker_cooldown=0.3))
    sick = pool.members[0]
    try:
        for _ in range(2):
            with pytest.raises(UpstreamError):
                await text(pool.chat(chat()))
        assert breaker_of(sick) is Breaker.OPEN
        # While open, requests go to the healthy server without touching the sick one.
        for _ in range(3):
            assert await text(pool.chat(chat())) == "two"
        assert len(scripts[0].bodies) == 2
        scripts[0].status = 200
        await asyncio.sleep(0.35)  # the cool-down passes: one trial request is let through
        assert await text(pool.chat(chat())) == "one"
        assert breaker_of(sick) is Breaker.CLOSED
    finally:
        await pool.aclose()


async def test_pool_saturated_answers_at_once(servers: tuple[list[Script], list[str]]) -> None:
    scripts, urls = servers
    scripts[0].pieces = ["slow"] * 20
    scripts[0].delay = 0.1
    settings = PoolSettings(max_concurrency=1, max_queue=0, retry_after=3)
    pool = await make_pool(urls[:1], settings)
    try:
        busy = pool.chat(chat())
        await anext(busy)
        started = time.perf_counter()
        with pytest.raises(Overloaded) as caught:
            await text(pool.chat(chat("m:1b", "another")))
        assert time.perf_counter() - started < 0.5
        assert caught.value.retry_after == 3
        await busy.aclose()
    finally:
        await pool.aclose()


async def test_pool_queue_waits_for_a_slot(servers: tuple[list[Script], list[str]]) -> None:
    scripts, urls = servers
    scripts[0].pieces = ["p"] * 3
    scripts[0].delay = 0.05
    pool = await make_pool(urls[:1], PoolSettings(max_concurrency=1, max_queue=2))
    try:
        answers = await asyncio.gather(*(text(pool.chat(chat("m:1b", str(i)))) for i in range(3)))
    finally:
        await pool.aclose()
    assert answers == ["ppp"] * 3


async def test_pool_all_servers_down_is_unavailable() -> None:
    urls = [f"http://127.0.0.1:{free_port()}" for _ in range(2)]
    pool = await make_pool(urls, connect_timeout=0.3)
    try:
        with pytest.raises(UpstreamUnavailable):
            await pool.check()
        with pytest.raises(UpstreamUnavailable):
            await pool.list_models()
    finally:
        await pool.aclose()


async def test_gateway_closes_the_upstream_when_the_client_leaves(
    servers: tuple[list[Script], list[str]],
) -> None:
    scripts, urls = servers
    scripts[0].pieces = ["tick"] * 100
    scripts[0].delay = 0.05
    settings = Settings(_env_file=None, llm_backend="ollama", ollama_urls=urls[0])
    body = {"model": "m:1b", "messages": [{"role": "user", "content": "count"}]}
    with serve_in_thread(create_app(settings)) as gateway:
        async with (
            httpx.AsyncClient(base_url=gateway) as client,
            client.stream("POST", "/api/chat", json=body) as response,
        ):
            lines = response.aiter_lines()
            await anext(lines)
            await anext(lines)
        left = time.perf_counter()
        while not scripts[0].closed_early and time.perf_counter() - left < 5:
            await asyncio.sleep(0.02)
        closed_after = time.perf_counter() - left
    assert scripts[0].closed_early == 1
    assert closed_after < 1.0


@pytest.fixture(scope="module")
def real_upstreams() -> Iterator[list[str]]:
    """Two Llamarada instances in embedded mode: real Ollama-protocol servers, real model."""
    with ExitStack() as stack:
        yield [
            stack.enter_context(serve_in_thread(create_app(Settings(_env_file=None, cache_ttl=0))))
            for _ in range(2)
        ]


async def test_pool_spreads_over_real_upstreams_and_survives_one_down(
    real_upstreams: list[str],
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    pool = await make_pool([*real_upstreams, dead], connect_timeout=0.5)
    try:
        requests = [
            ChatRequest.model_validate(
                {
                    "model": "smollm2:135m",
                    "messages": [{"role": "user", "content": f"Say {word}."}],
                    "options": {"num_predict": 6, "temperature": 0},
                }
            )
            for word in ("red", "green", "blue", "gold")
        ]
        answers = await asyncio.gather(*(text(pool.chat(r)) for r in requests))
        assert all(answers)
        served = {m.url: m for m in pool.members}
        assert served[dead].breaker is not Breaker.CLOSED or served[dead].models is None
        embeddings = await pool.embed("smollm2:135m", ["hello"])
        assert len(embeddings.vectors[0]) > 100
        assert [e["name"] for e in await pool.running()] == ["smollm2:135m"] * 2
    finally:
        await pool.aclose()


async def test_pool_health_checks_find_a_server_that_comes_up() -> None:
    port = free_port()
    pool = await make_pool(
        [f"http://127.0.0.1:{port}"],
        PoolSettings(health_interval=0.2, breaker_failures=1, breaker_cooldown=0.2),
        connect_timeout=0.3,
    )
    member = pool.members[0]
    try:
        assert member.models is None
        with pytest.raises(UpstreamUnavailable):
            await pool.check()
        with serve_in_thread(scripted_ollama(Script(models=["m:1b"])), port=port):
            for _ in range(50):  # the background checks notice it without any request
                if member.models is not None and member.breaker is Breaker.CLOSED:
                    break
                await asyncio.sleep(0.1)
            assert member.models is not None
            assert "m:1b" in member.models
            await pool.check()
            assert await text(pool.chat(chat())) == "Hi there!"
    finally:
        await pool.aclose()
