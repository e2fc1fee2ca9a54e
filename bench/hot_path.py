"""The gateway's own per-request cost: what `/api/chat` adds over calling the upstream directly
and over an nginx hop, misses and hits, one and two worker processes.

`wrk` drives every target from one thread (it is C, and needs a fraction of a core); the
upstream is `bench.raw_upstream`, canned answers on bare asyncio, so what is left is the
gateway's: validation, middleware, logging, metrics, the cache, serialisation.
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from bench.common import free_port, process
from bench.raw_upstream import MODEL
from tests.e2e.nginx import run_nginx

DURATION = "6s"
WARM_UP = "2s"  # a fresh server's first requests (connections, caches) are not measured
_RUNS = itertools.count()
CLIENTS = 32
# Lua string.format templates: %d becomes the request's number (distinct bodies: no cache hits).
CHAT = '{"model":"MODEL","messages":[{"role":"user","content":"hello %d"}],"stream":false}'
OPENAI = '{"model":"MODEL","messages":[{"role":"user","content":"hello %d"}]}'
CHAT, OPENAI = CHAT.replace("MODEL", MODEL), OPENAI.replace("MODEL", MODEL)
_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local counter = %(start)d
request = function()
  counter = counter + 1
  return wrk.format(nil, "%(path)s", nil, string.format('%(body)s', %(index)s))
end
"""


def wrk(
    url: str,
    path: str,
    body: str,
    *,
    clients: int,
    distinct: bool = True,
    duration: str = DURATION,
) -> dict[str, float]:
    """Requests per second and latency percentiles (ms) of `clients` connections for
    `duration`."""
    binary = shutil.which("wrk")
    if binary is None:
        raise SystemExit("wrk is needed: apt-get install wrk (make bench installs it)")
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        index = "counter" if distinct else "0"
        # Each run counts from its own start: a later run must not ask what an earlier one
        # stored (a "miss" run would be partly hits).
        start = next(_RUNS) * 10_000_000
        script.write(_SCRIPT % {"path": path, "body": body, "index": index, "start": start})
        script.flush()
        command = [binary, "-t1", f"-c{clients}", f"-d{duration}", "--latency", "-s", script.name]
        out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    latency = {
        pct: _ms(value, unit)
        for pct, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    }
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{url}{path}: {errors.group(1)} error responses\n{out}")
    return {"rps": rate, "p50_ms": latency["50"], "p99_ms": latency["99"]}


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


@contextmanager
def upstream() -> Iterator[str]:
    """The raw scripted upstream in its own process."""
    port = free_port()
    command = [sys.executable, "-m", "bench.raw_upstream", "--port", str(port)]
    with process(command, port, "/api/version") as url:
        yield url


@contextmanager
def llamarada(upstream_url: str, workers: int = 1, **env: str) -> Iterator[str]:
    """`llamarada serve` in front of the upstream, logging at INFO (each request's line)."""
    port = free_port()
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
    settings = {
        "LLAMARADA_LLM_BACKEND": "ollama",
        "LLAMARADA_OLLAMA_URLS": upstream_url,
        "LLAMARADA_DEFAULT_MODEL": MODEL,
        "LLAMARADA_POOL__MAX_CONCURRENCY": "256",
        "LLAMARADA_POOL__MAX_QUEUE": "256",
        "LLAMARADA_LOG_LEVEL": "INFO",
        **env,
    }
    with process([*command, "--workers", str(workers)], port, "/health/ready", settings) as url:
        yield url


def run() -> dict[str, Any]:
    """Every target, side by side in one run."""
    results: dict[str, Any] = {}
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        direct = stack.enter_context(upstream())
        hop = stack.enter_context(run_nginx(direct.removeprefix("http://"), Path(tmp) / "nginx"))
        one = stack.enter_context(llamarada(direct))
        targets = {
            "direct": (direct, "/api/chat", CHAT, True),
            "nginx": (hop.url, "/api/chat", CHAT, True),
            "api_chat_miss": (one, "/api/chat", CHAT, True),
            "v1_miss": (one, "/v1/chat/completions", OPENAI, True),
            "api_chat_hit": (one, "/api/chat", CHAT, False),
        }
        for name, (url, path, body, distinct) in targets.items():
            # Warmed by a short run first (for hits: the one entry every request then hits).
            wrk(url, path, body, clients=CLIENTS, distinct=distinct, duration=WARM_UP)
            results[name] = {
                "throughput": wrk(url, path, body, clients=CLIENTS, distinct=distinct),
                "single": wrk(url, path, body, clients=1, distinct=distinct),
            }
        stack.close()
        with upstream() as direct, llamarada(direct, workers=2) as two:
            wrk(two, "/api/chat", CHAT, clients=CLIENTS, duration=WARM_UP)
            results["api_chat_miss_2_workers"] = {
                "throughput": wrk(two, "/api/chat", CHAT, clients=CLIENTS)
            }
    return results


def rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The BENCHMARKS.md rows."""
    rps = {name: r["throughput"]["rps"] for name, r in results.items()}
    p50 = {name: r["single"]["p50_ms"] for name, r in results.items() if "single" in r}
    added = p50["api_chat_miss"] - p50["direct"]
    return [
        (
            f"Uncached `/api/chat` throughput, {CLIENTS} clients, one worker, vs an nginx hop",
            f"{rps['api_chat_miss']:.0f} vs {rps['nginx']:.0f} req/s (direct {rps['direct']:.0f})",
            f"{rps['api_chat_miss'] / rps['nginx']:.2f}",
            "goal >= 0.5",
        ),
        (
            "Added p50 latency of uncached `/api/chat` over calling the upstream, one client",
            f"{p50['api_chat_miss']:.2f} - {p50['direct']:.2f} ms",
            f"+{added:.2f} ms",
            "goal <= 1 ms",
        ),
        (
            f"Cache hits vs uncached `/api/chat`, {CLIENTS} clients, one worker",
            f"{rps['api_chat_hit']:.0f} vs {rps['api_chat_miss']:.0f} req/s",
            f"{rps['api_chat_hit'] / rps['api_chat_miss']:.2f}",
            "goal >= 2",
        ),
        (
            "`/v1/chat/completions` vs `/api/chat`, uncached, same upstream",
            f"{rps['v1_miss']:.0f} vs {rps['api_chat_miss']:.0f} req/s",
            f"{rps['v1_miss'] / rps['api_chat_miss']:.2f}",
            "one pipeline: close to 1",
        ),
        (
            "`--workers 2` vs one worker, uncached `/api/chat` throughput on 2 cores",
            f"{rps['api_chat_miss_2_workers']:.0f} vs {rps['api_chat_miss']:.0f} req/s",
            f"{rps['api_chat_miss_2_workers'] / rps['api_chat_miss']:.2f}",
            "goal >= 1.7",
        ),
    ]


if __name__ == "__main__":
    found = run()
    for row in rows(found):
        print(" | ".join(row))
