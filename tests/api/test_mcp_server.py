"""`/mcp`: the knowledge bases through the official MCP client, as each API key sees them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from app.main import create_app
from tests.fakes import ScriptedBackend
from tests.security.conftest import ALICE, BOB, MODEL, auth, secured
from tests.servers import serve_in_thread

ALICE_TEXT = "Alice's handbook: the llamas graze on the high plateau every morning."
BOB_TEXT = "Bob's handbook: the alpacas sleep in the barn beside the river."


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app with API keys under uvicorn, holding Alice's and Bob's collections."""
    tmp_path = tmp_path_factory.mktemp("mcp-server")
    backend = ScriptedBackend(pieces=("Llamas graze on the plateau [1].",), model=MODEL)
    with serve_in_thread(create_app(secured(tmp_path), backend=backend)) as url:
        with httpx.Client(base_url=url, timeout=120) as http:
            for key, name, text in (
                (ALICE, "handbook", ALICE_TEXT),
                (ALICE, "alice-only", ALICE_TEXT),
                (BOB, "handbook", BOB_TEXT),
            ):
                made = http.post("/api/rag/collections", json={"name": name}, headers=auth(key))
                assert made.status_code == 201, made.text
                body = {"documents": [{"text": text, "source": "handbook.txt"}]}
                put = http.post(
                    f"/api/rag/collections/{name}/documents", json=body, headers=auth(key)
                )
                assert put.status_code == 201, put.text
        yield url


@asynccontextmanager
async def mcp_client(url: str, key: str | None) -> AsyncIterator[Client]:
    """The official MCP client on `/mcp`, sending `key`."""
    headers = auth(key) if key else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(f"{url}/mcp", http_client=http), cache=None) as client,
    ):
        yield client


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> tuple[bool, Any]:
    """Whether the call failed, and its structured result (or its error text)."""
    result = await client.call_tool(tool, arguments)
    if result.is_error:
        return True, " ".join(getattr(block, "text", "") for block in result.content)
    return False, result.structured_content


async def test_mcp_server_offers_the_knowledge_tools(base_url: str) -> None:
    async with mcp_client(base_url, ALICE) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert sorted(tools) == ["ask", "list_collections", "search"]
    assert tools["search"].input_schema["required"] == ["collection", "query"]


async def test_mcp_server_each_key_sees_only_its_own_collections(base_url: str) -> None:
    async with mcp_client(base_url, ALICE) as alice, mcp_client(base_url, BOB) as bob:
        failed, listed = await call(alice, "list_collections", {})
        assert not failed
        assert [c["name"] for c in listed["collections"]] == ["alice-only", "handbook"]
        failed, listed = await call(bob, "list_collections", {})
        assert [c["name"] for c in listed["collections"]] == ["handbook"]

        # The same name, two collections: each key searches its own.
        for client, mine, theirs in ((alice, ALICE_TEXT, BOB_TEXT), (bob, BOB_TEXT, ALICE_TEXT)):
            failed, found = await call(client, "search", {"collection": "handbook", "query": "x"})
            assert not failed, found
            texts = [r["text"] for r in found["results"]]
            assert texts == [mine]
            assert theirs not in str(found)

        # Alice's other collection does not exist for Bob, whatever he asks.
        for tool, arguments in (
            ("search", {"collection": "alice-only", "query": "llamas"}),
            ("ask", {"collection": "alice-only", "question": "What do llamas do?"}),
        ):
            failed, error = await call(bob, tool, arguments)
            assert failed
            assert error == f"Error executing tool {tool}: collection 'alice-only' not found"
            assert "plateau" not in error


async def test_mcp_server_ask_gives_the_cited_answer(base_url: str) -> None:
    async with mcp_client(base_url, ALICE) as client:
        question = {"collection": "handbook", "question": "Where do the llamas graze?"}
        failed, answer = await call(client, "ask", question)
        assert not failed, answer
        assert answer["answer"].startswith("Llamas graze on the plateau [1].")
        assert [s["text"] for s in answer["sources"]] == [ALICE_TEXT]
        extractive = {**question, "answer_mode": "extractive"}
        failed, quoted = await call(client, "ask", extractive)
        assert not failed, quoted
        assert "plateau" in quoted["answer"]
        assert quoted["answer_mode"] == "extractive"


async def test_mcp_server_needs_a_valid_key_and_refuses_other_sites(base_url: str) -> None:
    for key in (None, "not-a-key-of-this-server-0000"):
        with pytest.raises(ExceptionGroup) as refused:  # anyio's task groups wrap it
            async with mcp_client(base_url, key) as client:
                await client.list_tools()
        assert refused.group_contains(MCPError)
    async with httpx.AsyncClient(base_url=base_url) as http:
        initialize = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
        raw = await http.post("/mcp", json=initialize, headers=auth(ALICE))
        assert raw.status_code != 401
        cross = await http.post(
            "/mcp",
            json=initialize,
            headers={
                **auth(ALICE),
                "Origin": "https://elsewhere.example",
                "Sec-Fetch-Site": "cross-site",
            },
        )
        assert cross.status_code == 403
        assert cross.json()["error"]["type"] == "cross_site_request"
        for key in (None, "not-a-key-of-this-server-0000"):
            refused_raw = await http.post("/mcp", json=initialize, headers=auth(key) if key else {})
            assert refused_raw.status_code == 401
            assert refused_raw.json()["error"]["type"] == "authentication_error"
