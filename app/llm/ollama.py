"""The Ollama backend: an async client for one Ollama server, errors mapped to the project's."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx

from app.core.errors import (
    LlamaradaError,
    UpstreamError,
    UpstreamUnavailable,
)
from app.llm.base import STATS, ChatRequest, Chunk, Embeddings, GenerateRequest, ModelInfo
from app.llm.upstream_http import UpstreamClient, status_error, streamed

_DONE_FIELDS = ("done_reason", *STATS)


class OllamaBackend:
    """Speaks Ollama's HTTP API to one server; always streams upstream, NDJSON line by line."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 300.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = base_url
        self._client = UpstreamClient(
            base_url=base_url,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            transport=transport,
        )
        self._connect_timeout = connect_timeout
        self.version: str | None = None  # the server's `/api/version`, as last checked

    async def start(self) -> None:
        """Nothing to load: the server may come up later, and readiness reports it."""

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    def chat(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        """Stream `/api/chat` from the server."""
        return self._stream("/api/chat", request.model, _upstream_body(request), "message")

    def generate(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]:
        """Stream `/api/generate` from the server."""
        return self._stream("/api/generate", request.model, _upstream_body(request), "response")

    async def _stream(
        self, path: str, model: str, body: dict[str, Any], shape: str
    ) -> AsyncGenerator[Chunk, None]:
        async with self._request("POST", path, model, json=body) as response:
            answered = False
            try:
                async for line in response.aiter_lines():
                    if line.strip():
                        chunk = _chunk(_parse_line(line), shape)
                        answered = True
                        yield chunk
            except httpx.TimeoutException:
                raise UpstreamUnavailable(f"{self.name} stopped sending mid-answer") from None
            except httpx.RequestError as exc:
                if not answered:  # nothing of the answer came: another server may take it
                    raise UpstreamUnavailable(
                        f"{self.name} dropped the connection before answering: {exc}"
                    ) from None
                raise UpstreamError(f"{self.name} cut the answer short: {exc}") from None
            if not answered:
                raise UpstreamUnavailable(f"{self.name} ended the answer before its first line")

    def _request(
        self, method: str, path: str, model: str = "", **kwargs: Any
    ) -> AbstractAsyncContextManager[httpx.Response]:
        """A streamed response with a 2xx status, or the project's error for what went wrong."""

        async def refused(response: httpx.Response) -> LlamaradaError:
            return await status_error(response, model, server="Ollama", models=self.list_models)

        return streamed(
            self._client, method, path, where=f"Ollama at {self.name}", refused=refused, **kwargs
        )

    async def embed(self, model: str, inputs: list[str], *, truncate: bool = True) -> Embeddings:
        """POST `/api/embed`."""
        body = {"model": model, "input": inputs, "truncate": truncate}
        data = await self._json("POST", "/api/embed", model, json=body)
        return Embeddings(
            vectors=data.get("embeddings", []), prompt_eval_count=data.get("prompt_eval_count", 0)
        )

    async def list_models(self) -> list[ModelInfo]:
        """GET `/api/tags`."""
        data = await self._json("GET", "/api/tags")
        return [
            ModelInfo(
                name=item.get("name") or item.get("model", ""),
                size=item.get("size", 0),
                digest=item.get("digest", ""),
                modified_at=item.get("modified_at", ""),
                details=item.get("details") or {},
            )
            for item in data.get("models") or []
        ]

    async def show(self, model: str) -> dict[str, Any]:
        """POST `/api/show`."""
        data: dict[str, Any] = await self._json("POST", "/api/show", model, json={"model": model})
        return data

    async def running(self) -> list[dict[str, Any]]:
        """GET `/api/ps`."""
        models: list[dict[str, Any]] = (await self._json("GET", "/api/ps")).get("models") or []
        return models

    async def check(self) -> None:
        """GET `/api/version` within the connect timeout, and remember the version."""
        data = await self._json("GET", "/api/version", timeout=self._connect_timeout)
        self.version = str(data.get("version") or "") or None

    async def _json(self, method: str, path: str, model: str = "", **kwargs: Any) -> Any:
        async with self._request(method, path, model, **kwargs) as response:
            try:
                body = await response.aread()
            except httpx.RequestError as exc:  # cut before the whole answer: nothing used yet
                raise UpstreamUnavailable(f"Ollama at {self.name} failed: {exc}") from None
        if not body.strip():
            raise UpstreamUnavailable(f"Ollama at {self.name} sent an empty answer")
        data = _parse_line(body)
        if not isinstance(data, dict):
            raise UpstreamError(f"Ollama at {self.name} sent an unexpected answer")
        return data


def _upstream_body(request: ChatRequest | GenerateRequest) -> dict[str, Any]:
    body = request.model_dump(exclude_none=True)
    body["stream"] = True
    return body


def _parse_line(line: str | bytes) -> Any:
    try:
        data = json.loads(line)
    except ValueError:
        raise UpstreamError("Ollama sent a line that is not JSON") from None
    if isinstance(data, dict) and "error" in data:
        raise UpstreamError(f"Ollama reported an error: {data['error']}")
    return data


def _chunk(data: dict[str, Any], shape: str) -> Chunk:
    if shape == "message":
        message = data.get("message") or {}
        content, thinking = message.get("content", ""), message.get("thinking", "")
        tool_calls = message.get("tool_calls")
    else:
        content, thinking, tool_calls = data.get("response", ""), data.get("thinking", ""), None
    if tool_calls is not None and not (
        isinstance(tool_calls, list) and all(isinstance(call, dict) for call in tool_calls)
    ):
        raise UpstreamError("Ollama sent tool_calls that are not a list of objects")
    if not isinstance(content, str) or not isinstance(thinking, str | None):
        raise UpstreamError("Ollama sent a message whose content is not text")
    chunk = Chunk(content=content or "", thinking=thinking or "", tool_calls=tool_calls or None)
    if data.get("done"):
        chunk.done = True
        for name in _DONE_FIELDS:
            if data.get(name) is not None:
                setattr(chunk, name, data[name])
    return chunk
