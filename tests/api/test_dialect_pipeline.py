"""One pipeline: the same question through the Ollama, OpenAI chat, Anthropic and Responses
surfaces is one cache entry, one model run, and counts against the same quotas and metrics."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from app.core.config import QuotaSettings, Settings
from app.main import create_app
from tests.conftest import app_client
from tests.fakes import CountingBackend, ScriptedBackend
from tests.llm.ollama_script import Script, scripted_ollama
from tests.servers import serve_in_thread

MODEL = "smollm2:135m"
SYSTEM = "Answer briefly."
QUESTION = "Say 'yes' and nothing else."
USER = {"role": "user", "content": QUESTION}
KEY = "pipeline-test-key-0123456789"


def four_surfaces(model: str, *, stream: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """The same question, the same system prompt and the same settings in each dialect."""
    return [
        (
            "/api/chat",
            {
                "model": model,
                "messages": [{"role": "system", "content": SYSTEM}, USER],
                "options": {"temperature": 0, "num_predict": 300},
                "stream": stream,
            },
        ),
        (
            "/v1/chat/completions",
            {
                "model": model,
                "messages": [{"role": "system", "content": SYSTEM}, USER],
                "temperature": 0,
                "max_tokens": 300,
                "stream": stream,
            },
        ),
        (
            "/v1/messages",
            {
                "model": model,
                "system": [{"type": "text", "text": SYSTEM}],
                "messages": [{"role": "user", "content": [{"type": "text", "text": QUESTION}]}],
                "temperature": 0,
                "max_tokens": 300,
                "stream": stream,
            },
        ),
        (
            "/v1/responses",
            {
                "model": model,
                "instructions": SYSTEM,
                "input": QUESTION,
                "temperature": 0,
                "max_output_tokens": 300,
                "stream": stream,
            },
        ),
    ]


def text_of(path: str, body: dict[str, Any]) -> str:
    """The answer's text in each dialect's whole-answer body."""
    if path == "/api/chat":
        return str(body["message"]["content"])
    if path == "/v1/chat/completions":
        return str(body["choices"][0]["message"]["content"])
    if path == "/v1/messages":
        return str(body["content"][0]["text"])
    return str(body["output"][0]["content"][0]["text"])


def metric(text: str, name: str) -> float:
    """The value of one sample of the Prometheus text."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    raise AssertionError(f"{name} not in /metrics")


async def test_four_surfaces_share_one_cache_entry_and_one_model_run(
    client: httpx.AsyncClient, model: CountingBackend
) -> None:
    answers, caches = [], []
    for path, body in four_surfaces(MODEL):
        response = await client.post(path, json=body, timeout=120)
        assert response.status_code == 200, response.text
        answers.append(text_of(path, response.json()))
        caches.append(response.headers["x-cache"])
    streamed = [
        (await client.post(path, json=body, timeout=120)).headers["x-cache"]
        for path, body in four_surfaces(MODEL, stream=True)
    ]
    assert caches == ["MISS", "HIT", "HIT", "HIT"]
    assert streamed == ["HIT"] * 4
    assert answers[0]
    assert answers == [answers[0]] * 4
    assert model.calls == 1
    metrics = (await client.get("/metrics")).text
    assert metric(metrics, 'llama_cache_requests_total{result="hit"}') == 7
    assert metric(metrics, 'llama_cache_requests_total{result="miss"}') == 1
    success = f'llama_requests_total{{model="{MODEL}",status="success"}}'
    assert metric(metrics, success) == 8


async def test_four_surfaces_share_one_quota(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        api_keys=SecretStr(f"dev:{KEY}"),
        quota=QuotaSettings(rpm=3),
    )
    backend = ScriptedBackend()
    asked = four_surfaces(backend.model)
    async with app_client(create_app(settings, backend=backend)) as client:
        headers = [{"Authorization": f"Bearer {KEY}"}, {"X-API-Key": KEY}]
        for index, (path, body) in enumerate(asked[:3]):
            answer = await client.post(path, json=body, headers=headers[index % 2])
            assert answer.status_code == 200, answer.text
        openai = await client.post(asked[3][0], json=asked[3][1], headers=headers[0])
        anthropic = await client.post(asked[2][0], json=asked[2][1], headers=headers[1])
        nobody = await client.post(asked[2][0], json=asked[2][1])
    assert openai.status_code == 429
    assert openai.json()["error"]["code"] == "rate_limit_exceeded"
    assert anthropic.status_code == 429
    assert anthropic.headers["retry-after"]
    assert anthropic.json()["type"] == "error"
    assert anthropic.json()["error"]["type"] == "rate_limit_error"
    assert nobody.status_code == 401
    assert nobody.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize(
    ("versions", "lowest"),
    [(["0.12.0", "0.9.3"], "0.9.3"), (["0.14.1", "0.14.0-rc2"], "0.14.0-rc2")],
)
async def test_version_in_ollama_mode_is_the_pools_lowest(
    tmp_path: Path, versions: list[str], lowest: str
) -> None:
    with ExitStack() as stack:
        urls = [
            stack.enter_context(serve_in_thread(scripted_ollama(Script(version=version))))
            for version in versions
        ]
        settings = Settings(
            _env_file=None, llm_backend="ollama", ollama_urls=urls, data_dir=tmp_path / "data"
        )
        async with app_client(create_app(settings)) as client:
            answer = await client.get("/api/version")
    assert answer.json()["version"] == lowest
    assert answer.headers["x-llamarada-version"] == answer.json()["llamarada_version"]
