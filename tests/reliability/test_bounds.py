"""Bounded queues: what waits in memory has a ceiling, and beyond it the answer is a quick 503."""

from __future__ import annotations

from pathlib import Path

from app.core.config import BatchSettings, Settings
from app.main import create_app
from tests.conftest import app_client
from tests.fakes import ScriptedBackend

MODEL = "scripted:1b"


async def test_in_process_batch_queue_is_bounded_and_refuses_with_503(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        default_model=MODEL,
        batch=BatchSettings(max_queued_items=5, worker_concurrency=1),
    )
    backend = ScriptedBackend(model=MODEL, delay=0.2)  # items wait while the first runs
    async with app_client(create_app(settings, backend=backend)) as client:
        first = await client.post("/api/batch/jobs", json={"prompts": [f"p{i}" for i in range(5)]})
        assert first.status_code == 202, first.text
        refused = await client.post("/api/batch/jobs", json={"prompts": ["a", "b", "c"]})
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["type"] == "overloaded_error"
        assert int(refused.headers["retry-after"]) >= 1
        # Refused before it was stored: no job to find, none half made.
        jobs = (await client.get("/api/batch/jobs")).json()["jobs"]
        assert [job["id"] for job in jobs] == [first.json()["id"]]
