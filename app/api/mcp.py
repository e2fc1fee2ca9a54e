"""`/mcp`: the caller's knowledge bases as an MCP server (streamable HTTP, the official `mcp` SDK).

Three tools: `list_collections`, `search` (passages with their scores) and `ask` (the cited
answer `/api/rag/query` gives). The endpoint sits behind the same middleware as `/api` and
`/v1`: the caller is the API key's (AccessMiddleware, with its quotas), cross-site writes are
refused (OriginCheckMiddleware), the Host header is checked (HostCheckMiddleware); so the SDK's
own host and origin checks are off rather than a second, different list. Every tool asks the
knowledge-base service as that caller, so another key's collection does not exist here either.

The server is stateless (each POST carries one JSON-RPC exchange, answered as JSON): nothing
is kept between requests, and any worker process can answer any of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import FastAPI
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import Field
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from app import __version__
from app.core.auth import Principal
from app.core.cache import CachePolicy
from app.core.errors import LlamaradaError, Unauthorized, UpstreamUnavailable
from app.rag.build import Rag
from app.rag.schemas import QueryRequest, QueryResponse, SearchRequest

PATH = "/mcp"
Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

CollectionName = Annotated[
    str, Field(min_length=3, max_length=512, description="the collection's name")
]


def _caller(ctx: Context) -> tuple[Rag, Principal]:
    """The app's knowledge bases and the caller AccessMiddleware found (fail closed)."""
    request = ctx.request_context.request
    principal = getattr(request.state, "principal", None) if isinstance(request, Request) else None
    if not isinstance(request, Request) or not isinstance(principal, Principal):
        raise ToolError(Unauthorized("an API key is needed").message)
    rag: Rag = request.app.state.rag
    return rag, principal


def build_server() -> MCPServer:
    """The MCP server and its three tools."""
    server = MCPServer(
        "llamarada",
        version=__version__,
        instructions=(
            "Knowledge bases of this Llamarada gateway: list the collections, search one for "
            "passages, or ask one a question and get an answer citing its sources."
        ),
    )

    @server.tool()
    async def list_collections(ctx: Context) -> dict[str, Any]:
        """The knowledge bases (collections) you can search and ask, with their sizes."""
        rag, caller = _caller(ctx)
        try:
            found = await rag.knowledge.list_collections(caller=caller)
        except LlamaradaError as exc:
            raise ToolError(exc.message) from None
        return {
            "collections": [
                {"name": c.name, "documents": c.documents, "chunks": c.chunks} for c in found
            ]
        }

    @server.tool()
    async def search(
        collection: CollectionName,
        query: Annotated[str, Field(min_length=1, max_length=4000)],
        ctx: Context,
        k: Annotated[int, Field(ge=1, le=50)] = 5,
    ) -> dict[str, Any]:
        """The passages of a collection that best match a query, best first, with scores."""
        rag, caller = _caller(ctx)
        try:
            found = await rag.knowledge.search(
                collection, SearchRequest(query=query, k=k), caller=caller
            )
        except LlamaradaError as exc:
            raise ToolError(exc.message) from None
        return {
            "results": [
                {"text": r.text, "source": r.source, "score": r.score, "page": r.page}
                for r in found.results
            ]
        }

    @server.tool()
    async def ask(
        collection: CollectionName,
        question: Annotated[str, Field(min_length=1, max_length=4000)],
        ctx: Context,
        answer_mode: Literal["generative", "extractive"] = "generative",
    ) -> QueryResponse:
        """An answer to a question from a collection, citing its sources as [n]."""
        rag, caller = _caller(ctx)
        body = QueryRequest(collection=collection, question=question, answer_mode=answer_mode)
        try:
            started = await rag.answers.start(body, CachePolicy(), caller=caller)
            return await rag.answers.collect(started)
        except LlamaradaError as exc:
            raise ToolError(exc.message) from None

    return server


class McpEndpoint:
    """`/mcp` in the app: a route to the SDK's transport, run by the app's lifespan."""

    def __init__(self) -> None:
        self.server = build_server()
        self._handle: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None

    def mount(self, app: FastAPI) -> None:
        """Add the route (before any catch-all route)."""
        # `self`, not a function: Starlette hands an ASGI object the raw request.
        app.router.routes.append(Route(PATH, self, methods=["GET", "POST", "DELETE"]))

    def around(self, lifespan: Lifespan) -> Lifespan:
        """The app's lifespan with the transport running inside it (one fresh per start)."""

        @asynccontextmanager
        async def both(app: FastAPI) -> AsyncIterator[None]:
            self.server.streamable_http_app(
                stateless_http=True,
                json_response=True,
                transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            )
            manager = self.server.session_manager
            async with manager.run(), lifespan(app):
                self._handle = manager.handle_request
                try:
                    yield
                finally:
                    self._handle = None

        return both

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hand the request to the SDK's transport."""
        handle = self._handle
        if handle is None:  # the app is starting or stopping
            raise UpstreamUnavailable("the MCP endpoint is not running")
        await handle(scope, receive, send)
