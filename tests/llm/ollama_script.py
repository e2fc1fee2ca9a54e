"""A scripted server speaking Ollama's HTTP API, to play the faults a real one can have."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse


@dataclass
class Script:
    """What the server does next; tests change it between requests."""

    pieces: list[str] = field(default_factory=lambda: ["Hi", " there", "!"])
    status: int = 200
    error_line_after: int | None = None  # send {"error": ...} inside the 200 stream
    cut_after: int | None = None  # drop the connection after this many pieces
    delay: float = 0.0  # before each piece
    models: list[str] = field(default_factory=lambda: ["llama3.2:1b"])
    loaded: list[str] = field(default_factory=list)
    tool_calls: list[Any] | None = None  # sent with the first piece
    refuse_tools: bool = False  # answer `tools` as Ollama does for a model without them
    bodies: list[dict[str, Any]] = field(default_factory=list)
    closed_early: int = 0  # streams the client stopped reading
    version: str = "0.12.0"  # what `/api/version` answers


def scripted_ollama(script: Script) -> FastAPI:
    """The app; run it with `tests.servers.serve_in_thread`."""
    app = FastAPI()

    @app.get("/api/version")
    async def version() -> dict[str, str]:
        return {"version": script.version}

    @app.get("/api/tags")
    async def tags() -> dict[str, Any]:
        return {
            "models": [
                {"name": name, "model": name, "size": 1, "digest": "d", "details": {}}
                for name in script.models
            ]
        }

    @app.get("/api/ps")
    async def ps() -> dict[str, Any]:
        return {"models": [{"name": name, "model": name} for name in script.loaded]}

    @app.post("/api/embed")
    async def embed(request: Request) -> dict[str, Any]:
        body = await request.json()
        return {"embeddings": [[0.5, 0.5] for _ in body["input"]], "prompt_eval_count": 2}

    async def answer(request: Request, shape: str) -> Response:
        body = await request.json()
        script.bodies.append(body)
        if body.get("model") not in script.models:
            return JSONResponse({"error": f"model '{body.get('model')}' not found"}, 404)
        if script.refuse_tools and body.get("tools"):
            error = f"registry.ollama.ai/library/{body['model']} does not support tools"
            return JSONResponse({"error": error}, 400)
        if script.status != 200:
            return JSONResponse(
                {"error": f"scripted {script.status}"},
                script.status,
                headers={"Retry-After": "7"} if script.status in (429, 503) else None,
            )

        async def lines() -> AsyncIterator[bytes]:
            finished = False
            try:
                for index, piece in enumerate(script.pieces):
                    if script.error_line_after == index:
                        yield json.dumps({"error": "scripted failure"}).encode() + b"\n"
                        finished = True
                        return
                    if script.cut_after == index:
                        raise ConnectionResetError("scripted cut")
                    await asyncio.sleep(script.delay)
                    message: dict[str, Any] = {"role": "assistant", "content": piece}
                    if index == 0 and script.tool_calls is not None:
                        message["tool_calls"] = script.tool_calls
                    payload = {"message": message} if shape == "chat" else {"response": piece}
                    yield json.dumps({"model": body["model"], **payload, "done": False}).encode()
                    yield b"\n"
                final = {
                    "model": body["model"],
                    "done": True,
                    "done_reason": "stop",
                    "total_duration": 10,
                    "prompt_eval_count": 4,
                    "eval_count": len(script.pieces),
                    "eval_duration": 5,
                }
                if shape == "chat":
                    final["message"] = {"role": "assistant", "content": ""}
                yield json.dumps(final).encode() + b"\n"
                finished = True
            finally:
                if not finished:
                    script.closed_early += 1

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    @app.post("/api/chat")
    async def chat(request: Request) -> Response:
        return await answer(request, "chat")

    @app.post("/api/generate")
    async def generate(request: Request) -> Response:
        return await answer(request, "generate")

    return app
