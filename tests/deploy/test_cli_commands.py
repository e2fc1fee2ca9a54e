"""`llamarada finetune prepare` and `llamarada models create` as a user types them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli import main
from tests.deploy.ollama_stub import OllamaFactory

DATA = Path(__file__).resolve().parents[1] / "data" / "finetune"
REPO = Path(__file__).resolve().parents[2]


def test_cli_finetune_prepare_writes_training_jsonl(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "train.jsonl"
    assert main(["finetune", "prepare", str(DATA / "good.csv"), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows
    assert all(row["text"].startswith("<|begin_of_text|>") for row in rows)
    assert "train" in capsys.readouterr().out


def test_cli_finetune_prepare_chatml_with_validation(tmp_path: Path) -> None:
    out = tmp_path / "train.jsonl"
    args = ["finetune", "prepare", str(DATA / "good.jsonl"), "-o", str(out)]
    assert main([*args, "--template", "chatml", "--validation", "0.3"]) == 0
    assert out.read_text().startswith('{"text": "<|im_start|>')
    assert (tmp_path / "train.validation.jsonl").is_file()


def test_cli_finetune_prepare_strict_fails_on_bad_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["finetune", "prepare", str(DATA / "bad.csv"), "-o", str(tmp_path / "o.jsonl")]
    assert main([*args, "--strict"]) == 1
    assert "line" in capsys.readouterr().err


def test_cli_models_create_sends_the_modelfile(
    ollama_factory: OllamaFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    stub = ollama_factory({"llama3.1:8b"})
    monkeypatch.setenv("LLAMARADA_OLLAMA_URLS", stub.url)
    modelfile = REPO / "models" / "abogado-mx" / "Modelfile"
    assert main(["models", "create", "abogado-mx", "-f", str(modelfile)]) == 0
    (body,) = stub.state.bodies("/api/create")
    assert body["model"] == "abogado-mx"
    assert body["from"] == "llama3.1:8b"
    assert body["parameters"]["num_ctx"] == 4096
    assert "derecho corporativo mexicano" in body["system"]


def test_cli_models_create_unreachable_ollama_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.conftest import free_port

    monkeypatch.setenv("LLAMARADA_OLLAMA_URLS", f"http://127.0.0.1:{free_port()}")
    modelfile = REPO / "models" / "abogado-mx" / "Modelfile"
    assert main(["models", "create", "abogado-mx", "-f", str(modelfile)]) == 1
    assert "llamarada models:" in capsys.readouterr().err
