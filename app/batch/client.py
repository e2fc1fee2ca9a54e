"""`llamarada batch submit`: send a JSONL file to a server as a job, watch it, save its results."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import httpx

FINAL = ("completed", "failed", "cancelled")
BAR_WIDTH = 30


class SubmitError(Exception):
    """The server refused the job or could not be reached."""


@dataclass
class Submission:
    """Where to send what, and how to follow it."""

    url: str
    path: Path
    model: str = ""
    api_key: str | None = None
    interval: float = 1.0
    timeout: float = 30.0


def submit(sub: Submission, client: httpx.Client) -> dict[str, Any]:
    """Upload the file as a job; the server's job object."""
    params = {"model": sub.model} if sub.model else None
    response = client.post(
        f"{sub.url}/api/batch/jobs",
        content=sub.path.read_bytes(),
        params=params,
        headers={"Content-Type": "application/x-ndjson"},
    )
    return _json(response)


def wait(sub: Submission, client: httpx.Client, job_id: str, out: TextIO) -> dict[str, Any]:
    """Poll the job until it ends, drawing a progress bar on `out`."""
    last = ""
    while True:
        job = _json(client.get(f"{sub.url}/api/batch/jobs/{job_id}"))
        bar = progress_bar(job)
        if bar != last:
            out.write(f"\r{bar}" if out.isatty() else f"{bar}\n")
            out.flush()
            last = bar
        if job["status"] in FINAL and job["finished_at"] is not None:
            if out.isatty():
                out.write("\n")
            return job
        time.sleep(sub.interval)


def download(sub: Submission, client: httpx.Client, job_id: str, target: Path) -> int:
    """Save the job's results as JSONL; the number of lines written."""
    lines = 0
    with (
        client.stream("GET", f"{sub.url}/api/batch/jobs/{job_id}/results") as response,
        target.open("wb") as file,
    ):
        if response.status_code != 200:
            response.read()
            _json(response)
        for chunk in response.iter_bytes():
            file.write(chunk)
            lines += chunk.count(b"\n")
    return lines


def progress_bar(job: dict[str, Any]) -> str:
    """`[#####-----]  50%  100/200  failed 2  running`."""
    counts = job["counts"]
    done = counts["total"] - counts["pending"]
    filled = round(BAR_WIDTH * job["progress"])
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    text = f"[{bar}] {job['progress']:4.0%}  {done}/{counts['total']}"
    if counts["failed"]:
        text += f"  failed {counts['failed']}"
    if counts["cancelled"]:
        text += f"  cancelled {counts['cancelled']}"
    return f"{text}  {job['status']}"


def http_client(sub: Submission) -> httpx.Client:
    """A client with the API key, if any."""
    headers = {"Authorization": f"Bearer {sub.api_key}"} if sub.api_key else None
    return httpx.Client(timeout=sub.timeout, headers=headers)


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        body = {}
    if response.status_code >= 400:
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else response.text[:200]
        raise SubmitError(f"HTTP {response.status_code}: {message}")
    return body
