"""Custom models from Modelfiles, applied by the gateway in embedded mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.config import Settings
from app.llm.aliases import AliasedBackend
from app.llm.modelfile import load_models
from app.main import create_app
from tests.conftest import app_client
from tests.fakes import ScriptedBackend

REPO_MODELS = Path(__file__).resolve().parents[2] / "models"


def write(models: Path, name: str, text: str) -> None:
    """A Modelfile at models/<name>/Modelfile."""
    (models / name).mkdir(parents=True)
    (models / name / "Modelfile").write_text(text)


@pytest.fixture
def models(settings: Settings) -> Path:
    """Two custom models: one on the served model, one on a model served elsewhere."""
    folder = settings.models_dir
    write(
        folder,
        "tutor",
        'FROM scripted:1b\nPARAMETER temperature 0.3\nPARAMETER stop "END"\n'
        'SYSTEM """You teach."""\nMESSAGE user Hi\nMESSAGE assistant Hello, student.\n',
    )
    write(folder, "abogado", "FROM llama3.1:8b\nSYSTEM Eres abogado.\n")
    return folder


async def aliased(backend: ScriptedBackend, models: Path) -> AliasedBackend:
    """The scripted backend with the Modelfiles on top, started."""
    started = AliasedBackend(backend, load_models(models))
    await started.start()
    return started


async def test_alias_is_listed_and_applies_its_modelfile(settings: Settings, models: Path) -> None:
    backend = ScriptedBackend()
    async with app_client(create_app(settings, backend=await aliased(backend, models))) as client:
        tags = [m["name"] for m in (await client.get("/api/tags")).json()["models"]]
        assert tags == ["scripted:1b", "tutor:latest"]  # abogado's base is not served here
        body = {"model": "tutor", "messages": [{"role": "user", "content": "2+2?"}]}
        answer = await client.post("/api/chat", json={**body, "stream": False})
        assert answer.json()["model"] == "tutor:latest"
        own = {**body, "options": {"temperature": 0.9}, "stream": False}
        await client.post("/api/chat", json=own)
        missing = await client.post("/api/chat", json={**body, "model": "abogado"})
        assert missing.status_code == 404
    first, second = backend.requests
    assert first.model == second.model == "scripted:1b"
    assert [(m.role, m.content) for m in first.messages] == [  # type: ignore[union-attr]
        ("system", "You teach."),
        ("user", "Hi"),
        ("assistant", "Hello, student."),
        ("user", "2+2?"),
    ]
    assert first.options is not None
    assert first.options.temperature == 0.3
    assert first.options.stop == ["END"]
    assert second.options is not None
    assert second.options.temperature == 0.9  # the request's own options win


async def test_alias_keeps_a_request_system_prompt(settings: Settings, models: Path) -> None:
    backend = ScriptedBackend()
    async with app_client(create_app(settings, backend=await aliased(backend, models))) as client:
        messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "x"}]
        await client.post("/api/chat", json={"model": "tutor", "messages": messages})
        await client.post("/api/generate", json={"model": "tutor", "prompt": "y"})
    chat, generate = backend.requests
    assert [m.content for m in chat.messages][:1] == ["Be brief."]  # type: ignore[union-attr]
    assert generate.system == "You teach."  # type: ignore[union-attr]


async def test_repository_modelfiles_on_the_real_model(settings: Settings) -> None:
    settings = settings.model_copy(update={"models_dir": REPO_MODELS})
    async with app_client(create_app(settings)) as client:
        names = [m["name"] for m in (await client.get("/api/tags")).json()["models"]]
        assert "asistente:latest" in names
        assert "abogado-mx:latest" not in names  # FROM llama3.1:8b: created in Ollama instead
        shown = (await client.post("/api/show", json={"model": "asistente"})).json()
        assert "asistente" in shown["system"].lower() or "útil" in shown["system"]
        body = {
            "model": "asistente",
            "messages": [{"role": "user", "content": "Hola"}],
            "options": {"num_predict": 4},
            "stream": False,
        }
        answer = await client.post("/api/chat", json=body)
        assert answer.status_code == 200
        assert answer.json()["message"]["content"]
