"""OpenAI's Batch API through the official `openai` SDK, over real HTTP, in both modes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import OpenAI

from app.core.config import Settings
from app.main import create_app
from tests.batch.conftest import MODEL, SCRIPTED, StartWorkers, embedded_settings
from tests.fakes import ScriptedBackend
from tests.servers import serve_in_thread


def request_line(custom_id: str, model: str, text: str, **body: Any) -> dict[str, Any]:
    """One line of an input file."""
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": text}], **body},
    }


def write_input(path: Path, model: str) -> Path:
    """Three good requests and a line that is no request at all."""
    lines = [
        json.dumps(request_line("req-1", model, "uno")),
        json.dumps(request_line("req-2", model, "dos", max_tokens=5)),
        '{"custom_id": "req-3", "method": "POST"',  # cut short
        json.dumps(request_line("req-4", model, "cuatro", n=3)),  # refused: n > 1
        json.dumps(request_line("req-5", model, "cinco", temperature=0)),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def sdk(base_url: str) -> OpenAI:
    """The official client, pointed at the gateway."""
    return OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0)


def run_batch(client: OpenAI, input_path: Path, timeout: float = 30) -> dict[str, Any]:
    """Upload, create, poll and download with the SDK, as its documentation shows."""
    with input_path.open("rb") as file:
        uploaded = client.files.create(file=file, purpose="batch")
    assert uploaded.purpose == "batch"
    assert uploaded.bytes == input_path.stat().st_size
    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"team": "ops"},
    )
    assert batch.status in ("validating", "in_progress")
    deadline = time.monotonic() + timeout
    while batch.status not in ("completed", "failed", "expired", "cancelled"):
        assert time.monotonic() < deadline, batch.status
        time.sleep(0.1)
        batch = client.batches.retrieve(batch.id)
    assert batch.output_file_id is not None
    assert batch.error_file_id is not None
    output = client.files.content(batch.output_file_id).text
    errors = client.files.content(batch.error_file_id).text
    listed = client.files.list()
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(batch.id)
    return {
        "batch": batch,
        "output": [json.loads(line) for line in output.splitlines()],
        "errors": [json.loads(line) for line in errors.splitlines()],
        "files": {f.id: f for f in listed.data},
        "input": uploaded,
    }


@pytest.fixture
def embedded_url(tmp_path: Path) -> Iterator[str]:
    """An app without Redis on the scripted backend, served over HTTP."""
    app = create_app(embedded_settings(tmp_path), backend=ScriptedBackend(model=SCRIPTED))
    with serve_in_thread(app) as url:
        yield url


@pytest.fixture
def redis_url(redis_settings: Settings, start_workers: StartWorkers) -> Iterator[str]:
    """An app on Redis with one worker process on the scripted Ollama server."""
    start_workers(1, concurrency=2)
    with serve_in_thread(create_app(redis_settings)) as url:
        yield url


@pytest.mark.parametrize("mode", ["in-process", "workers"])
def test_openai_sdk_batch_round_trip(
    mode: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    base_url = request.getfixturevalue("embedded_url" if mode == "in-process" else "redis_url")
    model = SCRIPTED if mode == "in-process" else MODEL
    with sdk(base_url) as client:
        found = run_batch(client, write_input(tmp_path / "in.jsonl", model))
        batch = found["batch"]
        assert client.batches.list().data[0].id == batch.id
        client.files.delete(batch.output_file_id)
        assert client.batches.retrieve(batch.id).output_file_id is None
        with pytest.raises(openai.NotFoundError):
            client.files.content(batch.output_file_id)

    assert batch.status == "completed"
    assert batch.endpoint == "/v1/chat/completions"
    assert batch.metadata == {"team": "ops"}
    assert batch.request_counts.model_dump() == {"total": 5, "completed": 3, "failed": 2}
    assert batch.completed_at is not None
    assert batch.in_progress_at is not None
    assert batch.model == model
    assert batch.errors is not None
    assert [(e.line, e.code) for e in batch.errors.data or []] == [
        (3, "invalid_request"),
        (4, "invalid_request"),
    ]

    output = found["output"]
    assert [line["custom_id"] for line in output] == ["req-1", "req-2", "req-5"]
    for line in output:
        assert line["id"].startswith("batch_req_")
        assert line["error"] is None
        assert line["response"]["status_code"] == 200
        completion = openai.types.chat.ChatCompletion.model_validate(line["response"]["body"])
        assert completion.choices[0].message.role == "assistant"
        assert completion.model == model
    errors = found["errors"]
    assert [line["custom_id"] for line in errors] == ["req-3", "req-4"]
    assert errors[0]["error"]["code"] == "invalid_request"
    assert "line 3" in errors[0]["error"]["message"]
    assert errors[1]["error"]["message"] == "line 4: n: only one choice (n=1) is supported"

    files = found["files"]
    assert {found["input"].id, batch.output_file_id, batch.error_file_id} <= set(files)
    assert files[batch.output_file_id].purpose == "batch_output"


def test_openai_batch_refuses_bad_requests(embedded_url: str, tmp_path: Path) -> None:
    path = write_input(tmp_path / "in.jsonl", SCRIPTED)
    with sdk(embedded_url) as client:
        check_refusals(client, path)


def check_refusals(client: OpenAI, path: Path) -> None:
    """Bad purpose, missing file, unsupported endpoint, unknown batch; then file CRUD."""
    with pytest.raises(openai.UnprocessableEntityError) as caught, path.open("rb") as file:
        client.files.create(file=file, purpose="fine-tune")
    assert caught.value.body["param"] == "purpose"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        client.batches.create(
            input_file_id="file-missing", endpoint="/v1/chat/completions", completion_window="24h"
        )
    with path.open("rb") as file:
        uploaded = client.files.create(file=file, purpose="batch")
    with pytest.raises(openai.UnprocessableEntityError) as bad:
        client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/embeddings", completion_window="24h"
        )
    assert bad.value.body["param"] == "endpoint"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_missing")
    assert client.files.retrieve(uploaded.id).filename == "in.jsonl"
    assert client.files.content(uploaded.id).read() == path.read_bytes()
    assert client.files.delete(uploaded.id).deleted
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)


def test_openai_batch_file_over_the_limit_is_413(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path, max_upload_bytes=2048)
    app = create_app(settings, backend=ScriptedBackend(model=SCRIPTED))
    with serve_in_thread(app) as url, sdk(url) as client:
        line = json.dumps(request_line("big", SCRIPTED, "x" * 3000))
        with pytest.raises(openai.APIStatusError) as caught:
            client.files.create(file=("big.jsonl", line.encode()), purpose="batch")
    assert caught.value.status_code == 413
