"""Load and soak, by hand (`make load`, `python -m bench.load`): loopback only, a few minutes.

1. Streaming: `--clients` concurrent clients (200) stream `/api/chat` answers through nginx and
   the gateway from a paced scripted upstream, `--rounds` answers each. Every key has a quota
   (counted in Redis); a tenth of the clients use a key limited to 30 requests a minute, so some
   429s are deliberate; any other status or a broken stream is an error. The gateway's RSS is
   sampled from /proc all along: flat memory means the last round ends about where the first did.
2. Soak: `--soak` (3000) cached `/api/chat` requests through nginx, `--soak-clients` (200) at
   a time, with a quota'd key; Redis is killed once a third are answered (the rest in flight)
   and started again at two thirds: every answer must be a 200 (BYPASS while Redis is away,
   HIT again after).

Prints a JSON summary and the rows docs/RELIABILITY.md shows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from bench.common import free_port, process, spawned
from bench.upstream import MODEL
from tests.e2e.nginx import run_nginx

KEY = "load-key-0123456789abcdef"
LIMITED = "limited-key-0123456789abcdef"
KEYS = f"load:{KEY};rpm=1000000;tpm=1000000000,limited:{LIMITED};rpm=30"
DELIBERATE = {429}  # the limited key's quota; 503 would be a full queue, also deliberate
SOAK_PROMPTS = 20


class RedisServer:
    """A redis-server on a fixed port that the soak kills and starts again."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is needed: make system-deps")
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._child: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it and wait for PING."""
        self._child = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        for _ in range(200):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise SystemExit("redis-server did not start")

    def stop(self) -> None:
        """SIGKILL: an outage, not a shutdown."""
        if self._child is not None:
            self._child.kill()
            self._child.wait()
            self._child = None


class MemorySampler:
    """The resident memory of a process, from /proc, every `every` seconds."""

    def __init__(self, pid: int, every: float = 0.25) -> None:
        self.pid = pid
        self.every = every
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        """Resident set size now, in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            self.samples.append((time.monotonic() - started, self.rss()))
            self._stop.wait(self.every)


@dataclass
class Tally:
    """Statuses, errors and timings of one phase."""

    statuses: Counter[int] = field(default_factory=Counter)
    cache: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)  # the bodies of unexpected statuses
    first_chunk: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)

    def unexpected(self) -> int:
        """Answers that are neither a success nor a deliberate refusal, and broken streams."""
        wrong = sum(n for status, n in self.statuses.items() if status >= 300)
        deliberate = sum(self.statuses[status] for status in DELIBERATE)
        return wrong - deliberate + len(self.errors)


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of them fall."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


async def stream_one(client: httpx.AsyncClient, key: str, prompt: str, tally: Tally) -> None:
    """One streamed answer: time to the first line, to the last, and whether it ended well."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "stream": True}
    started = time.perf_counter()
    try:
        async with client.stream(
            "POST", "/api/chat", json=body, headers={"Authorization": f"Bearer {key}"}
        ) as response:
            tally.statuses[response.status_code] += 1
            if response.status_code != 200:
                refused = await response.aread()
                if response.status_code not in DELIBERATE:
                    tally.refusals.append(f"{response.status_code}: {refused[:200]!r}")
                return
            last: dict[str, Any] = {}
            async for line in response.aiter_lines():
                if not line:
                    continue
                if not last:
                    tally.first_chunk.append(time.perf_counter() - started)
                last = json.loads(line)
            if not last.get("done") or "error" in last:
                tally.errors.append(f"stream ended without done: {last}")
                return
        tally.total.append(time.perf_counter() - started)
    except (httpx.HTTPError, ValueError) as exc:
        tally.errors.append(f"{type(exc).__name__}: {exc}")


async def streaming(url: str, clients: int, rounds: int, sampler: MemorySampler) -> dict[str, Any]:
    """Every client streams `rounds` answers; RSS noted at the end of each round."""
    tally = Tally()
    limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=clients + 10)
    timeout = httpx.Timeout(120, connect=30)
    per_round: list[int] = []
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:
        started = time.perf_counter()
        for round_ in range(rounds):
            await asyncio.gather(
                *(
                    stream_one(
                        client,
                        LIMITED if index % 10 == 0 else KEY,
                        f"round {round_} client {index}",
                        tally,
                    )
                    for index in range(clients)
                )
            )
            per_round.append(sampler.rss())
        seconds = time.perf_counter() - started
    answered = len(tally.total)
    return {
        "clients": clients,
        "rounds": rounds,
        "requests": sum(tally.statuses.values()) + len(tally.errors),
        "statuses": dict(sorted(tally.statuses.items())),
        "unexpected": tally.unexpected(),
        "errors": tally.errors[:5],
        "refusals": tally.refusals[:5],
        "answers_per_s": round(answered / seconds, 1),
        "first_chunk_p50_ms": round(1000 * statistics.median(tally.first_chunk), 1),
        "first_chunk_p99_ms": round(1000 * percentile(tally.first_chunk, 0.99), 1),
        "total_p50_ms": round(1000 * statistics.median(tally.total), 1),
        "total_p99_ms": round(1000 * percentile(tally.total, 0.99), 1),
        "rss_after_each_round_mib": [round(kib / 1024, 1) for kib in per_round],
        "seconds": round(seconds, 1),
    }


async def soak(url: str, requests: int, clients: int, server: RedisServer) -> dict[str, Any]:
    """Cached answers, `clients` at a time; Redis killed when a third have been answered (with
    `clients` requests in flight) and started again at two thirds. Each answer counts in the
    phase its request started in."""
    tally = Tally()
    gate = asyncio.Semaphore(clients)
    phases: dict[str, Counter[str]] = {p: Counter() for p in ("before", "outage", "after")}
    phase = "before"
    answered = 0
    third, two_thirds = asyncio.Event(), asyncio.Event()

    async def one(client: httpx.AsyncClient, index: int) -> None:
        nonlocal answered
        prompt = f"cached question {index % SOAK_PROMPTS}"
        body = {"model": MODEL, "messages": [{"role": "user", "content": prompt}], "stream": False}
        async with gate:
            started_in = phase
            try:
                response = await client.post(
                    "/api/chat", json=body, headers={"Authorization": f"Bearer {KEY}"}
                )
            except httpx.HTTPError as exc:
                tally.errors.append(f"{type(exc).__name__}: {exc}")
                response = None
        answered += 1
        if answered == requests // 3:
            third.set()
        if answered == 2 * requests // 3:
            two_thirds.set()
        if response is None:
            return
        tally.statuses[response.status_code] += 1
        if response.status_code != 200:
            tally.refusals.append(f"{response.status_code}: {response.text[:200]}")
        cache = response.headers.get("x-cache", "-")
        tally.cache[cache] += 1
        phases[started_in][cache] += 1

    async def outage() -> None:
        nonlocal phase
        loop = asyncio.get_running_loop()
        await third.wait()
        phase = "outage"
        await loop.run_in_executor(None, server.stop)
        await two_thirds.wait()
        await loop.run_in_executor(None, server.start)
        phase = "after"

    limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=clients + 10)
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        chaos = asyncio.create_task(outage())
        await asyncio.gather(*(one(client, i) for i in range(requests)))
        await chaos
    return {
        "requests": requests,
        "clients": clients,
        "statuses": dict(sorted(tally.statuses.items())),
        "unexpected": tally.unexpected(),
        "errors": tally.errors[:5],
        "refusals": tally.refusals[:5],
        "x_cache_by_phase": {name: dict(counts) for name, counts in phases.items()},
        "seconds": round(time.perf_counter() - started, 1),
    }


@contextmanager
def stack(delay: float, pieces: int, server: RedisServer) -> Iterator[tuple[str, int]]:
    """Upstream, gateway and nginx; yields nginx's URL and the gateway's pid, and on the way out
    prints nginx's error lines (a 502 is explained there)."""
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="llamarada-load-") as tmp:
        port = free_port()
        command = [sys.executable, "-m", "bench.upstream", "--port", str(port)]
        upstream = stack.enter_context(
            process([*command, "--delay", str(delay), "--pieces", str(pieces)], port, "/api/tags")
        )
        gateway_port = free_port()
        env = {
            "LLAMARADA_LLM_BACKEND": "ollama",
            "LLAMARADA_OLLAMA_URLS": upstream,
            "LLAMARADA_DEFAULT_MODEL": MODEL,
            "LLAMARADA_REDIS_URL": server.url,
            "LLAMARADA_API_KEYS": KEYS,
            "LLAMARADA_DATA_DIR": str(Path(tmp) / "data"),
            "LLAMARADA_LOG_LEVEL": "WARNING",
            # Room for every client at once: the deliberate refusals are the quota's only.
            "LLAMARADA_POOL__MAX_CONCURRENCY": "256",
            "LLAMARADA_POOL__MAX_QUEUE": "256",
        }
        gateway_command = [sys.executable, "-m", "app.cli", "serve", "--port", str(gateway_port)]
        gateway_command += ["--host", "127.0.0.1"]
        gateway, child = stack.enter_context(
            spawned(gateway_command, gateway_port, "/health/ready", env)
        )
        nginx = stack.enter_context(
            run_nginx(gateway.removeprefix("http://"), Path(tmp) / "nginx", connections=2048)
        )
        try:
            yield nginx.url, child.pid
        finally:
            lines = nginx.error_log.read_text(errors="replace").splitlines()
            for line in [line for line in lines if "[error]" in line or "[crit]" in line][:20]:
                print("nginx:", line[:300], flush=True)


def main() -> int:
    """Run both phases and print what they measured."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--soak", type=int, default=3000)
    parser.add_argument("--soak-clients", type=int, default=200)
    parser.add_argument("--delay", type=float, default=0.02, help="seconds between upstream words")
    parser.add_argument("--pieces", type=int, default=20, help="words per answer")
    args = parser.parse_args()
    server = RedisServer()
    server.start()
    try:
        with stack(args.delay, args.pieces, server) as (url, pid), MemorySampler(pid) as sampler:
            idle = sampler.rss()
            print(f"streaming: {args.clients} clients x {args.rounds} rounds ...", flush=True)
            streamed = asyncio.run(streaming(url, args.clients, args.rounds, sampler))
            print(f"soak: {args.soak} cached requests, Redis restarted midway ...", flush=True)
            soaked = asyncio.run(soak(url, args.soak, args.soak_clients, server))
            peak = max(kib for _, kib in sampler.samples)
    finally:
        server.stop()
    summary = {
        "machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]},
        "gateway_rss_mib": {"idle": round(idle / 1024, 1), "peak": round(peak / 1024, 1)},
        "streaming": streamed,
        "soak": soaked,
    }
    print(json.dumps(summary, indent=2))
    failed = streamed["unexpected"] or soaked["unexpected"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
