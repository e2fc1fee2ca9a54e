"""A batch item's span, made in a real worker process, joins the trace of the request that
queued its job (the trace context is stored with the job)."""

from __future__ import annotations

from app.core.config import Settings
from app.main import create_app
from tests.batch.conftest import MODEL, StartWorkers, finished
from tests.conftest import app_client
from tests.llm.ollama_script import Script
from tests.otlp import OtlpReceiver, Received


def _items_traced(spans: list[Received]) -> bool:
    names = [span.name for span in spans]
    return names.count("llamarada.batch.item") == 2 and names.count(f"chat {MODEL}") == 2


async def test_batch_items_run_by_a_worker_join_the_submitting_requests_trace(
    otlp: OtlpReceiver,  # first: the workers inherit its OTEL_* variables
    redis_settings: Settings,
    start_workers: StartWorkers,
    script: Script,
) -> None:
    [worker] = start_workers(1, concurrency=2)
    async with app_client(create_app(redis_settings)) as client:
        response = await client.post("/api/batch/jobs", json={"prompts": ["uno", "dos"]})
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        job = await finished(client, job_id)
    assert job["counts"]["succeeded"] == 2
    otlp.wait_for(_items_traced)  # the worker sends its spans on its own schedule
    submit = otlp.tree("POST /api/batch/jobs")
    items = [span for span in submit.children if span.name == "llamarada.batch.item"]
    assert sorted(span.attributes["llamarada.batch.index"] for span in items) == [0, 1]
    for item in items:
        assert item.kind == "CONSUMER"
        assert item.trace_id == submit.trace_id
        assert item.attributes["llamarada.batch.job"] == job_id
        chat = item.child(f"chat {MODEL}")
        assert chat.attributes["gen_ai.usage.output_tokens"] == 3
        assert chat.attributes["llamarada.upstream.server"]  # the model call reached the server
    assert worker.process.poll() is None
    assert {body["messages"][-1]["content"] for body in script.bodies} == {"uno", "dos"}
