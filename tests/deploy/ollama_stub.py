"""A scripted Ollama on 127.0.0.1 for start-up tests: the model-management half of its API.

It answers `GET /api/version`, `GET /api/tags`, `POST /api/pull` (NDJSON progress),
`POST /api/create` (NDJSON status) and `HEAD|POST /api/blobs/sha256:...` the way Ollama does,
records every request, and can start listening late to prove that callers wait for it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

VERSION = "0.12.6"


@dataclass
class Received:
    """One request the stub answered."""

    method: str
    path: str
    body: Any = None


@dataclass
class OllamaState:
    """What the stub holds: its models, its blobs, and what it was asked."""

    models: set[str] = field(default_factory=set)
    blobs: dict[str, bytes] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self, path: str) -> list[Any]:
        """The JSON bodies of the requests made to `path`, in order."""
        with self.lock:
            return [r.body for r in self.requests if r.path == path]

    def count(self, path: str) -> int:
        """How many requests reached `path`."""
        with self.lock:
            return sum(1 for r in self.requests if r.path == path)


def _tagged(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


class _Handler(BaseHTTPRequestHandler):
    server: OllamaStub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _record(self, body: Any) -> None:
        with self.server.state.lock:
            self.server.state.requests.append(Received(self.command, self.path, body))

    def _json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _ndjson(self, events: list[dict[str, Any]]) -> None:
        data = b"".join(json.dumps(event).encode() + b"\n" for event in events)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_HEAD(self) -> None:
        self._record(None)
        digest = self.path.removeprefix("/api/blobs/")
        self.send_response(200 if digest in self.server.state.blobs else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self._record(None)
        if self.path == "/api/version":
            self._json(200, {"version": VERSION})
        elif self.path == "/api/tags":
            with self.server.state.lock:
                names = sorted(self.server.state.models)
            self._json(200, {"models": [{"name": n, "model": n, "size": 1} for n in names]})
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        raw = self._body()
        if self.path.startswith("/api/blobs/"):
            self._record(len(raw))
            digest = self.path.removeprefix("/api/blobs/")
            if f"sha256:{hashlib.sha256(raw).hexdigest()}" != digest:
                self._json(400, {"error": "digest mismatch"})
                return
            self.server.state.blobs[digest] = raw
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = json.loads(raw or b"{}")
        self._record(body)
        if self.path == "/api/pull":
            self._pull(body)
        elif self.path == "/api/create":
            self._create(body)
        else:
            self._json(404, {"error": "not found"})

    def _pull(self, body: dict[str, Any]) -> None:
        model = _tagged(body["model"])
        if model in self.server.unknown_models:
            self._ndjson([{"status": "pulling manifest"}, {"error": "file does not exist"}])
            return
        total = 4_000_000
        events: list[dict[str, Any]] = [{"status": "pulling manifest"}]
        events += [
            {
                "status": "pulling 6a0746a1ec1a",
                "digest": "sha256:6a07",
                "total": total,
                "completed": done,
            }
            for done in range(0, total + 1, total // 40)
        ]
        events += [{"status": s} for s in ("verifying sha256 digest", "writing manifest")]
        events.append({"status": "success"})
        with self.server.state.lock:
            self.server.state.models.add(model)
        self._ndjson(events)

    def _create(self, body: dict[str, Any]) -> None:
        state = self.server.state
        base = body.get("from")
        if base is not None and _tagged(base) not in state.models:
            self._ndjson([{"error": f"model '{base}' not found"}])
            return
        missing = [
            d
            for d in {**body.get("files", {}), **body.get("adapters", {})}.values()
            if d not in state.blobs
        ]
        if missing or (base is None and not body.get("files")):
            self._ndjson([{"error": f"blobs not uploaded: {missing}"}])
            return
        with state.lock:
            state.models.add(_tagged(body["model"]))
        statuses = [
            "using existing layer sha256:aa",
            "creating new layer sha256:bb",
            "writing manifest",
            "success",
        ]
        self._ndjson([{"status": s} for s in statuses])


class OllamaStub(ThreadingHTTPServer):
    """The scripted server; `start(delay)` begins listening after `delay` seconds."""

    daemon_threads = True

    def __init__(self, models: set[str] | None = None) -> None:
        # Bound now, so the port is reserved; connections are refused until it listens.
        super().__init__(("127.0.0.1", 0), _Handler, bind_and_activate=False)
        self.server_bind()
        self.state = OllamaState(models={_tagged(m) for m in models or set()})
        self.unknown_models: set[str] = set()
        self._timer: threading.Timer | None = None
        self._listening = threading.Event()
        self._serving = threading.Event()

    @property
    def url(self) -> str:
        """Base URL, as `LLAMARADA_OLLAMA_URLS` takes it."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self, delay: float = 0.0) -> None:
        """Listen and serve in the background: at once, or `delay` seconds from now."""

        def run() -> None:
            if not self._listening.is_set():
                self.server_activate()
                self._listening.set()
            self._serving.set()
            self.serve_forever(poll_interval=0.05)

        if not delay:  # listening before returning: callers never race a zero delay
            self.server_activate()
            self._listening.set()
        self._timer = threading.Timer(delay, run)
        self._timer.daemon = True
        self._timer.start()

    def stop(self) -> None:
        """Stop serving (or never start) and release the port."""
        if self._timer is not None:
            self._timer.cancel()
            # A timer that already fired is inside run(): wait until it serves, then shut down.
            while self._timer.is_alive() and not self._serving.wait(0.01):
                pass
        if self._serving.is_set():
            self.shutdown()
        self.server_close()


OllamaFactory = Callable[..., OllamaStub]
