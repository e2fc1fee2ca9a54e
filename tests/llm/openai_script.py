"""Servers speaking the OpenAI API: the real `llama_cpp.server` with SmolLM2, and a scripted one
that plays what the real one cannot (faults, usage, streamed tool calls, embeddings)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from app.llm.embedded import default_model_path
from tests.conftest import free_port

MODEL = "smollm2:135m"


@contextmanager
def llama_cpp_server() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`python -m llama_cpp.server` with the packaged SmolLM2 on a free port, killable;
    yields its `/v1` base URL and the child."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(default_model_path()),
        "--model_alias",
        MODEL,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_threads",
        "1",  # it shares the machine with the gateway and other servers
        "--n_ctx",
        "2048",
        # By default a new request (a health check's /v1/models too) cuts the one streaming.
        "--interrupt_requests",
        "false",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLAMARADA_")}
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("llama_cpp.server did not start")
            time.sleep(0.2)
        yield url, child
    finally:
        child.kill()
        child.wait()


@dataclass
class OpenAIScript:
    """What the scripted server does next; tests change it between requests."""

    pieces: list[str] = field(default_factory=lambda: ["Hi", " there"])
    models: list[str] = field(default_factory=lambda: [MODEL])
    status: int = 200
    finish_reason: str = "stop"
    usage: dict[str, int] | None = field(
        default_factory=lambda: {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
    )
    tool_fragments: list[dict[str, Any]] = field(default_factory=list)  # streamed deltas
    error_event: bool = False  # an error event instead of the pieces
    cut_after: int | None = None  # drop the connection after this many events
    delay: float = 0.0  # before each event
    closed_early: int = 0  # streams the client stopped reading
    embeddings: list[Any] | None = None  # `data[].embedding` values, in reverse index order
    bodies: list[dict[str, Any]] = field(default_factory=list)
    authorizations: list[str] = field(default_factory=list)


def scripted_openai(script: OpenAIScript) -> FastAPI:
    """The app under `/v1`; run it with `tests.servers.serve_in_thread`."""
    app = FastAPI()

    @app.middleware("http")
    async def record(request: Request, call_next: Any) -> Response:
        script.authorizations.append(request.headers.get("authorization", ""))
        response: Response = await call_next(request)
        return response

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": name, "object": "model", "owned_by": "test"} for name in script.models],
        }

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Response:
        body = await request.json()
        vectors = script.embeddings or [[float(i), 0.5] for i in range(len(body["input"]))]
        data = [
            {"object": "embedding", "index": index, "embedding": vector}
            for index, vector in reversed(list(enumerate(vectors)))
        ]
        return JSONResponse({"data": data, "usage": {"prompt_tokens": 3, "total_tokens": 3}})

    async def stream(request: Request, shape: str) -> Response:
        body = await request.json()
        script.bodies.append(body)
        if body.get("model") not in script.models:
            error = {"message": f"model {body.get('model')} does not exist", "type": "invalid"}
            return JSONResponse({"error": error}, 404)
        if script.status != 200:
            retry = {"Retry-After": "7"} if script.status in (429, 503) else None
            error = {"message": f"scripted {script.status}", "type": "scripted"}
            return JSONResponse({"error": error}, script.status, headers=retry)

        def event(data: object) -> bytes:
            return b"data: " + json.dumps(data).encode() + b"\n\n"

        def choice(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            if shape == "completion":
                return {"index": 0, "text": delta.get("content", ""), "finish_reason": finish}
            return {"index": 0, "delta": delta, "finish_reason": finish}

        async def events() -> AsyncIterator[bytes]:
            role = event({"choices": [choice({"role": "assistant"})]})
            frames: list[bytes] = [b": keep-alive\n\n", role]
            if script.error_event:
                frames.append(event({"error": {"message": "scripted failure"}}))
            frames += [event({"choices": [choice({"content": piece})]}) for piece in script.pieces]
            frames += [
                event({"choices": [choice({"tool_calls": [fragment]})]})
                for fragment in script.tool_fragments
            ]
            frames.append(event({"choices": [choice({}, script.finish_reason)]}))
            if script.usage is not None:
                frames.append(event({"choices": [], "usage": script.usage}))
            frames.append(b"data: [DONE]\n\n")
            finished = False
            try:
                for sent, frame in enumerate(frames):
                    if script.cut_after == sent:
                        raise ConnectionResetError("scripted cut")
                    yield frame
                    await asyncio.sleep(script.delay)
                finished = True
            finally:
                if not finished:
                    script.closed_early += 1

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await stream(request, "chat")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await stream(request, "completion")

    return app
