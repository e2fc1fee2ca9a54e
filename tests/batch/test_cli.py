"""`llamarada batch submit FILE.jsonl --wait` against a served app, over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main
from app.main import create_app
from tests.batch.conftest import SCRIPTED, embedded_settings
from tests.conftest import free_port
from tests.fakes import ScriptedBackend
from tests.servers import serve_in_thread


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """An app without Redis whose answers take 0.1 s, two at a time."""
    backend = ScriptedBackend(model=SCRIPTED, pieces=("sí",), delay=0.1)
    app = create_app(embedded_settings(tmp_path, worker_concurrency=2), backend=backend)
    with serve_in_thread(app) as url:
        yield url


def write_prompts(path: Path, count: int) -> Path:
    lines = [json.dumps({"prompt": f"pregunta {n}", "custom_id": f"q{n}"}) for n in range(count)]
    path.write_text("\n".join([*lines, "not json"]) + "\n")
    return path


def test_cli_batch_submit_waits_and_writes_results(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_prompts(tmp_path / "prompts.jsonl", 6)
    code = main(["batch", "submit", str(source), "--url", server, "--wait", "--interval", "0.05"])
    out, err = capsys.readouterr()
    assert code == 0, err
    job_id = out.strip()
    assert job_id.startswith("job_")
    bars = err.splitlines()
    assert bars[0].startswith("[")
    assert bars[-2].startswith("[" + "#" * 30 + "] 100%  7/7")
    assert len(bars) > 3  # it showed progress along the way, not only the end
    assert bars[-1] == (
        f"job {job_id} completed: 6 succeeded, 1 failed, 0 cancelled; "
        f"7 results in {tmp_path / 'prompts.results.jsonl'}"
    )
    results = [
        json.loads(line) for line in (tmp_path / "prompts.results.jsonl").read_text().splitlines()
    ]
    assert [r["custom_id"] for r in results] == [f"q{n}" for n in range(6)] + [None]
    assert [r["status"] for r in results] == ["succeeded"] * 6 + ["failed"]
    assert results[0]["output"] == "sí"


def test_cli_batch_submit_without_wait_prints_the_id(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_prompts(tmp_path / "p.jsonl", 1)
    output = tmp_path / "out.jsonl"
    assert main(["batch", "submit", str(source), "--url", server, "-o", str(output)]) == 0
    assert capsys.readouterr().out.startswith("job_")
    assert not output.exists()


@pytest.mark.parametrize("problem", ["unreachable", "refused"])
def test_cli_batch_submit_reports_failures(
    server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], problem: str
) -> None:
    source = tmp_path / "empty.jsonl"
    source.write_text("\n")
    url = f"http://127.0.0.1:{free_port()}" if problem == "unreachable" else server
    assert main(["batch", "submit", str(source), "--url", url, "--wait"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("llamarada batch: ")
    if problem == "refused":
        assert "HTTP 400: the batch has no items" in err
