"""The multilingual embedder with one BLAS thread against two: a query and a batch of chunks,
on an idle machine and with every core busy (as when a model is answering on the same host).

Run: `python -m bench.embed_threads`. Each thread count runs in a process of its own, one after
the other in one run; "busy" starts one CPU-bound process per core for its rounds.
Reported: a query's wall-clock p50 and p99 and its CPU (a spinning BLAS thread shows as CPU
above wall time), and chunks a second for a batch of 64.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from app.rag.multilingual import MultilingualEmbedder

QUERY = "¿Qué longitud máxima puede tener un nombre de fichero en ext4?"
CHUNK = (
    "El sistema de ficheros ext4 admite nombres de hasta 255 bytes; la opción -N de mkfs fija "
    "el número de nodos-i, y tune2fs cambia después los parámetros que lo permiten. "
)
QUERIES = 200
BATCHES = 4
THREADS = (1, 2)


@contextmanager
def busy() -> Iterator[None]:
    """One CPU-bound process per core until the block ends."""
    count = os.cpu_count() or 2
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(0.5)
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def _measure(threads: int) -> dict[str, float]:
    """A query's latency and CPU, then batches: one embedder, in this process."""
    embedder = MultilingualEmbedder.load(threads=threads)  # embed_sync: on this thread
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(QUERIES):
        started, used = time.perf_counter(), time.process_time()
        embedder.embed_sync([QUERY])
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - used) * 1000)
    chunks = [f"{CHUNK * 4}{i}" for i in range(64)]
    started = time.perf_counter()
    for _ in range(BATCHES):
        embedder.embed_sync(chunks)
    seconds = time.perf_counter() - started
    return {
        "query_p50_ms": round(statistics.median(wall), 2),
        "query_p99_ms": round(statistics.quantiles(wall, n=100)[98], 2),
        "query_cpu_p50_ms": round(statistics.median(cpu), 2),
        "batch_chunks_per_s": round(BATCHES * len(chunks) / seconds, 1),
    }


def run() -> dict[str, Any]:
    """Both thread counts, idle and busy; each in a process of its own, since OpenBLAS keeps one
    pool of threads a process (threads woken by one embedder would spin for the other)."""
    result: dict[str, Any] = {}
    for load in ("idle", "busy"):
        with busy() if load == "busy" else nullcontext():
            for threads in THREADS:
                child = [sys.executable, "-m", "bench.embed_threads", "--threads", str(threads)]
                out = subprocess.run(child, check=True, capture_output=True, text=True).stdout
                result[f"{load}_{threads}_threads"] = json.loads(out)
    return result


def rows(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The benchmark table's rows."""
    table = []
    for load in ("idle", "busy"):
        one, two = result[f"{load}_1_threads"], result[f"{load}_2_threads"]
        table.append(
            (
                f"Embedder, 1 BLAS thread vs 2, every core {'free' if load == 'idle' else 'busy'}:"
                " a query's p99",
                f"{one['query_p99_ms']:.1f} vs {two['query_p99_ms']:.1f} ms"
                f" (batch {one['batch_chunks_per_s']:.0f} vs {two['batch_chunks_per_s']:.0f}"
                " chunks/s)",
                f"{one['query_p99_ms'] / two['query_p99_ms']:.2f}",
                "one thread is the default (`bench.embed_threads`)",
            )
        )
    return table


if __name__ == "__main__":
    if sys.argv[1:2] == ["--threads"]:
        print(json.dumps(_measure(int(sys.argv[2]))))
    else:
        print(json.dumps(run(), indent=2))
