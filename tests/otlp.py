"""A real OTLP/HTTP trace receiver: each export decoded with opentelemetry-proto, spans kept."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status


@dataclass
class Received:
    """One exported span, decoded."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root
    kind: str  # "SERVER", "CLIENT", "INTERNAL", "CONSUMER", ...
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    error: bool
    service: str
    start: int  # nanoseconds since the epoch
    children: list[Received] = field(default_factory=list)

    def child(self, name: str) -> Received:
        """The one child span with this name (its name may start with it)."""
        found = [c for c in self.children if c.name == name or c.name.startswith(name + " ")]
        assert len(found) == 1, f"{name!r} under {self.name!r}: {[c.name for c in self.children]}"
        return found[0]

    def descendants(self) -> list[Received]:
        """Every span below this one."""
        return [d for c in self.children for d in (c, *c.descendants())]


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _service(resource_attributes: list[KeyValue]) -> str:
    return str(_attributes(resource_attributes).get("service.name", ""))


class OtlpReceiver:
    """`POST /v1/traces` on 127.0.0.1, in a thread; `spans` holds what arrived."""

    def __init__(self, port: int = 0) -> None:
        self.spans: list[Received] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver.accept(self.path, ExportTraceServiceRequest.FromString(body))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def do_GET(self) -> None:
                """Readiness, for a receiver in its own process."""
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        """Start serving."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def accept(self, path: str, request: ExportTraceServiceRequest) -> None:
        """Keep every span of an export."""
        spans = []
        for resource_spans in request.resource_spans:
            service = _service(list(resource_spans.resource.attributes))
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        Received(
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            kind=ProtoSpan.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_"),
                            attributes=_attributes(span.attributes),
                            events=[(e.name, _attributes(e.attributes)) for e in span.events],
                            error=span.status.code == Status.STATUS_CODE_ERROR,
                            service=service,
                            start=span.start_time_unix_nano,
                        )
                    )
        with self._lock:
            self.paths.append(path)
            self.spans.extend(spans)

    def wait_for(
        self, check: Callable[[list[Received]], bool], timeout: float = 15
    ) -> list[Received]:
        """The spans received once `check` holds for them (they come in batches)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                spans = list(self.spans)
            if check(spans):
                return spans
            if time.monotonic() > deadline:
                raise AssertionError(f"spans never matched: {[s.name for s in spans]}")
            time.sleep(0.05)

    def roots(self) -> list[Received]:
        """The spans whose parent is not among those received, each with its subtree linked."""
        with self._lock:
            spans = list(self.spans)
        by_id = {span.span_id: span for span in spans}
        for span in spans:
            span.children = []
        for span in spans:
            if span.parent_id in by_id:
                by_id[span.parent_id].children.append(span)
        return [span for span in spans if span.parent_id not in by_id]

    def tree(self, name: str) -> Received:
        """The one root span with this name, its tree linked."""
        found = [root for root in self.roots() if root.name == name]
        assert len(found) == 1, f"roots named {name!r}: {[r.name for r in self.roots()]}"
        return found[0]


def main() -> None:
    """`python -m tests.otlp PORT`: a receiver in its own process (the tracing benchmark's)."""
    import sys

    receiver = OtlpReceiver(int(sys.argv[1]))
    receiver.start()
    try:
        threading.Event().wait()
    finally:
        receiver.stop()


if __name__ == "__main__":
    main()
