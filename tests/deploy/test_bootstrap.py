"""app.bootstrap against a scripted Ollama on 127.0.0.1: waiting, pulling, creating models."""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path

import pytest

from app.bootstrap import (
    BootstrapError,
    OllamaAdmin,
    create_model,
    create_model_from_file,
    full_name,
    main,
    prepare_ollama,
    pull_missing,
    wait_for,
)
from app.llm.modelfile import ModelfileError, load_models, parse_modelfile
from tests.deploy.ollama_stub import OllamaFactory

REPO = Path(__file__).resolve().parents[2]


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.mark.parametrize(
    ("name", "full"),
    [
        ("llama3.1:8b", "llama3.1:8b"),
        ("smollm2", "smollm2:latest"),
        ("hf.co/bartowski/Model-GGUF:Q4_K_M", "hf.co/bartowski/Model-GGUF:Q4_K_M"),
        ("registry:5000/team/model", "registry:5000/team/model:latest"),
    ],
)
def test_full_name_adds_latest_tag_only_when_missing(name: str, full: str) -> None:
    assert full_name(name) == full


def test_wait_for_returns_once_late_server_answers(ollama_factory: OllamaFactory) -> None:
    stub = ollama_factory(delay=1.0)
    started = time.monotonic()
    wait_for([OllamaAdmin(stub.url)], timeout=10, interval=0.1)
    waited = time.monotonic() - started
    assert 0.9 <= waited < 5
    assert stub.state.count("/api/version") == 1


def test_wait_for_gives_up_at_deadline_with_clear_message(ollama_factory: OllamaFactory) -> None:
    stub = ollama_factory(start=False)
    clock = FakeClock()
    with pytest.raises(BootstrapError) as caught:
        wait_for([OllamaAdmin(stub.url)], timeout=3, interval=0.5, clock=clock, sleep=clock.sleep)
    message = str(caught.value)
    assert f"Ollama at {stub.url} did not answer GET /api/version within 3 s" in message
    assert "Connection refused" in message
    assert clock.now == pytest.approx(3.0)
    assert all(s <= 0.5 for s in clock.sleeps)


def test_wait_for_checks_every_server(ollama_factory: OllamaFactory) -> None:
    up, down = ollama_factory(), ollama_factory(start=False)
    clock = FakeClock()
    with pytest.raises(BootstrapError, match=down.url):
        wait_for([OllamaAdmin(up.url), OllamaAdmin(down.url)], 1, clock=clock, sleep=clock.sleep)
    assert up.state.count("/api/version") == 1


def test_pull_missing_pulls_only_absent_models(
    ollama_factory: OllamaFactory, caplog: pytest.LogCaptureFixture
) -> None:
    stub = ollama_factory({"llama3.1:8b"})
    caplog.set_level(logging.INFO, logger="llamarada.bootstrap")
    pulled = pull_missing(OllamaAdmin(stub.url), ["llama3.1:8b", "smollm2:135m", "smollm2:135m"])
    assert pulled == ["smollm2:135m"]
    assert stub.state.bodies("/api/pull") == [{"model": "smollm2:135m", "stream": True}]
    lines = [r.getMessage() for r in caplog.records]
    # 41 progress events arrive; one line per status and per 10 % is logged.
    assert lines == [
        "pulling model",
        "pull smollm2:135m: pulling manifest",
        *(f"pull smollm2:135m: pulling 6a0746a1ec1a {p}%" for p in range(0, 101, 10)),
        "pull smollm2:135m: verifying sha256 digest",
        "pull smollm2:135m: writing manifest",
        "pull smollm2:135m: success",
    ]


def test_pull_missing_reports_ollama_error(ollama_factory: OllamaFactory) -> None:
    stub = ollama_factory()
    stub.unknown_models.add("no-existe:latest")
    with pytest.raises(BootstrapError, match="/api/pull: file does not exist"):
        pull_missing(OllamaAdmin(stub.url), ["no-existe"])


def test_create_model_sends_the_modelfile_as_create_request(ollama_factory: OllamaFactory) -> None:
    stub = ollama_factory({"llama3.1:8b"})
    modelfile = load_models(REPO / "models")["abogado-mx"]
    create_model(OllamaAdmin(stub.url), "abogado-mx", modelfile, REPO / "models" / "abogado-mx")
    assert stub.state.bodies("/api/create") == [modelfile.create_request("abogado-mx")]
    assert stub.state.bodies("/api/create")[0]["from"] == "llama3.1:8b"
    assert "abogado-mx:latest" in stub.state.models


def test_create_model_reports_missing_base(ollama_factory: OllamaFactory) -> None:
    stub = ollama_factory()
    modelfile = parse_modelfile("FROM llama3.1:8b\n")
    with pytest.raises(BootstrapError, match=r"model 'llama3\.1:8b' not found"):
        create_model(OllamaAdmin(stub.url), "x", modelfile, REPO)


def test_create_model_from_file_uploads_adapter_once(
    ollama_factory: OllamaFactory, tmp_path: Path
) -> None:
    stub = ollama_factory({"llama3.1:8b"})
    adapter = tmp_path / "abogado-mx-lora.gguf"
    adapter.write_bytes(b"GGUF" + bytes(range(256)) * 64)
    digest = f"sha256:{hashlib.sha256(adapter.read_bytes()).hexdigest()}"
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text("FROM llama3.1:8b\nADAPTER ./abogado-mx-lora.gguf\nSYSTEM Eres abogado.\n")

    create_model_from_file([stub.url], "abogado-mx", modelfile)
    create_model_from_file([stub.url], "abogado-mx", modelfile)

    assert stub.state.blobs == {digest: adapter.read_bytes()}
    assert stub.state.count(f"/api/blobs/{digest}") == 3  # HEAD, POST, then HEAD only
    first, second = stub.state.bodies("/api/create")
    assert first == second
    assert first["adapters"] == {"abogado-mx-lora.gguf": digest}
    assert first["from"] == "llama3.1:8b"
    assert first["system"] == "Eres abogado."


def test_create_model_from_file_uploads_local_gguf_base(
    ollama_factory: OllamaFactory, tmp_path: Path
) -> None:
    stub = ollama_factory()
    (tmp_path / "base.gguf").write_bytes(b"GGUF-base")
    (tmp_path / "Modelfile").write_text("FROM ./base.gguf\n")
    create_model_from_file([stub.url], "local", tmp_path / "Modelfile")
    (body,) = stub.state.bodies("/api/create")
    assert "from" not in body
    assert body["files"] == {"base.gguf": f"sha256:{hashlib.sha256(b'GGUF-base').hexdigest()}"}


def test_create_model_missing_adapter_file_is_a_modelfile_error(
    ollama_factory: OllamaFactory, tmp_path: Path
) -> None:
    stub = ollama_factory({"llama3.1:8b"})
    (tmp_path / "Modelfile").write_text("FROM llama3.1:8b\nADAPTER ./no-such.gguf\n")
    with pytest.raises(ModelfileError, match=r"no-such\.gguf is not a file"):
        create_model_from_file([stub.url], "x", tmp_path / "Modelfile")
    assert stub.state.bodies("/api/create") == []


def test_prepare_ollama_pulls_bases_and_creates_every_custom_model(
    ollama_factory: OllamaFactory,
) -> None:
    stubs = [ollama_factory(), ollama_factory({"smollm2:135m"})]
    prepare_ollama(
        [s.url for s in stubs], pull=["abogado-mx", "qwen3:0.6b"], models_dir=REPO / "models"
    )
    custom = load_models(REPO / "models")
    for stub in stubs:
        pulled = {body["model"] for body in stub.state.bodies("/api/pull")}
        # abogado-mx is made here, not pulled; the bases of the custom models are pulled.
        assert "abogado-mx" not in pulled
        assert {"qwen3:0.6b", "llama3.1:8b"} <= pulled
        created = {body["model"]: body for body in stub.state.bodies("/api/create")}
        assert created == {name: m.create_request(name) for name, m in custom.items()}
    assert "smollm2:135m" not in {b["model"] for b in stubs[1].state.bodies("/api/pull")}


def test_main_probe_answers_zero_only_for_a_healthy_url(ollama_factory: OllamaFactory) -> None:
    up, down = ollama_factory(), ollama_factory(start=False)
    assert main(["probe", f"{up.url}/api/version"]) == 0
    assert main(["probe", f"{up.url}/no-such-page"]) == 1
    assert main(["probe", f"{down.url}/api/version"]) == 1


def test_main_probe_path_asks_the_local_server_on_port(
    ollama_factory: OllamaFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    stub = ollama_factory()
    monkeypatch.setenv("PORT", str(stub.server_address[1]))
    assert main(["probe", "/api/version"]) == 0
    assert stub.state.count("/api/version") == 1


def test_main_without_a_command_prints_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: python -m app.bootstrap ollama | probe URL|/PATH" in capsys.readouterr().err
