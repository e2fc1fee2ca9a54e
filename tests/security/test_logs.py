"""Logs: keys, `Authorization` and secrets never reach them; prompts only at DEBUG."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from app.core.logging import JsonFormatter
from app.main import create_app
from tests.conftest import app_client, free_port
from tests.fakes import ScriptedBackend
from tests.security.conftest import ADMIN, ALICE, BOB, MODEL, auth, secured

PROMPT = "my secret diagnosis is 4417"
REDIS_PASSWORD = "redis-pass-9d8c7b6a"


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every record the server wrote (not the test's HTTP client) as its JSON line on stdout."""
    formatter = JsonFormatter()
    records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    return "\n".join(formatter.format(record) for record in records)


async def exercise(client: httpx.AsyncClient) -> None:
    """Requests with good, bad and missing keys, a prompt, and an error."""
    chat = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}], "stream": False}
    assert (await client.post("/api/chat", json=chat, headers=auth(ALICE))).status_code == 200
    assert (
        await client.post("/api/chat", json=chat, headers={"X-API-Key": BOB})
    ).status_code == 200
    wrong = {"Authorization": f"Bearer {ADMIN}-but-wrong"}
    assert (await client.post("/api/chat", json=chat, headers=wrong)).status_code == 401
    stream = {**chat, "stream": True}
    assert (await client.post("/v1/chat/completions", json=stream, headers=auth(ADMIN))).is_success
    bad = {**chat, "model": "nope"}
    assert (await client.post("/api/chat", json=bad, headers=auth(ALICE))).status_code == 404
    assert (await client.get("/api/tags?api_key=" + ALICE, headers=auth(ALICE))).is_success


async def test_logs_never_hold_keys_or_secrets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # An unreachable Redis with a password in its URL: its outage is logged.
    redis_url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{free_port()}/0"
    settings = secured(tmp_path, redis_url=SecretStr(redis_url))
    async with app_client(create_app(settings, backend=ScriptedBackend(model=MODEL))) as client:
        await exercise(client)
    text = logged(caplog)
    entries = [json.loads(line) for line in text.splitlines()]
    requests = [entry for entry in entries if entry["message"] == "request"]
    assert requests
    assert "alice" in {entry["key"] for entry in requests}  # who called, by name
    for secret in (ALICE, BOB, ADMIN, REDIS_PASSWORD, "Bearer"):
        assert secret not in text, secret
    assert "response cache unavailable" in text  # the outage was logged, without the URL


async def test_logs_hold_prompts_only_at_debug(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    app = create_app(secured(tmp_path), backend=ScriptedBackend(model=MODEL))
    async with app_client(app) as client:
        await exercise(client)
    assert PROMPT not in logged(caplog)
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    async with app_client(app) as client:
        chat = {"model": MODEL, "messages": [{"role": "user", "content": PROMPT}]}
        await client.post("/api/chat", json={**chat, "stream": False}, headers=auth(ALICE))
    debug = [r for r in caplog.records if r.getMessage() == "completion request"]
    assert debug
    assert all(record.levelno == logging.DEBUG for record in debug)
    assert PROMPT in logged(caplog)
