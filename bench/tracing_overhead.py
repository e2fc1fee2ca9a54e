"""What tracing costs: `/api/chat` p50 with tracing on (100% sampled, exported over OTLP/HTTP
to a local receiver) against tracing off, and the off path's helpers per call.

`python -m bench.tracing_overhead` prints the figures. The two gateways are `llamarada serve`
processes in front of `bench.raw_upstream`, measured alternately (off, on, off, on) by `wrk`
with one connection and distinct prompts (every request a cache miss: the whole path, upstream
span and `traceparent` included). With tracing off the code runs the helpers' early returns
only; their cost per call is measured in process.
"""

from __future__ import annotations

import json
import statistics
import timeit
from collections.abc import Callable
from typing import Any

from app.core import tracing
from bench.hot_path import CHAT, llamarada, upstream, wrk
from tests.otlp import OtlpReceiver

ROUNDS = 2


def _off_path_ns() -> dict[str, float]:
    """Nanoseconds per call of each helper a request runs while tracing is off."""
    assert not tracing.enabled()

    @tracing.traced("x")
    async def coroutine() -> None:
        """A decorated coroutine (its call, not the await, is what is timed)."""

    calls: dict[str, Callable[[], object]] = {
        "span": lambda: tracing.span("x", {"a": 1}).__enter__(),
        "traced call": lambda: coroutine().close(),
        "traced_stream": lambda: tracing.traced_stream("x", None),  # type: ignore[arg-type]
        "outgoing_headers": tracing.outgoing_headers,
        "log_ids": tracing.log_ids,
    }
    number = 200_000
    return {
        name: min(timeit.repeat(call, number=number, repeat=3)) / number * 1e9
        for name, call in calls.items()
    }


def run() -> dict[str, Any]:
    """Both gateways, alternately, in one run; then the off path's helpers."""
    p50: dict[str, list[float]] = {"off": [], "on": []}
    receiver = OtlpReceiver()
    receiver.start()
    on_env: dict[str, str] = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_TRACES_SAMPLER": "always_on",
        "OTEL_SERVICE_NAME": "llamarada-bench",
    }
    try:
        with upstream() as direct:
            for _ in range(ROUNDS):
                for mode, env in (("off", dict[str, str]()), ("on", on_env)):
                    with llamarada(direct, 1, **env) as url:
                        wrk(url, "/api/chat", CHAT, clients=1)  # warm-up
                        single = wrk(url, "/api/chat", CHAT, clients=1)
                    p50[mode].append(single["p50_ms"])
    finally:
        receiver.stop()
    off, on = statistics.median(p50["off"]), statistics.median(p50["on"])
    return {
        "p50_off_ms": off,
        "p50_on_ms": on,
        "added_p50_ms": round(on - off, 3),
        "ratio": round(on / off, 3),
        "spans_received": len(receiver.spans),
        "rounds": p50,
        "off_path_ns": {k: round(v, 1) for k, v in _off_path_ns().items()},
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
