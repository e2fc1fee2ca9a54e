"""What tracing costs per request: `/api/chat` with tracing on (every request sampled, spans
exported over OTLP/HTTP to a receiver in another process) against tracing off, side by side.

`python -m bench.tracing_overhead` prints the figures. The app runs in this process behind
httpx's ASGI transport, in front of `bench.raw_upstream` (its own process) through the Ollama
pool, so a request has every span a chat has: HTTP, model call, cache lookup (a miss: each prompt
is new), upstream call, and `traceparent` sent upstream. One app, started with tracing on,
answers every request; every other request runs inside `tracing.suspended()`, as with tracing
off (in the order on, off, off, on, so that neither mode always comes first). Pairing requests
in one process takes out what drifts between runs (the machine's load, the heap, the caches).
Per request it records wall time, this process's CPU time (every thread: the span processor's
exports included) and the request thread's CPU time; the figures are their medians. With
tracing off the middleware is not even installed; the helpers' early returns are timed per call
at the end. Logs are JSON lines at INFO, as `llamarada serve` writes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import logging.config
import os
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from app.core import tracing
from app.core.config import Settings
from app.core.logging import logging_config
from app.main import create_app
from bench.common import free_port, process
from bench.raw_upstream import MODEL

REQUESTS = 4000  # measured, half in each mode, after WARM_UP
WARM_UP = 200
TIMED_CALLS = 200_000  # per helper, for the off path's figures
# Wall time; the process's CPU (the exporting thread's too); the request thread's CPU alone.
KINDS: dict[str, Callable[[], float]] = {
    "wall": time.perf_counter,
    "cpu": time.process_time,
    "thread_cpu": time.thread_time,
}
ON = {"OTEL_TRACES_SAMPLER": "always_on", "OTEL_SERVICE_NAME": "llamarada-bench"}
MODES = ("on", "off", "off", "on")  # repeated: each mode first and last as often


async def _measure(settings: Settings) -> dict[str, dict[str, list[float]]]:
    """Milliseconds of each request by mode and kind, to one app with tracing on."""
    app = create_app(settings)
    times: dict[str, dict[str, list[float]]] = {
        mode: {kind: [] for kind in KINDS} for mode in ("on", "off")
    }
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://localhost"
        ) as client,
    ):
        assert tracing.enabled(), "the app did not start tracing"
        for n in range(WARM_UP + REQUESTS):
            mode = MODES[n % len(MODES)]
            body = {
                "model": MODEL,
                "messages": [{"role": "user", "content": f"hello {n}"}],
                "stream": False,
            }
            with tracing.suspended() if mode == "off" else contextlib.nullcontext():
                started = [clock() for clock in KINDS.values()]
                response = await client.post("/api/chat", json=body)
                ended = [clock() for clock in KINDS.values()]
            assert response.status_code == 200, response.text
            if n >= WARM_UP:
                for kind, start, end in zip(KINDS, started, ended, strict=True):
                    times[mode][kind].append((end - start) * 1000)
    return times


@contextmanager
def _json_logs() -> Iterator[None]:
    """Logs configured as `llamarada serve` configures them at INFO (a JSON line per request,
    libraries' chatter off), written to /dev/null."""
    root = logging.getLogger()
    kept = root.level, list(root.handlers)
    with open(os.devnull, "w") as sink:
        config = logging_config("INFO")
        config["handlers"]["stdout"]["stream"] = sink
        logging.config.dictConfig(config)
        try:
            yield
        finally:
            root.setLevel(kept[0])
            root.handlers[:] = kept[1]


def _off_path_ns() -> dict[str, float]:
    """Nanoseconds per call of each helper a request runs while tracing is off."""
    assert not tracing.enabled()

    @tracing.traced("x")
    async def coroutine() -> None:
        """A decorated coroutine (its call, not the await, is what is timed)."""

    calls: dict[str, Callable[[], object]] = {
        "span() entered": lambda: tracing.span("x", {"a": 1}).__enter__(),
        "traced coroutine call": lambda: coroutine().close(),
        "traced_stream": lambda: tracing.traced_stream("x", None),  # type: ignore[arg-type]
        "outgoing_headers": tracing.outgoing_headers,
        "log_ids": tracing.log_ids,
    }
    number = TIMED_CALLS
    return {
        name: round(min(timeit.repeat(call, number=number, repeat=3)) / number * 1e9, 1)
        for name, call in calls.items()
    }


def run() -> dict[str, Any]:
    """Both modes, request by request in one app; then the off path's helpers."""
    receiver_port = free_port()
    receiver = [sys.executable, "-m", "tests.otlp", str(receiver_port)]
    upstream_port = free_port()
    upstream = [sys.executable, "-m", "bench.raw_upstream", "--port", str(upstream_port)]
    with (
        _json_logs(),
        process(receiver, receiver_port, "/") as receiver_url,
        process(upstream, upstream_port, "/api/version") as upstream_url,
        tempfile.TemporaryDirectory() as data,
    ):
        settings = Settings(
            _env_file=None,
            data_dir=Path(data),
            llm_backend="ollama",
            ollama_urls=[upstream_url],
            default_model=MODEL,
        )
        os.environ.update(ON, OTEL_EXPORTER_OTLP_ENDPOINT=receiver_url)
        try:
            samples = asyncio.run(_measure(settings))
        finally:
            os.environ.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    result: dict[str, Any] = {"requests_per_mode": REQUESTS // 2}
    for kind in KINDS:
        off = statistics.median(samples["off"][kind])
        on = statistics.median(samples["on"][kind])
        result[f"{kind}_p50_off_ms"] = round(off, 3)
        result[f"{kind}_p50_on_ms"] = round(on, 3)
        result[f"{kind}_added_p50_ms"] = round(on - off, 3)
        result[f"{kind}_ratio"] = round(on / off, 3)
    result["cpu_mean_added_ms"] = round(
        statistics.fmean(samples["on"]["cpu"]) - statistics.fmean(samples["off"]["cpu"]), 3
    )
    result["off_path_ns"] = _off_path_ns()
    return result


def rows(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The benchmark table's row."""
    return [
        (
            "Tracing on (every request sampled, spans sent over OTLP/HTTP) vs off, `/api/chat`"
            " miss: the request's CPU, p50",
            f"{result['thread_cpu_p50_on_ms']:.2f} vs {result['thread_cpu_p50_off_ms']:.2f} ms"
            f" (+{result['thread_cpu_added_p50_ms']:.3f} ms;"
            f" wall +{result['wall_added_p50_ms']:.3f} ms)",
            f"{result['thread_cpu_ratio']:.3f}",
            "goal: added p50 <= 0.2 ms; requests paired in one app (`bench.tracing_overhead`)",
        ),
    ]


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
