"""The OpenAI-compatible backend: one vLLM, llama.cpp, SGLang, TGI or LM Studio server, its
SSE streams turned into chunks and its errors into the project's, as the Ollama backend does."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncGenerator
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
from pydantic import SecretStr

from app.core.errors import (
    LlamaradaError,
    ModelNotFound,
    UpstreamError,
    UpstreamUnavailable,
)
from app.llm.base import ChatRequest, Chunk, Embeddings, GenerateRequest, ModelInfo
from app.llm.openai_params import ToolCallParts, chat_body, generate_body
from app.llm.upstream_http import UpstreamClient, status_error, streamed

# OpenAI's finish reasons as Ollama's done reasons (a tool call ends with "stop" there).
_DONE_REASONS = {"length": "length", "tool_calls": "stop", "function_call": "stop"}


class OpenAIBackend:
    """Speaks the OpenAI API (`/models`, `/chat/completions`, `/completions`, `/embeddings`)
    under one base URL such as `http://host:8000/v1`; always streams upstream."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: SecretStr | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 300.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.name = base_url
        headers = {"Authorization": f"Bearer {api_key.get_secret_value()}"} if api_key else {}
        self._client = UpstreamClient(
            base_url=base_url,
            headers=headers,
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            transport=transport,
        )
        self._connect_timeout = connect_timeout

    async def start(self) -> None:
        """Nothing to load: the server may come up later, and readiness reports it."""

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    def chat(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        """Stream `/chat/completions` from the server."""
        return self._stream("/chat/completions", request.model, chat_body(request))

    def generate(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]:
        """Stream a chat of one turn, or `/completions` for a raw prompt or a suffix."""
        path, body = generate_body(request)
        return self._stream(path, request.model, body)

    async def _stream(
        self, path: str, model: str, body: dict[str, Any]
    ) -> AsyncGenerator[Chunk, None]:
        started = time.perf_counter_ns()
        async with self._request("POST", path, model, json=body) as response:
            answered = False
            first_at = 0
            pieces = 0
            reason = None
            usage: dict[str, Any] = {}
            tools = ToolCallParts()
            try:
                async for line in response.aiter_lines():
                    data = _event(line)
                    if data is None:
                        continue
                    if data == "[DONE]":
                        reason = reason or "stop"
                        break
                    answered = True
                    usage = data.get("usage") or usage
                    for choice in data.get("choices") or []:
                        chunk, finish = _piece(choice, tools)
                        if finish:
                            reason = _DONE_REASONS.get(finish, "stop")
                        if chunk is not None:
                            first_at = first_at or time.perf_counter_ns()
                            pieces += 1
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
                raise UpstreamUnavailable(f"{self.name} ended the answer before its first event")
            if reason is None:  # neither a finish reason nor [DONE]: the answer was cut
                raise UpstreamError(f"{self.name} ended the answer before it finished")
        ended = time.perf_counter_ns()
        first_at = first_at or ended
        # Servers that send no usage (llama-cpp-python's) are counted a token per piece.
        yield Chunk(
            tool_calls=tools.calls(),
            done=True,
            done_reason=reason,
            prompt_eval_count=_count(usage.get("prompt_tokens")),
            eval_count=_count(usage.get("completion_tokens"), pieces),
            prompt_eval_duration=first_at - started,
            eval_duration=ended - first_at,
        )

    def _request(
        self, method: str, path: str, model: str = "", **kwargs: Any
    ) -> AbstractAsyncContextManager[httpx.Response]:
        """A streamed response with a 2xx status, or the project's error for what went wrong."""

        async def refused(response: httpx.Response) -> LlamaradaError:
            return await status_error(response, model, server=self.name, models=self.list_models)

        return streamed(self._client, method, path, where=self.name, refused=refused, **kwargs)

    async def embed(self, model: str, inputs: list[str], *, truncate: bool = True) -> Embeddings:
        """POST `/embeddings` (the server truncates, or refuses, as it is configured to)."""
        body = {"model": model, "input": inputs}
        data = await self._json("POST", "/embeddings", model, json=body)
        items = sorted(data.get("data") or [], key=lambda item: item.get("index", 0))
        vectors = [item.get("embedding") for item in items]
        if len(vectors) != len(inputs) or not all(_is_vector(v) for v in vectors):
            # Among them: one vector per token, as servers with no pooling send.
            raise UpstreamError(f"{self.name} sent embeddings that do not match the inputs")
        usage = data.get("usage") or {}
        return Embeddings(vectors=vectors, prompt_eval_count=_count(usage.get("prompt_tokens")))

    async def list_models(self) -> list[ModelInfo]:
        """GET `/models`."""
        data = await self._json("GET", "/models")
        models = []
        for item in data.get("data") or []:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                created = item.get("created")
                modified = (
                    time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))
                    if isinstance(created, int)
                    else ""
                )
                details = {"format": "", "family": "", "owned_by": item.get("owned_by", "")}
                models.append(ModelInfo(name=item["id"], modified_at=modified, details=details))
        return models

    async def show(self, model: str) -> dict[str, Any]:
        """What `/models` says, in Ollama's `/api/show` shape (the rest is the server's own)."""
        info = next((m for m in await self.list_models() if m.name == model), None)
        if info is None:
            raise ModelNotFound(model, [m.name for m in await self.list_models()])
        return {
            "modelfile": "",
            "parameters": "",
            "template": "",
            "details": info.details,
            "model_info": {},
            "capabilities": ["completion"],
            "modified_at": info.modified_at,
        }

    async def running(self) -> list[dict[str, Any]]:
        """The OpenAI API cannot tell what is loaded: no entries, so no routing preference."""
        return []

    async def check(self) -> None:
        """GET `/models` within the connect timeout."""
        await self._json("GET", "/models", timeout=self._connect_timeout)

    async def _json(self, method: str, path: str, model: str = "", **kwargs: Any) -> Any:
        async with self._request(method, path, model, **kwargs) as response:
            try:
                body = await response.aread()
            except httpx.RequestError as exc:  # cut before the whole answer: nothing used yet
                raise UpstreamUnavailable(f"{self.name} failed: {exc}") from None
        if not body.strip():
            raise UpstreamUnavailable(f"{self.name} sent an empty answer")
        try:
            data = json.loads(body)
        except ValueError:
            raise UpstreamError(f"{self.name} sent an answer that is not JSON") from None
        if not isinstance(data, dict):
            raise UpstreamError(f"{self.name} sent an unexpected answer")
        return data


def _event(line: str) -> Any:
    """One SSE line's data: a JSON object, "[DONE]", or None for other lines."""
    if not line.startswith("data:"):
        return None  # blank separators, comments (": ping"), `event:` names
    payload = line[5:].strip()
    if payload == "[DONE]":
        return payload
    try:
        data = json.loads(payload)
    except ValueError:
        raise UpstreamError("the upstream sent an event that is not JSON") from None
    if not isinstance(data, dict):
        raise UpstreamError("the upstream sent an event that is not an object")
    if "error" in data:
        error = data["error"]
        message = error.get("message") if isinstance(error, dict) else error
        raise UpstreamError(f"the upstream reported an error: {message}")
    return data


def _piece(choice: Any, tools: ToolCallParts) -> tuple[Chunk | None, str | None]:
    """A choice's text as a chunk (None when it has none) and its finish reason; tool-call
    fragments are gathered in `tools`, to go out whole with the last chunk."""
    if not isinstance(choice, dict):
        raise UpstreamError("the upstream sent a choice that is not an object")
    delta = choice.get("delta")
    if isinstance(delta, dict):
        content = delta.get("content") or ""
        thinking = delta.get("reasoning_content") or delta.get("reasoning") or ""
        if delta.get("tool_calls"):
            tools.add(delta["tool_calls"])
    else:  # `/completions` streams `text`
        content, thinking = choice.get("text") or "", ""
    if not isinstance(content, str) or not isinstance(thinking, str):
        raise UpstreamError("the upstream sent a delta whose content is not text")
    chunk = Chunk(content=content, thinking=thinking) if content or thinking else None
    return chunk, choice.get("finish_reason")


def _is_vector(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in value
    )


def _count(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and value >= 0 else default
