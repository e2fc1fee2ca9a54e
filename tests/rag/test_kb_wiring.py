"""kb:<collection> on /api/chat and /api/tags (checks the suggested ollama.py wiring)."""

from __future__ import annotations

import json

import httpx

from tests.rag.conftest import upload


async def test_kb_model_on_api_chat_and_tags(client: httpx.AsyncClient) -> None:
    await client.post("/api/rag/collections", json={"name": "zoo"})
    await upload(client, "zoo", ("llamas.txt", b"Llamas eat grass and hay."))
    tags = (await client.get("/api/tags")).json()["models"]
    assert "kb:zoo" in [m["name"] for m in tags]
    body = {"model": "kb:zoo", "messages": [{"role": "user", "content": "What do llamas eat?"}]}
    whole = (await client.post("/api/chat", json={**body, "stream": False})).json()
    assert whole["model"] == "kb:zoo"
    assert whole["sources"][0]["source"] == "llamas.txt"
    assert "[1] llamas.txt" in whole["message"]["content"]
    lines = [json.loads(x) for x in (await client.post("/api/chat", json=body)).text.splitlines()]
    assert lines[-1]["done"]
    assert lines[-1]["sources"][0]["source"] == "llamas.txt"
    assert all("sources" not in line for line in lines[:-1])


async def test_kb_model_on_v1_chat_completions_and_models(client: httpx.AsyncClient) -> None:
    await client.post("/api/rag/collections", json={"name": "zoo"})
    await upload(client, "zoo", ("llamas.txt", b"Llamas eat grass and hay."))
    models = (await client.get("/v1/models")).json()["data"]
    assert "kb:zoo" in [m["id"] for m in models]
    body = {"model": "kb:zoo", "messages": [{"role": "user", "content": "What do llamas eat?"}]}
    whole = (await client.post("/v1/chat/completions", json=body)).json()
    assert whole["sources"][0]["source"] == "llamas.txt"
    assert "[1] llamas.txt" in whole["choices"][0]["message"]["content"]
    streamed = (await client.post("/v1/chat/completions", json={**body, "stream": True})).text
    events = [json.loads(x[6:]) for x in streamed.split("\n\n") if x.startswith("data: {")]
    finish = [e for e in events if e["choices"] and e["choices"][0]["finish_reason"]]
    assert finish[0]["sources"][0]["source"] == "llamas.txt"
