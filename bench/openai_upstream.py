"""An OpenAI-compatible upstream against an Ollama one, same model, through the gateway.

python -m bench.openai_upstream [--rounds 10] [--tokens 16]

Two real servers with the same SmolLM2 GGUF: `llama_cpp.server` (OpenAI protocol) and a
Llamarada in embedded mode (Ollama protocol). A gateway in front of each (`LLAMARADA_UPSTREAMS`
of one server, cache off) gets the same `/api/chat` stream, round by round, interleaved, and
each server is also asked directly, so the gateway's added latency per upstream type is the
difference of medians measured side by side. Writes its section of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from bench.common import free_port, gateway, median, process

DOC = Path(__file__).resolve().parent.parent / "docs" / "BENCHMARKS.md"
TITLE = "## OpenAI-compatible upstream vs Ollama upstream"
MODEL = "smollm2:135m"
WARM_UP = 3
QUIET = {"LLAMARADA_LOG_LEVEL": "WARNING", "LLAMARADA_CACHE_TTL": "0"}


def _gguf() -> str:
    from app.llm.embedded import default_model_path

    return str(default_model_path())


def _timed(client: httpx.Client, url: str, body: dict[str, Any]) -> tuple[float, float]:
    """Seconds to the first streamed line and to the last."""
    started = time.perf_counter()
    first = 0.0
    with client.stream("POST", url, json=body, timeout=300) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.strip() and not first:
                first = time.perf_counter() - started
    return first, time.perf_counter() - started


def run(rounds: int = 10, tokens: int = 16) -> dict[str, float]:
    """Medians (ms) per path: each gateway and each server directly."""
    port = free_port()
    llama_server = [
        *(sys.executable, "-m", "llama_cpp.server", "--model", _gguf()),
        *("--model_alias", MODEL, "--port", str(port), "--n_threads", "1"),
        # By default a new request (a health check's /v1/models too) cuts the one streaming.
        *("--interrupt_requests", "false"),
    ]

    def ollama_body(turn: int) -> dict[str, Any]:
        # A new question each time: no server answers from a cached prompt of the last one.
        messages = [{"role": "user", "content": f"{turn}. Write one sentence about llamas."}]
        options = {"temperature": 0, "num_predict": tokens}
        return {"model": MODEL, "messages": messages, "options": options}

    def openai_body(turn: int) -> dict[str, Any]:
        body = ollama_body(turn)
        return {
            "model": MODEL,
            "messages": body["messages"],
            "temperature": 0,
            "max_tokens": tokens,
            "stream": True,
        }

    with ExitStack() as stack:
        data = stack.enter_context(tempfile.TemporaryDirectory())

        def server(name: str, **env: str) -> str:
            return stack.enter_context(gateway(**QUIET, LLAMARADA_DATA_DIR=f"{data}/{name}", **env))

        openai_url = stack.enter_context(process(llama_server, port, "/v1/models")) + "/v1"
        ollama_url = server("upstream", LLAMARADA_EMBEDDED__N_THREADS="1")
        via_openai = server("openai", LLAMARADA_UPSTREAMS=f"openai={openai_url}")
        via_ollama = server("ollama", LLAMARADA_UPSTREAMS=f"ollama={ollama_url}")
        paths = {
            "openai_direct": (f"{openai_url}/chat/completions", openai_body),
            "openai_gateway": (f"{via_openai}/api/chat", ollama_body),
            "ollama_direct": (f"{ollama_url}/api/chat", ollama_body),
            "ollama_gateway": (f"{via_ollama}/api/chat", ollama_body),
        }
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
        with httpx.Client() as client:
            # Warm-up: connections, and the first requests, which a fresh server answers slowly.
            for turn in range(WARM_UP):
                for url, body in paths.values():
                    _timed(client, url, body(turn))
            names = list(paths)
            for turn in range(WARM_UP, WARM_UP + rounds):
                # Each round starts one path later: no path always follows the same other one
                # (a server that has just worked slows the next one for a moment).
                for index in range(len(names)):
                    name = names[(turn + index) % len(names)]
                    url, body = paths[name]
                    samples[name].append(_timed(client, url, body(10 * turn + index)))
    result: dict[str, float] = {"rounds": rounds, "tokens": tokens}
    for name, values in samples.items():
        result[f"{name}_ttft_ms"] = median([first for first, _ in values]) * 1000
        result[f"{name}_ms"] = median([total for _, total in values]) * 1000
    return result


def section(result: dict[str, float]) -> str:
    """The Markdown section for docs/BENCHMARKS.md."""
    added_openai = result["openai_gateway_ms"] - result["openai_direct_ms"]
    added_ollama = result["ollama_gateway_ms"] - result["ollama_direct_ms"]
    rows = [
        (
            "`/api/chat` through the gateway: OpenAI-compatible upstream vs Ollama upstream",
            f"{result['openai_gateway_ms']:.0f} vs {result['ollama_gateway_ms']:.0f} ms "
            f"(first line {result['openai_gateway_ttft_ms']:.0f} vs "
            f"{result['ollama_gateway_ttft_ms']:.0f} ms)",
            f"{result['openai_gateway_ms'] / result['ollama_gateway_ms']:.2f}",
            "the servers differ too (see the direct rows)",
        ),
        (
            "Each server directly: llama_cpp.server `/v1/chat/completions` vs Llamarada "
            "`/api/chat`",
            f"{result['openai_direct_ms']:.0f} vs {result['ollama_direct_ms']:.0f} ms",
            f"{result['openai_direct_ms'] / result['ollama_direct_ms']:.2f}",
            "same GGUF, one thread each",
        ),
        (
            "Added by the gateway per upstream type (gateway minus direct, medians)",
            f"{added_openai:+.0f} ms OpenAI (translated SSE) vs {added_ollama:+.0f} ms Ollama",
            f"{result['openai_gateway_ms'] / result['openai_direct_ms']:.3f} vs "
            f"{result['ollama_gateway_ms'] / result['ollama_direct_ms']:.3f} of direct",
            "goal near 1; differences under the rounds' spread are noise",
        ),
    ]
    table = "\n".join(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows)
    return f"""{TITLE}

`python -m bench.openai_upstream --rounds {result["rounds"]:.0f} --tokens {result["tokens"]:.0f}`
on {time.strftime("%Y-%m-%d")}: the real SmolLM2 behind `llama_cpp.server` (OpenAI protocol) and
behind a Llamarada in embedded mode (Ollama protocol), one gateway in front of each
(`LLAMARADA_UPSTREAMS`, cache off), the same `/api/chat` stream of {result["tokens"]:.0f} tokens
at temperature 0 (a new question each time), interleaved round by round (each round starting one
path later) with each server asked directly, after {WARM_UP} warm-up rounds; medians. The
servers differ: the embedded backend evaluates every prompt in full (it resets llama.cpp's state
for reproducible answers), `llama_cpp.server` reuses the prefix it shares with the previous
prompt, so the direct rows compare servers, and the gateway's own cost per upstream type is the
last row. On a 2-core machine shared with other work, prompt evaluation alone varies by seconds
between rounds: rows whose difference is below that spread show noise, not a cost.

| what | measured | ratio | note |
| --- | --- | --- | --- |
{table}
"""


def write(text: str) -> None:
    """Replace this benchmark's section of docs/BENCHMARKS.md (or add it at the end)."""
    doc = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if TITLE in doc:
        start = doc.index(TITLE)
        end = doc.find("\n## ", start + len(TITLE))
        doc = doc[:start] + text + (doc[end + 1 :] if end != -1 else "")
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    DOC.write_text(doc)


def main() -> None:
    """Measure, print, write."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--tokens", type=int, default=16)
    args = parser.parse_args()
    result = run(args.rounds, args.tokens)
    print(result, flush=True)
    write(section(result))
    print(f"wrote {DOC}")


if __name__ == "__main__":
    main()
