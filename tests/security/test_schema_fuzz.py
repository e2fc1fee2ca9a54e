"""JSON schemas thrown at `format` and `response_format` of a real `llamarada serve` process.

A schema that crashed llama.cpp took the whole process down, so these run against a real server
with the embedded model: a segfault or an out-of-memory kill shows as a dead process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from openai import OpenAI
from pydantic import BaseModel, Field

from tests.conftest import free_port
from tests.llm.schemas import EVERYDAY, REPORTED, formats

MODEL = "smollm2:135m"
ROUTES = ("/api/chat", "/api/generate", "/v1/chat/completions")
MiB = 1024 * 1024


@dataclass
class Server:
    """A running `llamarada serve` and its URL."""

    url: str
    process: subprocess.Popen[bytes]

    def post(self, route: str, json_format: Any, num_predict: int = 3) -> httpx.Response:
        """`json_format` as the route takes it: `format`, or a `response_format` JSON schema."""
        return httpx.post(
            f"{self.url}{route}", json=body(route, json_format, num_predict), timeout=120
        )

    def alive(self) -> bool:
        """The process runs and answers its liveness probe."""
        if self.process.poll() is not None:
            return False
        return httpx.get(f"{self.url}/health/live", timeout=10).status_code == 200


def body(route: str, json_format: Any, num_predict: int) -> dict[str, Any]:
    """A small request on `route` asking for `json_format`."""
    ask = "Describe a person in JSON."
    if route == "/api/generate":
        return {
            "model": MODEL,
            "prompt": ask,
            "format": json_format,
            "stream": False,
            "options": {"num_predict": num_predict, "temperature": 0},
        }
    if route == "/api/chat":
        return {
            "model": MODEL,
            "messages": [{"role": "user", "content": ask}],
            "format": json_format,
            "stream": False,
            "options": {"num_predict": num_predict, "temperature": 0},
        }
    schema = {"name": "answer", "schema": json_format, "strict": True}
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": ask}],
        "response_format": {"type": "json_schema", "json_schema": schema},
        "max_tokens": num_predict,
        "temperature": 0,
    }


@contextmanager
def serve(workdir: Path, **env: str) -> Iterator[Server]:
    """Run `llamarada serve` (embedded model, no keys) until ready; stop it after."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LLAMARADA_")}
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    environment.update({"LLAMARADA_DATA_DIR": str(workdir / "data"), **env})
    environment["PYTHONPATH"] = str(Path(__file__).parents[2])  # this checkout's `app`
    with (workdir / "stdout.log").open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environment,
            cwd=workdir,
        )
    server = Server(f"http://127.0.0.1:{port}", process)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{server.url}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, (workdir / "stdout.log").read_text()
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.2)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module, with the default limits."""
    with serve(tmp_path_factory.mktemp("schema-fuzz")) as running:
        yield running


def assert_refused_or_answered(route: str, response: httpx.Response) -> None:
    """200, or a 4xx in the project's error body; never a 5xx or a dropped connection."""
    status = response.status_code
    assert status == 200 or 400 <= status < 500, (status, response.text[:500])
    if status != 200:
        error = response.json()["error"]
        assert error["type"]
        assert error["message"]
        if route.startswith("/v1/"):
            assert "param" in error


def rss(pid: int) -> int:
    """Resident memory of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def children(pid: int) -> list[int]:
    """The grammar builders `pid` started (not its other children, such as the upload parsers'
    fork server)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                command = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:  # gone meanwhile
                continue
            if b"grammar_worker" in command:
                found.append(int(child))
    return found


@settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(route=st.sampled_from(ROUTES), json_format=formats)
@pytest.mark.timeout(300)
def test_schema_fuzz_server_survives_every_shape(
    server: Server, route: str, json_format: Any
) -> None:
    response = server.post(route, json_format)
    event(f"status {response.status_code}")  # --hypothesis-show-statistics: the mix tried
    assert_refused_or_answered(route, response)
    assert server.alive(), "the server died or stopped answering /health/live"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("schema", REPORTED, ids=json.dumps)
def test_schema_reported_shapes_are_422_naming_the_field(
    server: Server, route: str, schema: dict[str, Any]
) -> None:
    response = server.post(route, schema)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    keyword = next(key for key in schema if key.startswith(("min", "max")))
    if route.startswith("/v1/"):
        assert error["param"] == f"response_format.json_schema.schema.{keyword}"
    else:
        assert error["message"].startswith(f"format.{keyword}: ")
    assert server.alive()


# Shapes that pass the count limits yet multiply inside the converter, and the reported ones
# hidden deeper: the next variant of the memory bomb.
HOSTILE: list[dict[str, Any]] = [
    *REPORTED,
    {"type": "object", "properties": {"a": {"type": "array", "minItems": 10**9}}},
    {"anyOf": [{"type": "null"}, {"type": "array", "items": {}, "minItems": 10**8}]},
    {"$defs": {"x": {"type": "string", "minLength": 10**9}}, "$ref": "#/$defs/x"},
    {"type": "string", "pattern": "^((a{0,400}){0,400}){0,400}$"},
    {"type": "string", "pattern": "^((((ab|cd){2,50}){2,50}){2,50}){2,50}$"},
    {"type": "string", "pattern": "^a{1,100000000}$"},
    {"enum": [f"value {i}" for i in range(3000)]},
]


@pytest.mark.timeout(300)
def test_schema_memory_hostile_batch_leaves_the_server_flat(server: Server) -> None:
    """The server's RSS stays flat; the grammar builder runs under an address-space limit."""
    server.post("/api/chat", EVERYDAY[0])  # the builder child has started
    before = rss(server.process.pid)
    for _ in range(2):
        for schema in HOSTILE:
            for route in ROUTES:
                assert_refused_or_answered(route, server.post(route, schema))
    grown = rss(server.process.pid) - before
    assert grown < 64 * MiB, f"the server grew {grown / MiB:.0f} MiB"
    assert server.alive()
    builders = children(server.process.pid)
    assert builders, "no grammar builder process"
    for pid in builders:
        limits = Path(f"/proc/{pid}/limits").read_text()
        line = next(line for line in limits.splitlines() if line.startswith("Max address space"))
        assert "unlimited" not in line, line


@pytest.mark.timeout(300)
@pytest.mark.parametrize("schema", EVERYDAY, ids=lambda schema: schema["title"])
def test_schema_everyday_answers_parse_against_their_schema(
    server: Server, schema: dict[str, Any]
) -> None:
    for route in ("/api/chat", "/v1/chat/completions"):
        response = server.post(route, schema, num_predict=300)
        assert response.status_code == 200, response.text
        answer = response.json()
        if route == "/api/chat":
            assert answer["done_reason"] == "stop"
            text = answer["message"]["content"]
        else:
            assert answer["choices"][0]["finish_reason"] == "stop"
            text = answer["choices"][0]["message"]["content"]
        jsonschema.validate(json.loads(text), schema)


class Meeting(BaseModel):
    """What the openai SDK's `parse()` turns into a strict JSON schema."""

    title: str = Field(max_length=30)
    attendees: list[str] = Field(max_length=3)
    online: bool


@pytest.mark.timeout(120)
def test_schema_openai_sdk_parse_gets_its_model(server: Server) -> None:
    client = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
    completion = client.chat.completions.parse(
        model=MODEL,
        messages=[{"role": "user", "content": "Plan a short meeting with Ana."}],
        response_format=Meeting,
        max_tokens=300,
        temperature=0,
    )
    assert isinstance(completion.choices[0].message.parsed, Meeting)


@pytest.mark.timeout(180)
def test_schema_past_the_limits_still_cannot_crash_the_server(tmp_path: Path) -> None:
    """With the count limits lifted, llama.cpp's own refusal (the reported crash) is a 422."""
    lifted = {
        "LLAMARADA_LIMITS__MAX_SCHEMA_REPEAT": "1000000000",
        "LLAMARADA_LIMITS__GRAMMAR_MEMORY_MB": "256",
    }
    with serve(tmp_path, **lifted) as server:
        before = rss(server.process.pid)
        for schema in REPORTED:
            for route in ROUTES:
                response = server.post(route, schema)
                assert response.status_code == 422, response.text
        assert rss(server.process.pid) - before < 64 * MiB
        assert server.alive()
