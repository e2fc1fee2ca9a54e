"""What a gateway adds: Llamarada and LiteLLM's proxy in front of the same scripted upstream.

Latency (p50, p99, one client) and throughput (32 clients) through each proxy's OpenAI route
vs calling the upstream directly; then time to first token and the gap between chunks through
Llamarada vs direct with a paced upstream, which shows nothing is buffered on the way.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

from bench.common import free_port, gateway, process
from bench.upstream import MODEL

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "300"))
CLIENTS = 32
PER_CLIENT = 20
LITELLM_KEY = "sk-bench-only"  # the proxy refuses to start without a master key


def upstream(delay: float = 0.0, pieces: int = 2) -> Any:
    """The scripted Ollama server in its own process."""
    port = free_port()
    command = [sys.executable, "-m", "bench.upstream", "--port", str(port)]
    return process([*command, "--delay", str(delay), "--pieces", str(pieces)], port, "/api/version")


@contextmanager
def litellm(upstream_url: str) -> Iterator[str | None]:
    """LiteLLM's proxy routing the model to the upstream, or None where it is not installed."""
    binary = shutil.which("litellm", path=os.environ.get("LITELLM_BIN", "") or None)
    if binary is None:
        yield None
        return
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "config.yaml"
        config.write_text(
            "model_list:\n"
            f"  - model_name: {MODEL}\n"
            "    litellm_params:\n"
            f"      model: ollama_chat/{MODEL}\n"
            f"      api_base: {upstream_url}\n"
        )
        env = {"LITELLM_MASTER_KEY": LITELLM_KEY, "LITELLM_LOG": "ERROR"}
        command = [binary, "--config", str(config), "--port", str(port), "--num_workers", "1"]
        with process(command, port, "/health/liveliness", env) as url:
            yield url


def openai_body(index: int) -> dict[str, Any]:
    """A distinct small request (distinct, so no cache or request coalescing can help)."""
    return {"model": MODEL, "messages": [{"role": "user", "content": f"hello {index}"}]}


def ollama_body(index: int) -> dict[str, Any]:
    """The same request in Ollama's shape, for the upstream itself."""
    return {**openai_body(index), "stream": False}


def targets(direct: str, llamarada: str, proxy: str | None) -> dict[str, tuple[str, Any]]:
    """Name -> (URL to post to, body builder)."""
    found = {
        "direct": (f"{direct}/api/chat", ollama_body),
        "llamarada": (f"{llamarada}/v1/chat/completions", openai_body),
    }
    if proxy:
        found["litellm"] = (f"{proxy}/v1/chat/completions", openai_body)
    return found


def latencies(chosen: dict[str, tuple[str, Any]]) -> dict[str, list[float]]:
    """Seconds per request, one client, the targets interleaved round by round."""
    seen: dict[str, list[float]] = {name: [] for name in chosen}
    headers = {"Authorization": f"Bearer {LITELLM_KEY}"}
    with httpx.Client(timeout=30, headers=headers) as client:
        for index in range(ROUNDS + 20):
            for name, (url, body) in chosen.items():
                started = time.perf_counter()
                client.post(url, json=body(index)).raise_for_status()
                if index >= 20:  # the first rounds warm connections and caches up
                    seen[name].append(time.perf_counter() - started)
    return seen


async def throughput(url: str, body: Any) -> float:
    """Requests per second with CLIENTS concurrent clients."""
    headers = {"Authorization": f"Bearer {LITELLM_KEY}"}
    limits = httpx.Limits(max_connections=CLIENTS)
    async with httpx.AsyncClient(timeout=60, headers=headers, limits=limits) as client:

        async def one_client(offset: int) -> None:
            for index in range(PER_CLIENT):
                response = await client.post(url, json=body(offset * 1000 + index + 10**6))
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(one_client(n) for n in range(CLIENTS)))
        return CLIENTS * PER_CLIENT / (time.perf_counter() - started)


def stream_timing(url: str) -> tuple[float, float]:
    """Median time to first chunk and median gap between chunks of a streamed `/api/chat`."""
    firsts: list[float] = []
    gaps: list[float] = []
    with httpx.Client(timeout=60) as client:
        for index in range(5):
            body = {**openai_body(index), "stream": True}
            started = time.perf_counter()
            stamps = []
            with client.stream("POST", f"{url}/api/chat", json=body) as response:
                for line in response.iter_lines():
                    if line:
                        stamps.append(time.perf_counter())
            firsts.append(stamps[0] - started)
            gaps.extend(b - a for a, b in itertools.pairwise(stamps))
    return statistics.median(firsts), statistics.median(gaps)


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of the values fall."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run() -> dict[str, Any]:
    """Every figure of this benchmark."""
    gateway_env = {
        "LLAMARADA_LLM_BACKEND": "ollama",
        "LLAMARADA_CACHE_TTL": "0",
        "LLAMARADA_POOL__MAX_CONCURRENCY": "64",
    }
    results: dict[str, Any] = {}
    with ExitStack() as stack:
        direct = stack.enter_context(upstream())
        ours = stack.enter_context(gateway(LLAMARADA_OLLAMA_URLS=direct, **gateway_env))
        theirs = stack.enter_context(litellm(direct))
        chosen = targets(direct, ours, theirs)
        seen = latencies(chosen)
        for name, values in seen.items():
            results[f"{name}_p50_ms"] = statistics.median(values) * 1000
            results[f"{name}_p99_ms"] = percentile(values, 0.99) * 1000
        for name, (url, body) in chosen.items():
            asyncio.run(throughput(url, body))  # warm-up: connections, workers, JIT caches
            results[f"{name}_rps"] = asyncio.run(throughput(url, body))
    with ExitStack() as stack:
        paced = stack.enter_context(upstream(delay=0.05, pieces=20))
        ours = stack.enter_context(gateway(LLAMARADA_OLLAMA_URLS=paced, **gateway_env))
        results["direct_ttft_ms"], results["direct_gap_ms"] = (
            v * 1000 for v in stream_timing(paced)
        )
        results["llamarada_ttft_ms"], results["llamarada_gap_ms"] = (
            v * 1000 for v in stream_timing(ours)
        )
    return results
