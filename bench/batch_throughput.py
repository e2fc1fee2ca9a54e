"""Batch throughput: 200 prompts against an upstream with a fixed latency and 4 parallel slots.

`POST /api/batch` at concurrency 1, 2, 4 and 8 in the API process, then jobs run by 1 and by 2
`llamarada worker` processes at worker concurrency 1, 2, 4 and 8, on Redis. Each throughput is
relative to the sequential run (concurrency 1, one process): it should track
min(concurrency x workers, slots), since the upstream answers at most `SLOTS` at once.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import httpx

from bench.common import free_port, gateway, process, redis_server
from bench.upstream import MODEL

PROMPTS = 200
SLOTS = 4
PIECES = 2
DELAY = 0.025  # seconds a piece: 50 ms an answer
CONCURRENCY = (1, 2, 4, 8)
WORKERS = (1, 2)


def upstream() -> Any:
    """The paced upstream with `SLOTS` parallel slots, in its own process."""
    port = free_port()
    command = [sys.executable, "-m", "bench.upstream", "--port", str(port)]
    command += ["--delay", str(DELAY), "--pieces", str(PIECES), "--slots", str(SLOTS)]
    return process(command, port, "/api/version")


def environment(upstream_url: str, redis_url: str) -> dict[str, str]:
    """The gateway's and the workers' settings: cache off, the pool wider than the slots."""
    return {
        "LLAMARADA_LLM_BACKEND": "ollama",
        "LLAMARADA_OLLAMA_URLS": upstream_url,
        "LLAMARADA_REDIS_URL": redis_url,
        "LLAMARADA_DEFAULT_MODEL": MODEL,
        "LLAMARADA_CACHE_TTL": "0",
        "LLAMARADA_LOG_LEVEL": "WARNING",
        "LLAMARADA_POOL__MAX_CONCURRENCY": "32",
        "LLAMARADA_POOL__MAX_QUEUE": "512",
        "LLAMARADA_BATCH__MAX_SYNC_ITEMS": str(PROMPTS),
    }


@contextmanager
def workers(count: int, concurrency: int, env: dict[str, str]) -> Iterator[None]:
    """`count` worker processes, each running `concurrency` items at once."""
    with ExitStack() as stack:
        for _ in range(count):
            port = free_port()
            command = [sys.executable, "-m", "app.cli", "worker", "--concurrency", str(concurrency)]
            command += ["--metrics-port", str(port), "--metrics-host", "127.0.0.1"]
            stack.enter_context(process(command, port, "/metrics", env))
        yield


def prompts(tag: str) -> list[str]:
    """Distinct prompts (distinct, so no request coalescing can help)."""
    return [f"{tag} pregunta {n}" for n in range(PROMPTS)]


def time_sync(client: httpx.Client, url: str, concurrency: int) -> float:
    """Seconds for the whole batch through `POST /api/batch`."""
    body = {"prompts": prompts(f"sync{concurrency}"), "concurrency": concurrency}
    started = time.perf_counter()
    response = client.post(f"{url}/api/batch", json=body)
    response.raise_for_status()
    elapsed = time.perf_counter() - started
    assert all(r["status"] == "succeeded" for r in response.json()["results"])
    return elapsed


def time_job(client: httpx.Client, url: str, tag: str) -> float:
    """Seconds from submitting a job to its last result."""
    started = time.perf_counter()
    response = client.post(f"{url}/api/batch/jobs", json={"prompts": prompts(tag)})
    response.raise_for_status()
    job_id = response.json()["id"]
    while True:
        job = client.get(f"{url}/api/batch/jobs/{job_id}").json()
        if job["finished_at"] is not None:
            break
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    assert job["counts"]["succeeded"] == PROMPTS, job
    return elapsed


def run() -> dict[str, float]:
    """Seconds for each run (`sync_c{N}`, `jobs_w{W}_c{N}`), and the sequential baseline."""
    found: dict[str, float] = {}
    with redis_server() as redis_url, upstream() as upstream_url:
        env = environment(upstream_url, redis_url)
        with gateway(**env) as url, httpx.Client(timeout=300) as client:
            time_sync(client, url, 4)  # warm-up: connections, the model list
            for concurrency in CONCURRENCY:
                found[f"sync_c{concurrency}"] = time_sync(client, url, concurrency)
            for count in WORKERS:
                for concurrency in CONCURRENCY:
                    with workers(count, concurrency, env):
                        tag = f"jobs_w{count}_c{concurrency}"
                        found[tag] = time_job(client, url, tag)
    found["sequential"] = found["sync_c1"]
    return found


def speedups(found: dict[str, float], prefix: str) -> str:
    """`1.00 / 1.98 / 3.90 / 3.92` for concurrency 1, 2, 4, 8."""
    base = found["sequential"]
    return " / ".join(f"{base / found[f'{prefix}_c{c}']:.2f}" for c in CONCURRENCY)


def rates(found: dict[str, float], prefix: str) -> str:
    """Items per second at each concurrency."""
    return " / ".join(f"{PROMPTS / found[f'{prefix}_c{c}']:.0f}" for c in CONCURRENCY)


def rows(found: dict[str, float]) -> list[tuple[str, str, str, str]]:
    """Rows for docs/BENCHMARKS.md."""
    setting = f"{PROMPTS} prompts, upstream {SLOTS} slots, {PIECES * DELAY * 1000:.0f} ms each"
    expected = " / ".join(f"{min(c, SLOTS)}" for c in CONCURRENCY)
    table = [
        (
            f"Batch, `POST /api/batch` at concurrency 1/2/4/8 vs sequential ({setting})",
            f"{rates(found, 'sync')} items/s",
            speedups(found, "sync"),
            f"should track min(concurrency, slots): {expected}",
        )
    ]
    for count in WORKERS:
        expected = " / ".join(f"{min(c * count, SLOTS)}" for c in CONCURRENCY)
        table.append(
            (
                f"Batch job, {count} worker{'s' if count > 1 else ''} at concurrency 1/2/4/8 "
                "vs sequential, same upstream",
                f"{rates(found, f'jobs_w{count}')} items/s",
                speedups(found, f"jobs_w{count}"),
                f"should track min(concurrency x workers, slots): {expected}",
            )
        )
    return table


def main() -> int:
    """Measure and print the rows."""
    found = run()
    for row in rows(found):
        print(" | ".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
