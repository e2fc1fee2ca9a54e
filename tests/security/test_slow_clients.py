"""`llamarada serve` against slow and oversized clients, on real sockets to a real process.

Hundreds of clients sending their headers a byte at a time (tests/slowloris.py), heads around
and far over the size limit, bodies trickled slower and faster than the body timeout, idle
connections, two Host headers: each is answered (431, 408, 400) or closed, and `/health/live`
keeps answering.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.test_cli import llamarada

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 16_384  # LLAMARADA_SERVER__MAX_HEADER_BYTES's default
TIMEOUT = 1.5  # the header and body timeouts the server runs with here
SLOW_CLIENTS = 200


@dataclass
class Server:
    """The running `llamarada serve`."""

    url: str
    host: str
    port: int
    log: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One `llamarada serve` (embedded model, no keys) with short read timeouts."""
    workdir = tmp_path_factory.mktemp("serve")
    env = {
        "LLAMARADA_SERVER__HEADER_TIMEOUT": str(TIMEOUT),
        "LLAMARADA_SERVER__BODY_TIMEOUT": str(TIMEOUT),
    }
    with llamarada(workdir, **env) as (url, _):
        port = int(url.rsplit(":", 1)[1])
        yield Server(url, "127.0.0.1", port, workdir / "stdout.log")


def head(server: Server, size: int, *, method: str = "GET", path: str = "/health/live") -> bytes:
    """A request head of exactly `size` bytes (padded with one header), asking to close."""
    start = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nConnection: close\r\n"
    pad = size - len(start) - len("X-Pad: \r\n\r\n")
    return f"{start}X-Pad: {'a' * pad}\r\n\r\n".encode()


def exchange(server: Server, data: bytes, *, piece: int = 65_536) -> tuple[bytes, bool]:
    """Send `data` in pieces, then read until the server closes: (its answer, all was sent)."""
    sent = True
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        try:
            for start in range(0, len(data), piece):
                sock.sendall(data[start : start + piece])
        except (BrokenPipeError, ConnectionResetError):
            sent = False  # the server closed while we were still sending
        return read_to_end(sock), sent


def read_to_end(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a reset ends it too)."""
    chunks = []
    try:
        while part := sock.recv(65_536):
            chunks.append(part)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def status(answer: bytes) -> int:
    """The status code of a raw HTTP answer (0: none)."""
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def error(answer: bytes) -> dict[str, str]:
    """The project's error object in a raw HTTP answer."""
    found: dict[str, dict[str, str]] = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    return found["error"]


@pytest.mark.parametrize("size", [1024, LIMIT - 256])
@pytest.mark.parametrize("piece", [65_536, 1000], ids=["one-write", "1000-byte-writes"])
def test_serve_answers_heads_within_the_limit(server: Server, size: int, piece: int) -> None:
    answer, _ = exchange(server, head(server, size), piece=piece)
    assert status(answer) == 200


@pytest.mark.parametrize("size", [LIMIT + 256, 4 * LIMIT, 8 * 1024 * 1024])
@pytest.mark.parametrize("piece", [65_536, 1000], ids=["one-write", "1000-byte-writes"])
def test_serve_refuses_heads_over_the_limit(server: Server, size: int, piece: int) -> None:
    answer, sent = exchange(server, head(server, size), piece=piece)
    if size > 1024 * 1024:
        assert not sent  # closed long before 8 MB went through
    assert status(answer) in (431, 0), answer[:200]  # 0: reset before the answer was read
    if answer:
        assert error(answer)["type"] == "request_header_too_large"
        assert str(LIMIT) in error(answer)["message"]


def test_serve_refuses_many_small_headers(server: Server) -> None:
    lines = "".join(f"X-H{n}: v\r\n" for n in range(3000))  # 30 KB in 3000 headers
    data = f"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n{lines}\r\n".encode()
    answer, _ = exchange(server, data, piece=1000)
    assert status(answer) == 431


def test_serve_refuses_two_host_headers(server: Server) -> None:
    for hosts in (["127.0.0.1", "evil.example"], ["evil.example", "127.0.0.1"]):
        lines = "".join(f"Host: {host}\r\n" for host in hosts)
        data = f"GET /api/tags HTTP/1.1\r\n{lines}Connection: close\r\n\r\n".encode()
        answer, _ = exchange(server, data)
        assert status(answer) == 400
        assert error(answer)["message"] == "a request may carry one Host header"


def test_serve_closes_an_idle_connection(server: Server) -> None:
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT * 4) as sock:
        assert read_to_end(sock) == b""  # closed, without a word, before the socket times out


def test_serve_answers_408_to_a_body_slower_than_the_timeout(server: Server) -> None:
    body = b'{"model": "smollm2:135m"}'
    start = head(server, 200, method="POST", path="/api/show")[:-2]
    request = start + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT * 4) as sock:
        sock.sendall(request + body[:5])
        time.sleep(TIMEOUT * 1.5)
        answer = read_to_end(sock)
    assert status(answer) == 408
    assert error(answer)["type"] == "request_timeout"
    assert "body" in error(answer)["message"]


def test_serve_waits_for_a_body_that_keeps_coming(server: Server) -> None:
    body = b'{"model": "smollm2:135m"}'
    start = head(server, 200, method="POST", path="/api/show")[:-2]
    request = start + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(request)
        for offset in range(0, len(body), 5):  # 2.5 timeouts in all, none between two pieces
            time.sleep(TIMEOUT / 2)
            sock.sendall(body[offset : offset + 5])
        answer = read_to_end(sock)
    assert status(answer) == 200
    assert "modelfile" in json.loads(answer.split(b"\r\n\r\n", 1)[1])


def test_serve_stays_live_under_hundreds_of_slow_clients(server: Server) -> None:
    seconds = TIMEOUT * 3
    script = [sys.executable, "-m", "tests.slowloris", str(server.port)]
    script += ["--clients", str(SLOW_CLIENTS), "--seconds", str(seconds)]
    took = []
    with subprocess.Popen(script, stdout=subprocess.PIPE, cwd=ROOT) as slow:
        time.sleep(0.5)  # every slow client connected
        while slow.poll() is None:
            started = time.monotonic()
            # A fresh connection each time: accepting one must not wait either.
            response = httpx.get(f"{server.url}/health/live", timeout=1.0)
            assert response.status_code == 200
            took.append(time.monotonic() - started)
            time.sleep(0.1)
        out, _ = slow.communicate(timeout=30)
    assert slow.returncode == 0
    assert len(took) >= 10
    assert max(took) < 1.0
    # Every slow client was cut off at the header timeout, and told why.
    seen = json.loads(out)
    assert seen.pop("HTTP/1.1 408 Request Timeout") >= SLOW_CLIENTS
    assert set(seen) <= {"still open at the end"}


def test_serve_says_it_listens_on_this_machine_only(server: Server) -> None:
    entries = [json.loads(line) for line in server.log.read_text().splitlines()]
    said = [e for e in entries if "listens on 127.0.0.1 only" in e["message"]]
    assert said
    assert said[0]["host"] == "127.0.0.1"


def test_serve_times_a_kept_alive_connections_next_head_from_its_first_byte(
    server: Server,
) -> None:
    first = f"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode()
    with socket.create_connection((server.host, server.port), timeout=TIMEOUT * 4) as sock:
        sock.sendall(first)
        answer = b""
        while not answer.endswith(b'{"status":"ok"}'):
            answer += sock.recv(65_536)
        assert status(answer) == 200
        time.sleep(TIMEOUT * 1.2)  # idle between requests: the keep-alive timer's (5 s) business
        sock.sendall(b"GET /health/live HTTP/1.1\r\n")  # then a head that never ends
        started = time.monotonic()
        answer = read_to_end(sock)
        waited = time.monotonic() - started
    assert status(answer) == 408
    assert waited > TIMEOUT * 0.5  # timed from the head's first byte, not from the connection
