"""Traces of a knowledge-base answer and an agent run, sent as real OTLP/HTTP protobuf."""

from __future__ import annotations

from app.core.config import Settings
from app.main import create_app
from tests.agent.scripted import AgentScript, tool_call
from tests.conftest import app_client
from tests.fakes import ScriptedBackend
from tests.otlp import OtlpReceiver
from tests.rag.conftest import upload

MODEL = "scripted:1b"


async def test_kb_answer_trace_shows_each_retrieval_stage(
    settings: Settings, otlp: OtlpReceiver
) -> None:
    backend = ScriptedBackend(pieces=("Grass", " [1]."), model=MODEL)
    app = create_app(settings.model_copy(update={"default_model": MODEL}), backend=backend)
    async with app_client(app) as client:
        await client.post("/api/rag/collections", json={"name": "zoo"})
        await upload(client, "zoo", ("llamas.txt", b"Llamas eat grass and hay."))
        body = {"model": "kb:zoo", "messages": [{"role": "user", "content": "What do llamas eat?"}]}
        response = await client.post("/api/chat", json={**body, "stream": False})
        assert response.status_code == 200, response.text
    answer = otlp.tree("POST /api/chat").child("chat kb:zoo")
    assert answer.attributes["gen_ai.provider.name"] == "llamarada.rag"
    assert answer.attributes["gen_ai.request.model"] == "kb:zoo"
    assert answer.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    retrieve = answer.child("llamarada.rag.retrieve")
    assert sorted(c.name for c in retrieve.children) == [
        "llamarada.rag.candidates",
        "llamarada.rag.embed",
        "llamarada.rag.rerank",
    ]
    first_stage = retrieve.child("llamarada.rag.candidates")
    assert sorted(c.name for c in first_stage.children) == [
        "llamarada.rag.lexical_search",
        "llamarada.rag.vector_search",
    ]
    model = answer.child(f"chat {MODEL}")  # the model that wrote the answer, under the kb's
    assert model.attributes["gen_ai.usage.output_tokens"] == 2
    assert [c.name for c in model.children] == ["llamarada.cache.lookup"]
    assert "llamarada.rag.retrieve" not in [d.name for d in model.descendants()]


async def test_agent_trace_has_each_model_turn_and_tool_call(
    settings: Settings, otlp: OtlpReceiver
) -> None:
    script = AgentScript([[tool_call("calculator", expression="6*7")], "It is 42."], model=MODEL)
    app = create_app(settings.model_copy(update={"default_model": MODEL}), backend=script)
    async with app_client(app) as client:
        body = {"input": "What is 6 times 7?", "tools": ["calculator"]}
        response = await client.post("/api/agent", json=body)
        assert response.status_code == 200, response.text
    assert response.json()["output"] == "It is 42."
    run = otlp.tree("POST /api/agent").child("invoke_agent")
    assert run.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert run.attributes["gen_ai.request.model"] == MODEL
    # In the order they ran: the model asks for the tool, the tool runs, the model answers.
    ordered = sorted(run.children, key=lambda span: span.start)
    assert [span.name for span in ordered] == [
        f"chat {MODEL}",
        "execute_tool calculator",
        f"chat {MODEL}",
    ]
    tool = ordered[1]
    assert tool.attributes == {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "calculator",
    }
    assert not tool.error
