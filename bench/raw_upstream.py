"""A scripted Ollama server on bare asyncio and httptools: canned answers at almost no CPU cost.

python -m bench.raw_upstream --port 11500

The hot-path benchmark measures what the gateway adds; an upstream that itself spends a core
per few thousand requests would hide it on a 2-core machine. `/api/chat` answers any request
with a short whole answer (or its NDJSON stream when the body says `"stream": true`), and the
model routes answer what the gateway's pool asks at start-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json

import httptools

MODEL = "bench:1b"
_FINAL = {
    "model": MODEL,
    "created_at": "2026-01-01T00:00:00Z",
    "message": {"role": "assistant", "content": "w0 w1 "},
    "done": True,
    "done_reason": "stop",
    "prompt_eval_count": 5,
    "eval_count": 2,
}
_STREAM = (
    json.dumps({**_FINAL, "message": {"role": "assistant", "content": "w0 w1 "}, "done": False})
    + "\n"
    + json.dumps({**_FINAL, "message": {"role": "assistant", "content": ""}})
    + "\n"
).encode()
BODIES = {
    b"/api/chat": json.dumps(_FINAL).encode(),
    b"/api/tags": json.dumps({"models": [{"name": MODEL, "model": MODEL, "size": 1}]}).encode(),
    b"/api/version": b'{"version":"0.12.0"}',
    b"/api/ps": json.dumps({"models": [{"name": MODEL, "model": MODEL}]}).encode(),
    b"/api/show": b'{"details":{"format":"gguf"},"capabilities":["completion"]}',
}


def _response(body: bytes, media_type: bytes = b"application/json") -> bytes:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: %s\r\ncontent-length: %d\r\n\r\n"
    return head % (media_type, len(body)) + body


class Upstream(asyncio.Protocol):
    """One keep-alive connection; each complete request gets its canned answer."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        path = self.url.split(b"?", 1)[0]
        streamed = path == b"/api/chat" and b'"stream":true' in b"".join(self.body).replace(
            b" ", b""
        )
        if streamed:
            answer = _response(_STREAM, b"application/x-ndjson")
        elif path in BODIES:
            answer = _response(BODIES[path])
        else:
            answer = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"
        self.transport.write(answer)  # type: ignore[attr-defined]
        self.url, self.body = b"", []


async def serve(port: int) -> None:
    """Serve on 127.0.0.1:`port` until cancelled."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Upstream, "127.0.0.1", port, backlog=2048)
    async with server:
        await server.serve_forever()


def main() -> None:
    """Serve until killed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
