"""Run every benchmark and write docs/BENCHMARKS.md (`make bench`)."""

from __future__ import annotations

import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench import cache_hit, stream_rate

DOC = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"


def main() -> int:
    """Measure, print and write the table."""
    print("cache hit vs bare Redis GET ...", flush=True)
    cache = cache_hit.run()
    print(cache, flush=True)
    print("streamed tokens/s vs raw llama-cpp-python ...", flush=True)
    stream = stream_rate.run()
    print(stream, flush=True)
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    rows = [
        (
            "Cache hit, `/api/chat` non-streamed, vs a bare Redis `GET` of the same entry",
            f"{cache['gateway_hit_ms']:.2f} ms vs {cache['redis_get_ms']:.3f} ms",
            f"{cache['ratio']:.1f}x the time",
            "lower is better; the gap is HTTP, JSON and the ASGI stack",
        ),
        (
            "Streamed tokens/s through `/api/chat` vs raw llama-cpp-python, same prompt",
            f"{stream['gateway_tokens_per_s']:.1f} vs {stream['raw_tokens_per_s']:.1f} tok/s",
            f"{stream['ratio']:.3f}",
            "goal >= 0.95",
        ),
    ]
    table = "\n".join(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows)
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(
        f"""# Benchmarks

Measured side by side in one run on {when}, {platform.machine()} with
{_cores()} cores, Python {platform.python_version()}. Reproduce with `make bench`
(`python -m bench`), which rewrites this file. Both sides of each ratio run interleaved in the
same process, so the machine's load affects them alike; medians of every round.

| what | measured | ratio | note |
| --- | --- | --- | --- |
{table}
"""
    )
    print(f"wrote {DOC}")
    return 0


def _cores() -> int:
    import os

    return os.cpu_count() or 1


if __name__ == "__main__":
    sys.exit(main())
