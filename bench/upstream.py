"""A fast (or paced) scripted Ollama-protocol server, run as its own process by the benchmarks.

python -m bench.upstream --port 11500 [--delay 0.05] [--pieces 20] [--slots 4]

With `--slots N` it answers at most N chats at once and the rest wait, like a model server
with N parallel slots (Ollama's OLLAMA_NUM_PARALLEL).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

MODEL = "bench:1b"


def build(delay: float, pieces: int, slots: int = 0) -> Starlette:
    """The app: `/api/chat` streams `pieces` words, `delay` seconds apart, `slots` at a time."""
    # A slot is held from the first word to the last, so a waiting request waits for its first.
    gate = asyncio.Semaphore(slots or 1_000_000)

    async def chat(request: Request) -> Response:
        body = await request.json()
        words = [f"w{i} " for i in range(pieces)]
        final = {
            "model": MODEL,
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 5,
            "eval_count": pieces,
        }
        if not body.get("stream", True):
            final["message"]["content"] = "".join(words)  # type: ignore[index]
            return JSONResponse(final)

        async def lines() -> AsyncIterator[bytes]:
            async with gate:
                for word in words:
                    if delay:
                        await asyncio.sleep(delay)
                    line = {"model": MODEL, "message": {"role": "assistant", "content": word}}
                    yield json.dumps({**line, "done": False}).encode() + b"\n"
                yield json.dumps(final).encode() + b"\n"

        return StreamingResponse(lines(), media_type="application/x-ndjson")

    async def tags(_: Request) -> Response:
        return JSONResponse({"models": [{"name": MODEL, "model": MODEL, "size": 1}]})

    async def version(_: Request) -> Response:
        return JSONResponse({"version": "0.12.0"})

    async def ps(_: Request) -> Response:
        return JSONResponse({"models": [{"name": MODEL, "model": MODEL}]})

    async def show(_: Request) -> Response:
        return JSONResponse({"details": {"format": "gguf"}, "capabilities": ["completion"]})

    return Starlette(
        routes=[
            Route("/api/chat", chat, methods=["POST"]),
            Route("/api/tags", tags),
            Route("/api/version", version),
            Route("/api/ps", ps),
            Route("/api/show", show, methods=["POST"]),
        ]
    )


def main() -> None:
    """Serve until killed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--pieces", type=int, default=2)
    parser.add_argument("--slots", type=int, default=0, help="chats at once; 0: no limit")
    args = parser.parse_args()
    app = build(args.delay, args.pieces, args.slots)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
