"""Ollama-compatible routes: chat, generate, embeddings, models; model management refused."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict

from app import __version__
from app.api.deps import CachePolicyDep, CompletionsDep, PrincipalDep, RagDep, get_principal
from app.api.errors import streamed
from app.core.errors import Forbidden, LlamaradaError
from app.llm.base import ChatRequest, Chunk, EmbedRequest, GenerateRequest, Options
from app.llm.completions import Reply
from app.rag.answer import KnowledgeReply, is_kb_model

router = APIRouter(tags=["ollama"])
logger = logging.getLogger(__name__)

NDJSON = "application/x-ndjson"
_STATS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)

Shape = Callable[[str, Chunk], dict[str, Any]]


@router.post("/api/chat", response_model=None, responses=streamed(NDJSON, "chunks, one per line"))
async def chat(
    body: ChatRequest,
    completions: CompletionsDep,
    policy: CachePolicyDep,
    rag: RagDep,
    caller: PrincipalDep,
) -> Response:
    """Chat with a model (`kb:<collection>` answers from a knowledge base); NDJSON if `stream`."""
    if is_kb_model(body.model):
        reply: Reply = await rag.answers.rag_chat(body, policy, caller=caller)
    else:
        reply = await completions.chat(body, policy, caller=caller)
    return await _respond(reply, body.stream, _chat_line)


@router.post(
    "/api/generate", response_model=None, responses=streamed(NDJSON, "chunks, one per line")
)
async def generate(
    body: GenerateRequest, completions: CompletionsDep, policy: CachePolicyDep, caller: PrincipalDep
) -> Response:
    """Complete a prompt; streams NDJSON unless `stream` is false."""
    reply = await completions.generate(body, policy, caller=caller)
    return await _respond(reply, body.stream, _generate_line)


@router.get("/api/tags")
async def tags(completions: CompletionsDep, rag: RagDep, caller: PrincipalDep) -> dict[str, Any]:
    """The models served, knowledge bases included as `kb:<collection>`, in Ollama's shape."""
    models = [*await completions.list_models(), *await rag.answers.list_kb_models(caller=caller)]
    return {
        "models": [
            {
                "name": info.name,
                "model": info.name,
                "modified_at": info.modified_at,
                "size": info.size,
                "digest": info.digest,
                "details": info.details,
            }
            for info in models
            if caller.may_use(info.name)
        ]
    }


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


class LegacyEmbeddingsRequest(BaseModel):
    """The deprecated `/api/embeddings` request: one prompt."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = ""
    prompt: str
    options: Options | None = None
    keep_alive: str | float | None = None


@router.post("/api/embeddings")
async def embeddings(
    body: LegacyEmbeddingsRequest, completions: CompletionsDep, caller: PrincipalDep
) -> dict[str, list[float]]:
    """Embed one prompt (Ollama's older route)."""
    result = await completions.embed(body.model, [body.prompt], caller=caller)
    return {"embedding": result.vectors[0]}


class ShowRequest(BaseModel):
    """`/api/show`: the model by `model` (or the older `name`)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = ""
    name: str = ""
    verbose: bool = False


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
    if not get_principal(request).admin:
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
async def version() -> dict[str, str]:
    """The server's version, as Ollama reports its own."""
    return {"version": __version__}


async def _respond(reply: Reply, stream: bool, shape: Shape) -> Response:
    headers = {"X-Cache": reply.cache.value}
    if stream:
        return StreamingResponse(_ndjson(reply, shape), media_type=NDJSON, headers=headers)
    chunks = [chunk async for chunk in reply.chunks]
    body = {**shape(reply.model, merge_chunks(chunks)), **_sources(reply)}
    return JSONResponse(body, headers=headers)


async def _ndjson(reply: Reply, shape: Shape) -> AsyncIterator[bytes]:
    """One JSON object per line; an error after the first byte becomes an `error` line."""
    try:
        async for chunk in reply.chunks:
            line = shape(reply.model, chunk)
            yield _line({**line, **_sources(reply)} if chunk.done else line)
    except LlamaradaError as exc:
        yield _line({"error": exc.message})
    except Exception:
        logger.exception("stream failed")
        yield _line({"error": "internal error; see the server log"})


def _sources(reply: Reply) -> dict[str, Any]:
    """A knowledge-base answer's sources, for its last line or its whole body."""
    if isinstance(reply, KnowledgeReply):
        return {"sources": [source.model_dump(mode="json") for source in reply.sources]}
    return {}


def merge_chunks(chunks: list[Chunk]) -> Chunk:
    """One chunk holding a whole answer: the text joined, the counters of the last."""
    last = chunks[-1]
    tool_calls = [call for chunk in chunks for call in chunk.tool_calls or []]
    merged = Chunk(
        content="".join(chunk.content for chunk in chunks),
        thinking="".join(chunk.thinking for chunk in chunks),
        tool_calls=tool_calls or None,
        done=True,
        done_reason=last.done_reason,
    )
    for name in _STATS:
        setattr(merged, name, getattr(last, name))
    return merged


def _chat_line(model: str, chunk: Chunk) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": chunk.content}
    if chunk.thinking:
        message["thinking"] = chunk.thinking
    if chunk.tool_calls:
        message["tool_calls"] = chunk.tool_calls
    return _with_stats({"model": model, "created_at": _now(), "message": message}, chunk)


def _generate_line(model: str, chunk: Chunk) -> dict[str, Any]:
    line: dict[str, Any] = {"model": model, "created_at": _now(), "response": chunk.content}
    if chunk.thinking:
        line["thinking"] = chunk.thinking
    return _with_stats(line, chunk)


def _with_stats(line: dict[str, Any], chunk: Chunk) -> dict[str, Any]:
    line["done"] = chunk.done
    if chunk.done:
        line["done_reason"] = chunk.done_reason or "stop"
        for name in _STATS:
            line[name] = getattr(chunk, name)
    return line


def _line(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode() + b"\n"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
