"""What the benchmarks share: a gateway under uvicorn, a redis-server, timing helpers."""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import redis


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is needed: make system-deps")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.kill()
        process.wait()


@contextmanager
def process(
    args: list[str], port: int, ready_path: str, env: dict[str, str] | None = None
) -> Iterator[str]:
    """A server in its own process, as clients meet it; yields its URL once `ready_path` is 200."""
    with spawned(args, port, ready_path, env) as (url, _):
        yield url


@contextmanager
def spawned(
    args: list[str], port: int, ready_path: str, env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`process`, yielding the child too (its pid, for the memory it holds)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LLAMARADA_")}
    environment.update(env or {})
    child = subprocess.Popen(args, env=environment, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(1200):
            try:
                if httpx.get(f"{url}{ready_path}", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if child.poll() is not None:
                raise SystemExit(f"{args[0]} exited before it was ready")
            time.sleep(0.1)
        else:
            raise SystemExit(f"{args} did not become ready")
        yield url, child
    finally:
        child.terminate()
        child.wait()


@contextmanager
def gateway(**env: str) -> Iterator[str]:
    """`llamarada serve` in its own process; yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
    with process(command, port, "/health/ready", {"LLAMARADA_LOG_LEVEL": "WARNING", **env}) as url:
        yield url


def median(values: list[float]) -> float:
    """The median, the figure each benchmark reports."""
    return statistics.median(values)
