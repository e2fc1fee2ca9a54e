"""Every API dialect against `/api/chat` on the same upstream: what the Anthropic Messages and
OpenAI Responses surfaces add, whole answers and streams, throughput and single-client latency.

python -m bench.dialects [--duration 6s] [--rounds 3]

The upstream is `bench.raw_upstream` (canned answers at almost no CPU cost) behind one
`llamarada serve` worker, so the differences left are the dialects' own: validation of their
shapes, conversion to the pipeline's request, and encoding of the answer. The targets take turns
round by round (`wrk`, one thread), so the machine's load affects them alike; each figure is the
median of the rounds. Every request is distinct: no cache hits. The figures go to the
`## API dialects` section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import median
from bench.hot_path import CLIENTS, DURATION, llamarada, upstream, wrk
from bench.raw_upstream import MODEL

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
        gateway = stack.enter_context(llamarada(stack.enter_context(upstream())))
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


def rows(results: dict[str, dict[str, float]]) -> list[tuple[str, str, str, str, str]]:
    """One row per dialect: its figures beside `/api/chat`'s (whole or streamed, as it is)."""
    table = []
    for name, label in LABELS.items():
        base = "api_chat_stream" if name.endswith("_stream") else "api_chat"
        mine, chat = results[name], results[base]
        table.append(
            (
                label,
                f"{mine['rps']:.0f} vs {chat['rps']:.0f} req/s",
                f"{mine['rps'] / chat['rps']:.2f}",
                f"{mine['p50_ms']:.2f} vs {chat['p50_ms']:.2f} ms",
                f"{mine['p50_ms'] - chat['p50_ms']:+.2f} ms",
            )
        )
    return table


def section(results: dict[str, dict[str, float]], duration: str, rounds: int) -> str:
    """The `## API dialects` section of docs/BENCHMARKS.md."""
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    load = f"{os.getloadavg()[0]:.1f}"
    lines = "\n".join(f"| {' | '.join(row)} |" for row in rows(results))
    return f"""{SECTION}

`python -m bench.dialects --duration {duration} --rounds {rounds}`, run on {when}
({platform.machine()}, load average {load}): each dialect against `/api/chat` on the same
upstream (`bench.raw_upstream`), one `llamarada serve` worker, uncached, {CLIENTS} clients for
throughput and one for latency, the targets taking turns; a streamed dialect is set beside a
streamed `/api/chat`. Goal: within 10% of `/api/chat` (a ratio of 0.9 or more).

| surface | throughput vs `/api/chat` | ratio | p50, one client, vs `/api/chat` | added p50 |
| --- | --- | --- | --- | --- |
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
    results: Any = run(args.duration, args.rounds)
    for row in rows(results):
        print(" | ".join(row))
    update_doc(section(results, args.duration, args.rounds))
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
