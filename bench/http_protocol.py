"""What the guarded HTTP protocol costs: uvicorn's httptools protocol, the guarded one, and h11.

Two measures, rounds interleaved so the machine's load falls on every side alike:
- CPU time per request in process: each protocol fed the same GET and 1 KB POST through a
  transport that only collects the answer, one event loop, no sockets (the precise figure);
- requests per second of the same minimal ASGI app under each protocol in its own process,
  keep-alive clients on raw sockets (what a client sees; noisy on a shared machine).
`python -m bench.http_protocol`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from typing import Any

from uvicorn.config import Config
from uvicorn.server import ServerState

from bench.common import free_port, process

CLIENTS = 16
SECONDS = 2.0
ROUNDS = 5
BODY = b'{"prompt": "' + b"x" * 1000 + b'"}'
IMPLS = ("httptools", "guarded", "h11")
IN_PROCESS = 20_000  # requests per round of the in-process measure


async def tiny_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the body, answers `ok`."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


class _Collector(asyncio.Transport):
    """A transport that keeps what the protocol writes and counts the answers."""

    def __init__(self) -> None:
        super().__init__()
        self.answers = 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8000)}.get(name)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.answers += bytes(data).count(b"HTTP/1.1 200")

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _protocol_class(impl: str) -> Any:
    from uvicorn.protocols.http.h11_impl import H11Protocol
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from app.api.protocol import GuardedHttpToolsProtocol

    return {"httptools": HttpToolsProtocol, "h11": H11Protocol}.get(
        impl, partial(GuardedHttpToolsProtocol, header_timeout=15.0, body_timeout=60.0)
    )


async def _microseconds_per_request(impl: str) -> float:
    config = Config(tiny_app, h11_max_incomplete_event_size=16_384, log_config=None)
    config.load()
    protocol = _protocol_class(impl)(config, ServerState(), {}, asyncio.get_running_loop())
    transport = _Collector()
    protocol.connection_made(transport)
    get = b"GET /health HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench/1\r\nAccept: */*\r\n\r\n"
    post = (
        b"POST /api/chat HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(BODY)
    ) + BODY
    started = time.process_time()
    for index in range(IN_PROCESS):
        protocol.data_received(post if index % 2 else get)
        while transport.answers <= index:
            await asyncio.sleep(0)
    spent = time.process_time() - started
    protocol.connection_lost(None)
    return spent / IN_PROCESS * 1e6


def serve(impl: str, port: int) -> None:
    """Run the tiny app under one protocol (in the child process)."""
    import uvicorn

    from app.api.protocol import GuardedHttpToolsProtocol

    http: Any = impl
    if impl == "guarded":
        http = partial(GuardedHttpToolsProtocol, header_timeout=15.0, body_timeout=60.0)
    uvicorn.run(
        tiny_app,
        host="127.0.0.1",
        port=port,
        http=http,
        log_level="error",
        access_log=False,
        h11_max_incomplete_event_size=16_384,
    )


@contextmanager
def server(impl: str) -> Iterator[str]:
    """The tiny app under `impl` in its own process; yields host:port."""
    port = free_port()
    command = [sys.executable, "-m", "bench.http_protocol", "--serve", impl, "--port", str(port)]
    with process(command, port, "/"):
        yield f"127.0.0.1:{port}"


async def _client(address: str, until: float) -> int:
    host, port = address.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    get = f"GET /health HTTP/1.1\r\nHost: {address}\r\n\r\n".encode()
    post = (
        f"POST /api/chat HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY
    done = 0
    while time.perf_counter() < until:
        writer.write(post if done % 2 else get)
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)
        done += 1
    writer.close()
    return done


async def requests_per_second(address: str) -> float:
    """Requests per second with CLIENTS keep-alive connections for SECONDS."""
    started = time.perf_counter()
    counts = await asyncio.gather(*(_client(address, started + SECONDS) for _ in range(CLIENTS)))
    return sum(counts) / (time.perf_counter() - started)


def run() -> dict[str, float]:
    """Median CPU µs per request and requests/s per protocol; the guarded one's ratios."""
    cost: dict[str, list[float]] = {impl: [] for impl in IMPLS}
    for _ in range(ROUNDS):
        for impl in IMPLS:
            cost[impl].append(asyncio.run(_microseconds_per_request(impl)))
    seen: dict[str, list[float]] = {impl: [] for impl in IMPLS}
    with ExitStack() as stack:
        addresses = {impl: stack.enter_context(server(impl)) for impl in IMPLS}
        for impl in IMPLS:  # warm-up
            asyncio.run(requests_per_second(addresses[impl]))
        for _ in range(ROUNDS):
            for impl in IMPLS:
                seen[impl].append(asyncio.run(requests_per_second(addresses[impl])))
    results = {f"{impl}_rps": statistics.median(values) for impl, values in seen.items()}
    results |= {f"{impl}_us": statistics.median(values) for impl, values in cost.items()}
    results["guarded_cost_ratio"] = results["guarded_us"] / results["httptools_us"]
    results["guarded_vs_httptools"] = results["guarded_rps"] / results["httptools_rps"]
    results["guarded_vs_h11"] = results["guarded_rps"] / results["h11_rps"]
    return results


def rows(results: dict[str, float]) -> list[tuple[str, str, str, str]]:
    """The BENCHMARKS.md rows."""
    return [
        (
            "HTTP protocol, CPU per request in process: guarded httptools vs uvicorn's "
            "httptools (GET and 1 KB POST in turns, minimal app)",
            f"{results['guarded_us']:.1f} vs {results['httptools_us']:.1f} µs "
            f"(h11 {results['h11_us']:.1f} µs)",
            f"{results['guarded_cost_ratio']:.3f}",
            "the head limit and read timeouts' cost per request; lower is better",
        ),
        (
            f"HTTP protocol: guarded httptools vs uvicorn's httptools, {CLIENTS} keep-alive "
            "clients, GET + 1 KB POST, minimal app",
            f"{results['guarded_rps']:.0f} vs {results['httptools_rps']:.0f} req/s",
            f"{results['guarded_vs_httptools']:.2f}",
            "clients and servers share the cores: varies from run to run (0.76-1.19 seen); "
            "the in-process row is the precise one",
        ),
        (
            "HTTP protocol: guarded httptools vs uvicorn's h11 (which has a header limit)",
            f"{results['guarded_rps']:.0f} vs {results['h11_rps']:.0f} req/s",
            f"{results['guarded_vs_h11']:.2f}",
            "why httptools is kept",
        ),
    ]


def main() -> int:
    """`--serve IMPL --port P` runs one server; no arguments runs the benchmark."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", choices=IMPLS)
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return 0
    results = run()
    print(results)
    for row in rows(results):
        print(" | ".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
