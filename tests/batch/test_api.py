"""`POST /api/batch` and `/api/batch/jobs` without Redis: jobs run in the API process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.config import LimitSettings
from app.llm.base import ChatRequest, Chunk, GenerateRequest
from app.main import create_app
from tests.batch.conftest import SCRIPTED, embedded_settings, finished, result_lines, wait_for
from tests.conftest import app_client
from tests.fakes import ScriptedBackend


@dataclass
class PeakBackend(ScriptedBackend):
    """A scripted backend that remembers the most generations it ran at once."""

    active: int = 0
    peak: int = 0

    async def _run(self, request: ChatRequest | GenerateRequest) -> AsyncGenerator[Chunk, None]:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            async for chunk in super()._run(request):
                yield chunk
        finally:
            self.active -= 1


@pytest.fixture
async def slow(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, PeakBackend]]:
    """An app whose backend takes 0.2 s an answer and whose jobs run one item at a time."""
    backend = PeakBackend(model=SCRIPTED, pieces=("uno", "dos"), delay=0.1)
    settings = embedded_settings(tmp_path, worker_concurrency=1)
    async with app_client(create_app(settings, backend=backend)) as client:
        yield client, backend


async def test_batch_sync_returns_results_in_order_with_failures_in_place(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path)
    settings.limits = LimitSettings(max_prompt_chars=20)
    async with app_client(create_app(settings, backend=ScriptedBackend(model=SCRIPTED))) as client:
        prompts = ["uno", "x" * 30, "tres"]
        response = await client.post("/api/batch", json={"prompts": prompts})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["index"] for r in results] == [0, 1, 2]
    assert [r["status"] for r in results] == ["succeeded", "failed", "succeeded"]
    assert results[0]["output"] == "Hello, world."
    assert results[1]["error"]["type"] == "invalid_request_error"
    assert "at most 20 allowed" in results[1]["error"]["message"]


async def test_batch_sync_chats_and_options(client: httpx.AsyncClient) -> None:
    chats = [[{"role": "user", "content": "hola"}], [{"role": "user", "content": "adiós"}]]
    response = await client.post(
        "/api/batch", json={"messages_list": chats, "options": {"temperature": 0}}
    )
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["succeeded", "succeeded"]
    assert results[1]["model"] == SCRIPTED


@pytest.mark.parametrize(("asked", "peak"), [(None, 4), (2, 2), (1, 1)])
async def test_batch_sync_runs_concurrency_items_at_once(
    tmp_path: Path, asked: int | None, peak: int
) -> None:
    backend = PeakBackend(model=SCRIPTED, delay=0.02)
    async with app_client(create_app(embedded_settings(tmp_path), backend=backend)) as client:
        body: dict[str, Any] = {"prompts": [f"p{n}" for n in range(10)]}
        if asked:
            body["concurrency"] = asked
        response = await client.post("/api/batch", json=body)
    assert response.status_code == 200
    assert backend.peak == peak


async def test_batch_sync_too_many_items_points_to_jobs(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/batch", json={"prompts": ["p"] * 65})
    assert response.status_code == 413
    assert "/api/batch/jobs" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"prompts": ["a"], "messages_list": [[]]}, 422, "exactly one"),
        ({"prompts": []}, 422, "prompts"),
        ({"prompts": ["a"], "concurrency": 99}, 422, "concurrency"),
        ({"prompts": ["a"], "model": "nope:1b"}, 404, "nope:1b"),
    ],
)
async def test_batch_sync_refuses_bad_requests(
    client: httpx.AsyncClient, body: dict[str, Any], status: int, field: str
) -> None:
    response = await client.post("/api/batch", json=body)
    assert response.status_code == status
    assert field in response.json()["error"]["message"]


async def test_batch_sync_items_share_the_cache_and_metrics(client: httpx.AsyncClient) -> None:
    body = {"prompts": ["cacheable", "cacheable too"]}
    first = (await client.post("/api/batch", json=body)).json()["results"]
    again = (await client.post("/api/batch", json=body)).json()["results"]
    message = {"role": "user", "content": "cacheable"}
    single = await client.post("/api/chat", json={"messages": [message], "stream": False})
    assert [r["cache"] for r in first] == ["MISS", "MISS"]
    assert [r["cache"] for r in again] == ["HIT", "HIT"]
    assert single.headers["X-Cache"] == "HIT"  # the same entry a single request uses
    exposed = (await client.get("/metrics")).text
    assert 'llama_batch_items_total{status="succeeded"} 4.0' in exposed
    assert 'llama_cache_requests_total{result="hit"} 3.0' in exposed


async def test_batch_job_runs_in_process(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/batch/jobs", json={"prompts": ["a", "b", "c"]})
    assert response.status_code == 202
    job = response.json()
    assert response.headers["Location"] == f"/api/batch/jobs/{job['id']}"
    assert job["status"] == "queued"
    assert job["counts"] == {"total": 3, "succeeded": 0, "failed": 0, "cancelled": 0, "pending": 3}
    done = await finished(client, job["id"])
    assert done["status"] == "completed"
    assert done["progress"] == 1.0
    assert done["results_kept_until"] is not None
    lines = await result_lines(client, job["id"])
    assert [(line["index"], line["output"]) for line in lines] == [
        (0, "Hello, world."),
        (1, "Hello, world."),
        (2, "Hello, world."),
    ]


@pytest.mark.parametrize("upload", ["jsonl", "multipart", "curl"])
async def test_batch_job_malformed_line_fails_alone(client: httpx.AsyncClient, upload: str) -> None:
    content = (
        b'{"prompt": "uno", "custom_id": "a"}\n'
        b"{not json\n"
        b"\n"
        b'{"messages": [{"role": "user", "content": "dos"}], "custom_id": "c"}\n'
        b'{"prompt": "tres", "temperature": 2}\n'
    )
    if upload in ("jsonl", "curl"):
        kind = "application/x-ndjson" if upload == "jsonl" else "application/x-www-form-urlencoded"
        headers = {"Content-Type": kind}
        response = await client.post("/api/batch/jobs", content=content, headers=headers)
    else:
        files = {"file": ("in.jsonl", content, "application/octet-stream")}
        response = await client.post("/api/batch/jobs", files=files)
    assert response.status_code == 202, response.text
    job = await finished(client, response.json()["id"])
    assert job["counts"] == {"total": 4, "succeeded": 2, "failed": 2, "cancelled": 0, "pending": 0}
    assert job["status"] == "completed"
    lines = await result_lines(client, job["id"])
    assert [(line["index"], line["custom_id"], line["status"]) for line in lines] == [
        (0, "a", "succeeded"),
        (1, None, "failed"),
        (2, "c", "succeeded"),
        (3, None, "failed"),
    ]
    assert lines[1]["error"]["message"].startswith("line 2: not valid JSON")
    assert lines[3]["error"]["param"] == "line 5: temperature"


async def test_batch_job_takes_a_json_array(client: httpx.AsyncClient) -> None:
    body = ["uno", {"prompt": "dos", "custom_id": "d"}, 7]
    response = await client.post("/api/batch/jobs", json=body)
    job = await finished(client, response.json()["id"])
    assert (job["counts"]["succeeded"], job["counts"]["failed"]) == (2, 1)


async def test_batch_job_that_is_all_bad_fails(client: httpx.AsyncClient) -> None:
    headers = {"Content-Type": "application/x-ndjson"}
    response = await client.post("/api/batch/jobs", content=b"[1]\n{}\n", headers=headers)
    assert response.status_code == 202
    assert response.json()["status"] == "failed"
    assert response.json()["finished_at"] is not None


async def test_batch_job_over_the_limits_is_413(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path, max_job_items=3, max_upload_bytes=2048)
    async with app_client(create_app(settings, backend=ScriptedBackend(model=SCRIPTED))) as client:
        many = await client.post("/api/batch/jobs", json={"prompts": ["p"] * 4})
        headers = {"Content-Type": "application/x-ndjson"}
        lines = b'{"prompt": "p"}\n' * 4
        many_lines = await client.post("/api/batch/jobs", content=lines, headers=headers)
        big = b'{"prompt": "' + b"x" * 3000 + b'"}\n'
        too_big = await client.post("/api/batch/jobs", content=big, headers=headers)
    for response in (many, many_lines):
        assert response.status_code == 413
        assert (
            "at most 3" in response.json()["error"]["message"]
            or "more than 3" in (response.json()["error"]["message"])
        )
    assert too_big.status_code == 413
    assert too_big.json()["error"]["type"] == "payload_too_large"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/batch/jobs/job_missing"),
        ("GET", "/api/batch/jobs/job_missing/results"),
        ("DELETE", "/api/batch/jobs/job_missing"),
    ],
)
async def test_batch_job_unknown_id_is_404(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"


async def test_batch_job_cancel_drops_items_not_started(
    slow: tuple[httpx.AsyncClient, PeakBackend],
) -> None:
    client, _ = slow
    response = await client.post("/api/batch/jobs", json={"prompts": [f"p{n}" for n in range(5)]})
    job_id = response.json()["id"]

    async def running() -> bool:
        job = (await client.get(f"/api/batch/jobs/{job_id}")).json()
        return bool(job["status"] == "running")

    await wait_for(running)
    cancelled = await client.delete(f"/api/batch/jobs/{job_id}")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    job = await finished(client, job_id)
    assert job["status"] == "cancelled"
    # The item running when the cancel came finished; the four waiting were dropped.
    assert job["counts"] == {"total": 5, "succeeded": 1, "failed": 0, "cancelled": 4, "pending": 0}
    lines = await result_lines(client, job_id)
    assert [line["status"] for line in lines] == ["succeeded"] + ["cancelled"] * 4
    assert lines[1]["error"]["type"] == "cancelled"

    again = await client.delete(f"/api/batch/jobs/{job_id}")
    assert again.status_code == 409
    assert again.json()["error"] == {
        "type": "conflict_error",
        "message": f"job {job_id} is already cancelled",
    }


async def test_batch_job_cancel_of_a_finished_job_is_409(client: httpx.AsyncClient) -> None:
    job_id = (await client.post("/api/batch/jobs", json={"prompts": ["a"]})).json()["id"]
    await finished(client, job_id)
    response = await client.delete(f"/api/batch/jobs/{job_id}")
    assert response.status_code == 409
    assert "already completed" in response.json()["error"]["message"]


async def test_batch_job_results_removed_after_retention(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path, retention=1)
    async with app_client(create_app(settings, backend=ScriptedBackend(model=SCRIPTED))) as client:
        job_id = (await client.post("/api/batch/jobs", json={"prompts": ["a"]})).json()["id"]
        job = await finished(client, job_id)
        assert job["status"] == "completed"
        await asyncio.sleep(1.1)
        gone = await client.get(f"/api/batch/jobs/{job_id}")
        results = await client.get(f"/api/batch/jobs/{job_id}/results")
        listed = (await client.get("/api/batch/jobs")).json()
    assert (gone.status_code, results.status_code) == (404, 404)
    assert "retention" in gone.json()["error"]["message"]
    assert listed == {"jobs": [], "has_more": False}


async def test_batch_job_progress_and_queue_depth_while_running(
    slow: tuple[httpx.AsyncClient, PeakBackend],
) -> None:
    client, backend = slow
    job_id = (await client.post("/api/batch/jobs", json={"prompts": ["a", "b", "c"]})).json()["id"]

    async def one_done() -> dict[str, Any] | None:
        job: dict[str, Any] = (await client.get(f"/api/batch/jobs/{job_id}")).json()
        return job if job["counts"]["succeeded"] >= 1 else None

    job = await wait_for(one_done)
    assert job["status"] == "running"
    assert 0 < job["progress"] < 1
    exposed = (await client.get("/metrics")).text
    depth = [line for line in exposed.splitlines() if line.startswith("llama_batch_queue_depth")]
    assert depth in (["llama_batch_queue_depth 1.0"], ["llama_batch_queue_depth 0.0"])
    partial = await result_lines(client, job_id)
    assert partial[0]["index"] == 0
    await finished(client, job_id)
    assert backend.peak == 1  # worker_concurrency=1
    assert json.loads((await client.get(f"/api/batch/jobs/{job_id}")).text)["progress"] == 1.0
