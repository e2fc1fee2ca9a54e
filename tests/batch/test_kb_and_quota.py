"""Batch items through the one chat entry (`kb:` models answer with their sources) and within
their key's quota (each item a request; tokens reserved before, the unused part given back)."""

from __future__ import annotations

from pathlib import Path

import httpx
from pydantic import SecretStr

from app.core.config import QuotaSettings, Settings
from app.main import create_app
from tests.batch.conftest import SCRIPTED, embedded_settings, finished, result_lines
from tests.conftest import app_client
from tests.fakes import ScriptedBackend

KEY = "batch-key-3c4d5e6f7a8b9c0d"
TEXT = "Llamas live in the Andes. They eat grass and hay, and they hum to each other."


async def knowledge_base(client: httpx.AsyncClient, headers: dict[str, str] | None = None) -> None:
    """A collection `zoo` with one document about llamas."""
    created = await client.post("/api/rag/collections", json={"name": "zoo"}, headers=headers)
    assert created.status_code == 201, created.text
    body = {"documents": [{"text": TEXT, "source": "llamas.txt"}]}
    uploaded = await client.post("/api/rag/collections/zoo/documents", json=body, headers=headers)
    assert uploaded.status_code == 201, uploaded.text


async def test_batch_items_may_name_kb_models_and_carry_their_sources(tmp_path: Path) -> None:
    backend = ScriptedBackend(model=SCRIPTED)
    async with app_client(create_app(embedded_settings(tmp_path), backend=backend)) as client:
        await knowledge_base(client)
        body = {"model": "kb:zoo", "prompts": ["What do llamas eat?", "Where do llamas live?"]}
        sync = await client.post("/api/batch", json=body)
        assert sync.status_code == 200, sync.text
        job = await client.post("/api/batch/jobs", json=body)
        assert job.status_code == 202, job.text
        await finished(client, job.json()["id"])
        queued = await result_lines(client, job.json()["id"])
    for line in [*sync.json()["results"], *queued]:
        assert line["status"] == "succeeded", line
        assert line["model"] == "kb:zoo"
        assert [source["source"] for source in line["sources"]] == ["llamas.txt"]
        assert "llamas.txt" in line["output"]  # the sources list closes the answer's text


async def test_batch_kb_model_of_another_key_fails_its_items(tmp_path: Path) -> None:
    keys = SecretStr(f"alice:{KEY},bob:bob-key-0a1b2c3d4e5f6a7b")
    settings = embedded_settings(tmp_path).model_copy(update={"api_keys": keys})
    alice = {"Authorization": f"Bearer {KEY}"}
    bob = {"Authorization": "Bearer bob-key-0a1b2c3d4e5f6a7b"}
    async with app_client(create_app(settings, backend=ScriptedBackend(model=SCRIPTED))) as client:
        await knowledge_base(client, alice)
        body = {"model": "kb:zoo", "prompts": ["What do llamas eat?"]}
        results = (await client.post("/api/batch", json=body, headers=bob)).json()["results"]
    assert results[0]["status"] == "failed"
    assert results[0]["error"]["message"] == "collection 'zoo' not found"


def quota_settings(tmp_path: Path, entry: str) -> Settings:
    settings = embedded_settings(tmp_path)
    return settings.model_copy(
        update={"api_keys": SecretStr(entry), "cache_ttl": 0, "quota": QuotaSettings()}
    )


async def test_batch_counts_each_item_against_requests_per_minute(tmp_path: Path) -> None:
    settings = quota_settings(tmp_path, f"alice:{KEY};rpm=4")
    headers = {"Authorization": f"Bearer {KEY}"}
    backend = ScriptedBackend(model=SCRIPTED)
    async with app_client(create_app(settings, backend=backend)) as client:
        body = {"prompts": [f"p{n}" for n in range(10)], "concurrency": 1}
        response = await client.post("/api/batch", json=body, headers=headers)
        assert response.status_code == 200, response.text
        statuses = [line["status"] for line in response.json()["results"]]
        later = await client.post("/api/chat", json={"messages": []}, headers=headers)
    # The call itself is one request; three items fit beside it, the other seven are refused.
    assert statuses == ["succeeded"] * 3 + ["failed"] * 7
    refused = response.json()["results"][3]["error"]
    assert refused["type"] == "rate_limit_error"
    assert backend.calls == 3
    assert later.status_code == 429


async def test_batch_reserves_tokens_so_a_call_cannot_overshoot(tmp_path: Path) -> None:
    # Each answer uses 40 tokens (3 of prompt, 37 written) and may use up to 41 (its prompt's
    # one character and 40 to write). Four run at once under 100 tokens a minute: counted only
    # afterwards, all four would start and spend 160; reserved first, two start, two are refused.
    settings = quota_settings(tmp_path, f"alice:{KEY};tpm=100")
    headers = {"Authorization": f"Bearer {KEY}"}
    backend = ScriptedBackend(model=SCRIPTED, pieces=("w ",) * 37, delay=0.005)
    async with app_client(create_app(settings, backend=backend)) as client:
        body = {"prompts": ["a", "b", "c", "d"], "options": {"num_predict": 40}, "concurrency": 4}
        results = (await client.post("/api/batch", json=body, headers=headers)).json()["results"]
        later = await client.post("/api/chat", json={"messages": []}, headers=headers)
    answered = [r for r in results if r["status"] == "succeeded"]
    refused = [r for r in results if r["status"] == "failed"]
    assert len(answered) == 2
    assert {r["error"]["type"] for r in refused} == {"rate_limit_error"}
    assert sum(r["prompt_eval_count"] + r["eval_count"] for r in answered) == 80
    assert backend.calls == 2
    assert later.status_code == 200  # 80 of 100 used: room is left, and refunds gave it back
