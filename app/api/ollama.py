"""Ollama-compatible routes: chat, generate, embeddings, models; model management refused."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app import __version__
from app.api.deps import ChatDep, CompletionsDep, ModelCallDep, PrincipalDep, get_principal
from app.api.errors import streamed
from app.api.responses import JSON, cache_headers, streamed_reply
from app.api.routing import JsonBodyRoute
from app.core.errors import Forbidden
from app.llm.base import ChatRequest, EmbedRequest, GenerateRequest
from app.llm.version import api_version
from app.wire.ollama import (
    LegacyEmbeddingsRequest,
    ShowRequest,
    chat_line,
    generate_line,
    lines,
    tag,
    whole,
)
from app.wire.stream import NDJSON, ndjson

router = APIRouter(tags=["ollama"], route_class=JsonBodyRoute)


@router.post("/api/chat", response_model=None, responses=streamed(NDJSON, "chunks, one per line"))
async def chat(body: ChatRequest, call: ModelCallDep) -> Response:
    """Chat with a model (`kb:<collection>` answers from a knowledge base); NDJSON if `stream`."""
    reply = await call.chat.chat(body, call.policy, caller=call.caller)
    if body.stream:
        return streamed_reply(reply, ndjson(lines(reply, chat_line)), NDJSON)
    return JSON(await whole(reply, chat_line), headers=cache_headers(reply))


@router.post(
    "/api/generate", response_model=None, responses=streamed(NDJSON, "chunks, one per line")
)
async def generate(body: GenerateRequest, call: ModelCallDep) -> Response:
    """Complete a prompt; streams NDJSON unless `stream` is false."""
    reply = await call.completions.generate(body, call.policy, caller=call.caller)
    if body.stream:
        return streamed_reply(reply, ndjson(lines(reply, generate_line)), NDJSON)
    return JSON(await whole(reply, generate_line), headers=cache_headers(reply))


@router.get("/api/tags")
async def tags(chats: ChatDep, caller: PrincipalDep) -> dict[str, Any]:
    """The models served, knowledge bases included as `kb:<collection>`, in Ollama's shape."""
    return {"models": [tag(info) for info in await chats.list_models(caller=caller)]}


@router.post("/api/embed")
async def embed(
    body: EmbedRequest, completions: CompletionsDep, caller: PrincipalDep
) -> dict[str, Any]:
    """Embed one text or several."""
    started = time.perf_counter_ns()
    result = await completions.embed(body.model, body.texts, truncate=body.truncate, caller=caller)
    vectors = result.vectors
    if body.dimensions:
        vectors = [vector[: body.dimensions] for vector in vectors]
    return {
        "model": result.model,
        "embeddings": vectors,
        "total_duration": time.perf_counter_ns() - started,
        "load_duration": 0,
        "prompt_eval_count": result.prompt_eval_count,
    }


@router.post("/api/embeddings")
async def embeddings(
    body: LegacyEmbeddingsRequest, completions: CompletionsDep, caller: PrincipalDep
) -> dict[str, list[float]]:
    """Embed one prompt (Ollama's older route)."""
    result = await completions.embed(body.model, [body.prompt], caller=caller)
    return {"embedding": result.vectors[0]}


@router.post("/api/show")
async def show(
    body: ShowRequest, completions: CompletionsDep, caller: PrincipalDep
) -> dict[str, Any]:
    """A model's details, template and parameters."""
    return await completions.show(body.model or body.name, caller=caller)


@router.get("/api/ps")
async def running(completions: CompletionsDep, caller: PrincipalDep) -> dict[str, Any]:
    """The models loaded now."""
    loaded = await completions.backend.running()
    return {"models": [m for m in loaded if caller.may_use(str(m.get("name", "")))]}


async def model_management(request: Request) -> Response:
    """Ollama's model-management routes are not proxied: nobody pulls or deletes through here."""
    # Not even with an admin key: pulls and pushes are long transfers to and from registries, a
    # pool of servers has no one place to create or delete a model, and operators manage models
    # beside the gateway (start.sh, `llamarada models create`), Ollama's port kept private.
    if not (await get_principal(request)).admin:
        raise Forbidden(f"{request.url.path} is model management: it needs an admin key")
    raise Forbidden(f"{request.url.path} is model management, which this gateway does not proxy")


for _path, _methods in (
    ("/api/pull", ["POST"]),
    ("/api/push", ["POST"]),
    ("/api/create", ["POST"]),
    ("/api/copy", ["POST"]),
    ("/api/delete", ["DELETE"]),
    ("/api/blobs/{digest}", ["HEAD", "POST"]),
):
    router.add_api_route(_path, model_management, methods=_methods, include_in_schema=False)


@router.get("/api/version")
async def version(completions: CompletionsDep) -> JSON:
    """The Ollama API version served (the pool's lowest upstream's, with Ollama upstreams), and
    the gateway's own version in `llamarada_version` and the `X-Llamarada-Version` header."""
    body = {"version": api_version(completions.backend), "llamarada_version": __version__}
    return JSON(body, headers={"X-Llamarada-Version": __version__})
