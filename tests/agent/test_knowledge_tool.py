"""`knowledge_search` over a real knowledge base (embedded Chroma, the MiniLM embedder)."""

from __future__ import annotations

import httpx
import pytest

from app.agent.tools.base import ToolError
from app.agent.tools.knowledge import knowledge_tool
from app.core.auth import ANONYMOUS
from app.core.config import Settings
from app.main import create_app
from tests.agent.scripted import AgentScript, react
from tests.conftest import app_client

LLAMAS = b"Llamas live in the Andes. They eat grass and hay, and they hum to each other."
TAXES = "El ISR es un impuesto federal en México que grava los ingresos de las personas."


async def add(client: httpx.AsyncClient, collection: str, text: str, source: str) -> None:
    """Create a collection holding one text document."""
    assert (await client.post("/api/rag/collections", json={"name": collection})).is_success
    body = {"documents": [{"text": text, "source": source}]}
    response = await client.post(f"/api/rag/collections/{collection}/documents", json=body)
    assert response.is_success, response.text


async def test_knowledge_search_agent_cites_the_passage(settings: Settings) -> None:
    script = AgentScript(
        [
            react("knowledge_search", "What do llamas eat?"),
            "Thought: I know it now.\nFinal Answer: Grass and hay [1].",
        ],
        native_tools=False,
    )
    app = create_app(settings.model_copy(update={"default_model": script.model}), backend=script)
    async with app_client(app) as client:
        await add(client, "animals", LLAMAS.decode(), "llamas.txt")
        body = {"input": "What do llamas eat?", "tools": ["knowledge_search"]}
        result = (await client.post("/api/agent", json=body)).json()
    (step,) = result["steps"]
    assert step["tool"] == "knowledge_search"
    assert step["arguments"] == {"query": "What do llamas eat?"}
    assert step["result"].startswith("[1] llamas.txt: Llamas live in the Andes.")
    assert result["output"] == "Grass and hay [1]."
    # The passage went back to the model as the observation.
    assert "eat grass and hay" in script.requests[1].messages[-1].content


async def test_knowledge_search_needs_a_collection_name_when_there_are_several(
    settings: Settings,
) -> None:
    app = create_app(settings)
    async with app_client(app) as client:
        tool = knowledge_tool(app.state.rag.knowledge).bound(ANONYMOUS)
        with pytest.raises(ToolError, match="no knowledge base yet"):
            await tool.run({"query": "llamas"})
        await add(client, "animals", LLAMAS.decode(), "llamas.txt")
        assert "llamas.txt" in str(await tool.run({"query": "What do llamas eat?"}))
        await add(client, "impuestos", TAXES, "isr.txt")
        with pytest.raises(ToolError, match="animals, impuestos"):
            await tool.run({"query": "llamas"})
        spanish = await tool.run({"query": "¿Qué es el ISR?", "collection": "impuestos"})
        assert "[1] isr.txt" in str(spanish)
        with pytest.raises(ToolError, match="knowledge_search"):
            await tool.run({"query": "x", "collection": "missing-one"})
        with pytest.raises(ToolError, match="unexpected argument"):
            await tool.run({"query": "x", "path": "/etc/passwd"})
