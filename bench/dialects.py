"""Every API dialect against `/api/chat` on the same upstream: what the Anthropic Messages and
OpenAI Responses surfaces add, whole answers and streams, throughput and single-client latency.

python -m bench.dialects [--duration 6s] [--rounds 3]

The upstream is `bench.raw_upstream` (canned answers at almost no CPU cost) behind one
`llamarada serve` worker, so the differences left are the dialects' own: validation of their
shapes, conversion to the pipeline's request, and encoding of the answer. The targets take turns
round by round (`wrk`, one thread), so the machine's load affects them alike; each figure is the
median of the rounds. The cache is off: every request reaches the upstream. The figures go to the
`## API dialects` section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from app.core.config import Settings
from app.main import create_app
from bench.common import median
from bench.hot_path import CLIENTS, DURATION, llamarada, upstream, wrk
from bench.raw_upstream import MODEL
from tests.fakes import ScriptedBackend

DOC = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"
SECTION = "## API dialects"
_HELLO = '[{"role":"user","content":"hello %d"}]'
# Lua string.format templates: %d becomes the request's number.
BODIES = {
    "api_chat": ("/api/chat", f'"messages":{_HELLO},"options":{{"num_predict":64}},"stream":false'),
    "v1_chat": ("/v1/chat/completions", f'"messages":{_HELLO},"max_tokens":64'),
    "v1_messages": ("/v1/messages", f'"messages":{_HELLO},"max_tokens":64'),
    "v1_responses": ("/v1/responses", '"input":"hello %d","max_output_tokens":64'),
    "api_chat_stream": ("/api/chat", f'"messages":{_HELLO},"options":{{"num_predict":64}}'),
    "v1_messages_stream": ("/v1/messages", f'"messages":{_HELLO},"max_tokens":64,"stream":true'),
    "v1_responses_stream": (
        "/v1/responses",
        '"input":"hello %d","max_output_tokens":64,"stream":true',
    ),
}
LABELS = {
    "v1_chat": "`/v1/chat/completions`",
    "v1_messages": "`/v1/messages`",
    "v1_responses": "`/v1/responses`",
    "v1_messages_stream": "`/v1/messages` streamed (SSE events)",
    "v1_responses_stream": "`/v1/responses` streamed (SSE events)",
}


def run(duration: str = DURATION, rounds: int = 3) -> dict[str, dict[str, float]]:
    """Each target's median throughput (32 clients) and single-client latency, in one run."""
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in BODIES}
    with ExitStack() as stack:
        # The cache off: each wrk run numbers its requests from 1 again, which would be hits.
        gateway = stack.enter_context(
            llamarada(stack.enter_context(upstream()), LLAMARADA_CACHE_TTL="0")
        )
        # Warm-up, not measured: the first seconds of a fresh worker (connections to the
        # upstream opened, first calls of every code path) would count against the first target.
        for path, fields in BODIES.values():
            wrk(gateway, path, f'{{"model":"{MODEL}",{fields}}}', clients=CLIENTS, duration="1s")
        for _ in range(rounds):
            for name, (path, fields) in BODIES.items():
                body = f'{{"model":"{MODEL}",{fields}}}'
                many = wrk(gateway, path, body, clients=CLIENTS, duration=duration)
                one = wrk(gateway, path, body, clients=1, duration=duration)
                samples[name].append({"rps": many["rps"], "p50_ms": one["p50_ms"]})
    return {
        name: {key: median([s[key] for s in runs]) for key in ("rps", "p50_ms")}
        for name, runs in samples.items()
    }


def cpu_per_request(requests: int = 300, rounds: int = 5) -> dict[str, float]:
    """Each target's CPU time per request (us), in process on a scripted backend, cache off:
    CPU time, unlike wall time, hardly moves with what else the machine runs."""
    return asyncio.run(_cpu_per_request(requests, rounds))


async def _cpu_per_request(requests: int, rounds: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in BODIES}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(_env_file=None, cache_ttl=0, data_dir=f"{tmp}/data")
        backend = ScriptedBackend(pieces=("w0", " w1"), model=MODEL)
        app = create_app(settings, backend=backend)
        async with (
            LifespanManager(app) as manager,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=manager.app), base_url="http://localhost"
            ) as client,
        ):
            for round_ in range(rounds + 1):  # the first round warms up, unmeasured
                for name, (path, fields) in BODIES.items():
                    started = time.process_time()
                    for number in range(requests):
                        text = f'{{"model":"{MODEL}",{fields}}}' % number
                        answer = await client.post(path, json=json.loads(text))
                        answer.raise_for_status()
                    if round_:
                        samples[name].append((time.process_time() - started) / requests * 1e6)
    return {name: median(values) for name, values in samples.items()}


def rows(results: dict[str, dict[str, float]], cpu: dict[str, float]) -> list[tuple[str, ...]]:
    """One row per dialect: its figures beside `/api/chat`'s (whole or streamed, as it is)."""
    table: list[tuple[str, ...]] = []
    for name, label in LABELS.items():
        base = "api_chat_stream" if name.endswith("_stream") else "api_chat"
        mine, chat = results[name], results[base]
        table.append(
            (
                label,
                f"{cpu[name]:.0f} vs {cpu[base]:.0f} us",
                f"{cpu[name] / cpu[base]:.2f}",
                f"{mine['rps']:.0f} vs {chat['rps']:.0f} req/s",
                f"{mine['rps'] / chat['rps']:.2f}",
                f"{mine['p50_ms']:.2f} vs {chat['p50_ms']:.2f} ms",
            )
        )
    return table


def section(
    results: dict[str, dict[str, float]], cpu: dict[str, float], duration: str, rounds: int
) -> str:
    """The `## API dialects` section of docs/BENCHMARKS.md."""
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    load = f"{os.getloadavg()[0]:.1f}"
    lines = "\n".join(f"| {' | '.join(row)} |" for row in rows(results, cpu))
    return f"""{SECTION}

`python -m bench.dialects --duration {duration} --rounds {rounds}`, run on {when}
({platform.machine()}, {os.cpu_count()} cores, load average {load}): each dialect against
`/api/chat` on the same upstream, the cache off; a streamed dialect is set beside a streamed
`/api/chat`. CPU per request: in process on a scripted backend (the gateway's own work: parsing,
conversion, the pipeline, encoding), medians of 5 rounds of 300 requests; CPU time hardly moves
with what else the machine runs. Throughput ({CLIENTS} clients) and p50 (one client): over HTTP
to one `llamarada serve` worker in front of `bench.raw_upstream`, the targets taking turns,
medians of the rounds; wall-clock figures, so on a busy machine they carry its noise (the
`/v1/chat/completions` row, a surface this comparison does not change, shows how much). Goal:
within 10% of `/api/chat` (a ratio of at most 1.1 for CPU, at least 0.9 for throughput). With
a load average above the core count, read the CPU columns, and rerun for the wall-clock ones.

| surface | CPU/request vs `/api/chat` | ratio | throughput vs `/api/chat` | ratio | p50, 1 client |
| --- | --- | --- | --- | --- | --- |
{lines}
"""


def update_doc(text: str) -> None:
    """Replace (or add) the section in docs/BENCHMARKS.md, leaving the rest as it is."""
    current = DOC.read_text() if DOC.exists() else ""
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.M | re.S)
    if pattern.search(current):
        DOC.write_text(pattern.sub(lambda _: text + "\n", current, count=1))
    else:
        DOC.write_text(current.rstrip("\n") + "\n\n" + text)


def main() -> None:
    """Measure, print, and write the section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", default=DURATION, help="per wrk run, e.g. 6s")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    cpu = cpu_per_request()
    results: Any = run(args.duration, args.rounds)
    for row in rows(results, cpu):
        print(" | ".join(row))
    update_doc(section(results, cpu, args.duration, args.rounds))
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
