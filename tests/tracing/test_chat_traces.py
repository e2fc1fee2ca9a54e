"""Traces of chats through a pool of scripted Ollama servers, sent as real OTLP/HTTP protobuf."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from pydantic import SecretStr

from app.core import tracing
from app.core.cache import KEY_PREFIX
from app.core.config import PoolSettings, Settings
from app.core.logging import JsonFormatter
from app.main import create_app
from tests.conftest import RedisProcess, app_client, free_port
from tests.llm.ollama_script import Script, scripted_ollama
from tests.otlp import OtlpReceiver, Received
from tests.servers import recording, serve_in_thread

MODEL = "m:1b"
KEY = "sk-trace-secret-0123456789"
PROMPT = "the secret recipe of grandmother"
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "stream": False}


@contextmanager
def upstream(script: Script, seen: list[dict[str, str]]) -> Iterator[str]:
    """A scripted Ollama server on real HTTP that records what it was sent."""
    with serve_in_thread(recording(scripted_ollama(script), seen)) as url:
        yield url


def pool_settings(tmp_path: Path, urls: list[str], **extra: Any) -> Settings:
    """An API over a pool of Ollama servers, with one API key."""
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        llm_backend="ollama",
        ollama_urls=urls,
        default_model=MODEL,
        api_keys=SecretStr(f"tester:{KEY}"),
        **extra,
    )


async def stored(server: RedisProcess) -> None:
    """Wait until the response cache holds an entry."""
    client = aioredis.from_url(server.url)
    try:
        for _ in range(100):
            if await client.keys(KEY_PREFIX + "*"):
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the answer never reached the cache")
    finally:
        await client.aclose()


def every_value(spans: list[Received]) -> str:
    """Every name, attribute and event of the spans, as one text to search."""
    return json.dumps([[s.name, s.attributes, s.events] for s in spans], default=str)


@contextmanager
def json_log() -> Iterator[io.StringIO]:
    """The access log's JSON lines, as `llamarada serve` writes them."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("app.access")
    access.addHandler(handler)
    level = access.level
    access.setLevel(logging.INFO)
    try:
        yield out
    finally:
        access.removeHandler(handler)
        access.setLevel(level)


async def test_chat_trace_continues_the_clients_and_reaches_the_upstream(
    tmp_path: Path, otlp: OtlpReceiver
) -> None:
    seen: list[dict[str, str]] = []
    with upstream(Script(models=[MODEL], pieces=["Hi", " there"]), seen) as url, json_log() as log:
        app = create_app(pool_settings(tmp_path, [url]))
        async with app_client(app) as client:
            headers = {"traceparent": TRACEPARENT, "Authorization": f"Bearer {KEY}"}
            response = await client.post("/api/chat", json=CHAT, headers=headers)
            assert response.status_code == 200, response.text
    # The lifespan's end flushed every span to the receiver.
    assert set(otlp.paths) == {"/v1/traces"}
    http = otlp.tree("POST /api/chat")
    assert (http.kind, http.trace_id, http.parent_id) == ("SERVER", CLIENT_TRACE, CLIENT_SPAN)
    assert http.service == "llamarada-test"
    assert http.attributes["http.route"] == "/api/chat"
    assert http.attributes["http.response.status_code"] == 200
    chat = http.child(f"chat {MODEL}")
    assert chat.kind == "CLIENT"
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert chat.attributes["gen_ai.request.model"] == MODEL
    assert chat.attributes["gen_ai.provider.name"] == "ollama"
    assert chat.attributes["gen_ai.usage.input_tokens"] == 4
    assert chat.attributes["gen_ai.usage.output_tokens"] == 2
    assert chat.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert chat.attributes["llamarada.cache"] == "MISS"
    assert [name for name, _ in chat.events] == ["gen_ai.first_token"]
    # The model call is the upstream call: the server that answered is on it.
    host, port = url.removeprefix("http://").split(":")
    assert chat.attributes["server.address"] == host
    assert chat.attributes["server.port"] == int(port)
    assert chat.attributes["llamarada.upstream.server"] == url
    # Its only child is the cache lookup: a free slot, so no queue wait.
    assert [c.name for c in chat.children] == ["llamarada.cache.lookup"]
    assert chat.child("llamarada.cache.lookup").attributes["llamarada.cache.result"] == "miss"
    # The upstream got the trace, as the child of the model call's span.
    [sent] = [request for request in seen if request["path"] == "/api/chat"]
    assert sent["traceparent"] == f"00-{CLIENT_TRACE}-{chat.span_id}-01"
    # Neither the prompt nor the key is in any span; the access log line carries the ids.
    everything = every_value(otlp.spans)
    assert PROMPT not in everything
    assert KEY not in everything
    [line] = [json.loads(text) for text in log.getvalue().splitlines()]
    assert (line["trace_id"], line["span_id"]) == (CLIENT_TRACE, http.span_id)


async def test_cached_chat_is_a_hit_with_no_upstream_call(
    tmp_path: Path, otlp: OtlpReceiver, redis_server: RedisProcess
) -> None:
    seen: list[dict[str, str]] = []
    with upstream(Script(models=[MODEL]), seen) as url:
        settings = pool_settings(tmp_path, [url], redis_url=SecretStr(redis_server.url))
        async with app_client(create_app(settings)) as client:
            auth = {"Authorization": f"Bearer {KEY}"}
            first = await client.post("/api/chat", json=CHAT, headers=auth)
            await stored(redis_server)  # the answer is written once its stream has ended
            second = await client.post("/api/chat", json=CHAT, headers=auth)
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    missed, hit = sorted(
        (root for root in otlp.roots() if root.name == "POST /api/chat"),
        key=lambda root: root.child(f"chat {MODEL}").attributes["llamarada.cache"] != "MISS",
    )
    assert missed.trace_id != hit.trace_id  # one trace per request
    chat = hit.child(f"chat {MODEL}")
    assert chat.attributes["llamarada.cache"] == "HIT"
    lookup = chat.child("llamarada.cache.lookup")
    assert lookup.attributes == {"llamarada.cache.kind": "exact", "llamarada.cache.result": "hit"}
    assert [c.name for c in chat.children] == ["llamarada.cache.lookup"]
    assert "server.address" not in chat.attributes  # no upstream call
    assert chat.attributes["gen_ai.usage.output_tokens"] == 3
    assert missed.child(f"chat {MODEL}").attributes["llamarada.upstream.server"] == url


async def test_failover_is_an_event_on_the_model_call_span(
    tmp_path: Path, otlp: OtlpReceiver
) -> None:
    seen: list[dict[str, str]] = []
    # The broken server has the model loaded, so the pool tries it first; it answers 503.
    broken = Script(models=[MODEL], loaded=[MODEL], status=503)
    with upstream(broken, seen) as bad, upstream(Script(models=[MODEL]), seen) as good:
        settings = pool_settings(tmp_path, [bad, good], cache_ttl=0)
        async with app_client(create_app(settings)) as client:
            auth = {"Authorization": f"Bearer {KEY}"}
            response = await client.post("/api/chat", json=CHAT, headers=auth)
    assert response.status_code == 200, response.text
    assert response.json()["message"]["content"] == "Hi there!"
    chat = otlp.tree("POST /api/chat").child(f"chat {MODEL}")
    assert chat.attributes["llamarada.cache"] == "BYPASS"
    assert chat.attributes["llamarada.upstream.server"] == good
    assert chat.events == [
        ("failover", {"llamarada.upstream.server": bad, "error.type": "upstream_unavailable"}),
        ("gen_ai.first_token", {}),
    ]
    # Each server was sent the trace, as the model call's child.
    sent = [request for request in seen if request["path"] == "/api/chat"]
    assert len(sent) == 2
    assert {request["traceparent"].split("-")[2] for request in sent} == {chat.span_id}


async def test_a_request_waiting_for_a_slot_has_a_queue_wait_span(
    tmp_path: Path, otlp: OtlpReceiver
) -> None:
    with upstream(Script(models=[MODEL], delay=0.3), []) as url:
        pool = PoolSettings(max_concurrency=1, health_interval=60)
        settings = pool_settings(tmp_path, [url], cache_ttl=0, pool=pool)
        async with app_client(create_app(settings)) as client:
            auth = {"Authorization": f"Bearer {KEY}"}
            chats = [{**CHAT, "messages": [{"role": "user", "content": q}]} for q in "ab"]
            answers = await asyncio.gather(
                *(client.post("/api/chat", json=chat, headers=auth) for chat in chats)
            )
    assert [answer.status_code for answer in answers] == [200, 200]
    calls = [root.child(f"chat {MODEL}") for root in otlp.roots() if root.name == "POST /api/chat"]
    waits = sorted([c.name for c in call.children] for call in calls)
    assert waits == [[], ["llamarada.queue.wait"]]  # the second waited for the first


async def test_prompts_and_answers_are_recorded_only_when_the_setting_says_so(
    tmp_path: Path, otlp: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(tracing.CAPTURE_CONTENT_ENV, "true")
    with upstream(Script(models=[MODEL], pieces=["Hi", " there"]), []) as url:
        async with app_client(create_app(pool_settings(tmp_path, [url]))) as client:
            auth = {"Authorization": f"Bearer {KEY}"}
            assert (await client.post("/api/chat", json=CHAT, headers=auth)).status_code == 200
    chat = otlp.tree("POST /api/chat").child(f"chat {MODEL}")
    assert json.loads(chat.attributes["gen_ai.input.messages"]) == [
        {"role": "user", "content": PROMPT}
    ]
    assert json.loads(chat.attributes["gen_ai.output.messages"]) == [
        {"role": "assistant", "content": "Hi there"}
    ]
    assert KEY not in every_value(otlp.spans)


async def test_sampler_from_the_environment_is_obeyed(
    tmp_path: Path, otlp: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    seen: list[dict[str, str]] = []
    with upstream(Script(models=[MODEL]), seen) as url:
        async with app_client(create_app(pool_settings(tmp_path, [url]))) as client:
            auth = {"Authorization": f"Bearer {KEY}"}
            assert (await client.post("/api/chat", json=CHAT, headers=auth)).status_code == 200
    assert otlp.spans == []
    # Not sampled, still propagated: the upstream learns the trace and that it was dropped.
    [sent] = [request for request in seen if request["path"] == "/api/chat"]
    assert int(sent["traceparent"].split("-")[3], 16) & 1 == 0  # the "sampled" flag is off


async def test_tracing_is_off_without_the_otel_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    seen: list[dict[str, str]] = []
    with upstream(Script(models=[MODEL]), seen) as url, json_log() as log:
        app = create_app(pool_settings(tmp_path, [url], cache_ttl=0))
        async with app_client(app) as client:
            assert not tracing.enabled()
            headers = {"traceparent": TRACEPARENT, "Authorization": f"Bearer {KEY}"}
            assert (await client.post("/api/chat", json=CHAT, headers=headers)).status_code == 200
    # Nothing made, nothing sent upstream, nothing in the log.
    assert tracing.span("x") is tracing.span("y")  # the one shared no-op
    [sent] = [request for request in seen if request["path"] == "/api/chat"]
    assert "traceparent" not in sent
    [line] = [json.loads(text) for text in log.getvalue().splitlines()]
    assert "trace_id" not in line
    assert not tracing.tracing_wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "", "OTEL_SDK_DISABLED": ""})
    assert not tracing.tracing_wanted(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"}
    )
    assert not tracing.tracing_wanted(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_TRACES_EXPORTER": "none"}
    )
    assert tracing.tracing_wanted({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://x"})


async def test_a_failed_request_is_an_error_span_and_its_access_line_carries_its_trace(
    tmp_path: Path, otlp: OtlpReceiver
) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with json_log() as log:
        async with app_client(create_app(pool_settings(tmp_path, [down]))) as client:
            auth = {"Authorization": f"Bearer {KEY}"}
            failed = await client.post("/api/chat", json=CHAT, headers=auth)
            missing = await client.get("/no/such/route", headers=auth)
    assert (failed.status_code, missing.status_code) == (503, 404)
    http = otlp.tree("POST /api/chat")
    assert http.attributes["http.response.status_code"] == 503
    assert http.error  # a 5xx answer is a failed server span
    # A request no route took keeps its method as its name, and a 4xx is no server error.
    [unrouted] = [span for span in otlp.spans if span.name == "GET"]
    assert unrouted.attributes["http.response.status_code"] == 404
    assert "http.route" not in unrouted.attributes
    assert not unrouted.error
    lines = [json.loads(text) for text in log.getvalue().splitlines()]
    assert [(line["path"], line["status"]) for line in lines] == [
        ("/api/chat", 503),
        ("/no/such/route", 404),
    ]
    assert [line["trace_id"] for line in lines] == [http.trace_id, unrouted.trace_id]
