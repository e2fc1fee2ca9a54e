"""`LLAMARADA_CACHE_SCOPE`: shared cache entries, or each key's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.main import create_app
from tests.conftest import app_client
from tests.fakes import ScriptedBackend
from tests.security.conftest import ALICE, BOB, MODEL, auth, secured

BODY = {"model": MODEL, "messages": [{"role": "user", "content": "same question"}]}


@pytest.mark.parametrize(("scope", "bob_sees", "calls"), [("shared", "HIT", 1), ("key", "MISS", 2)])
async def test_cache_scope_decides_whether_keys_share_answers(
    tmp_path: Path, scope: str, bob_sees: str, calls: int
) -> None:
    backend = ScriptedBackend(model=MODEL)
    app = create_app(secured(tmp_path, cache_scope=scope), backend=backend)
    async with app_client(app) as client:
        first = await client.post("/api/chat", json=BODY, headers=auth(ALICE))
        again = await client.post("/api/chat", json=BODY, headers=auth(ALICE))
        other = await client.post("/v1/chat/completions", json=BODY, headers=auth(BOB))
    assert first.headers["x-cache"] == "MISS"
    assert again.headers["x-cache"] == "HIT"  # a key always reuses its own answers
    assert other.status_code == 200
    assert other.headers["x-cache"] == bob_sees
    assert backend.calls == calls
