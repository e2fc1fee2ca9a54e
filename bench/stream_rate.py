"""Streamed tokens/s through the gateway vs raw llama-cpp-python on the same prompt."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import llama_cpp

from app.llm.embedded import OLLAMA_DEFAULTS, default_model_path
from bench.common import gateway, median

ROUNDS = 5
TOKENS = 128
PROMPT = "Write a short story about a lighthouse keeper."


def raw_rate(llm: llama_cpp.Llama) -> float:
    """Tokens/s from the first to the last token, llama-cpp-python alone."""
    messages: Any = [{"role": "user", "content": PROMPT}]
    sampling = {**OLLAMA_DEFAULTS, "temperature": 0}  # what the gateway asks llama.cpp for
    stream: Any = llm.create_chat_completion(
        messages=messages, stream=True, max_tokens=TOKENS, stop=[], **sampling
    )
    times = [time.perf_counter() for part in stream if part["choices"][0]["delta"].get("content")]
    return (len(times) - 1) / (times[-1] - times[0])


def gateway_rate(client: httpx.Client) -> float:
    """Tokens/s from the first to the last streamed line, through /api/chat."""
    body = {
        "model": "smollm2:135m",
        "messages": [{"role": "user", "content": PROMPT}],
        "options": {"temperature": 0, "num_predict": TOKENS},
    }
    times = []
    headers = {"Cache-Control": "no-cache, no-store"}
    with client.stream("POST", "/api/chat", json=body, headers=headers) as response:
        for line in response.iter_lines():
            if line and not json.loads(line)["done"]:
                times.append(time.perf_counter())
    return (len(times) - 1) / (times[-1] - times[0])


def run() -> dict[str, float]:
    """Median tokens/s of each side and the ratio gateway / raw."""
    llm = llama_cpp.Llama(model_path=str(default_model_path()), n_ctx=2048, verbose=False)
    raw, through = [], []
    with (
        gateway(LLAMARADA_CACHE_TTL="0") as base,
        httpx.Client(base_url=base, timeout=120) as client,
    ):
        gateway_rate(client)  # warm-up
        raw_rate(llm)
        for _ in range(ROUNDS):  # alternated, so both sides see the same machine
            raw.append(raw_rate(llm))
            through.append(gateway_rate(client))
    return {
        "raw_tokens_per_s": median(raw),
        "gateway_tokens_per_s": median(through),
        "ratio": median(through) / median(raw),
    }
