"""Cache-hit latency through the gateway vs a bare Redis GET of the same entry from Python."""

from __future__ import annotations

import time
from typing import Any

import httpx
import redis

from bench.common import gateway, median, redis_server

ROUNDS = 300
BODY: dict[str, Any] = {
    "model": "smollm2:135m",
    "messages": [{"role": "user", "content": "Say hello in three words."}],
    "options": {"temperature": 0, "num_predict": 64},
    "stream": False,
}


def run() -> dict[str, float]:
    """Median seconds of each side, and the ratio gateway / bare GET."""
    with (
        redis_server() as url,
        gateway(LLAMARADA_REDIS_URL=url) as base,
        httpx.Client(base_url=base, timeout=60) as client,
    ):
        first = client.post("/api/chat", json=BODY)
        if client.post("/api/chat", json=BODY).headers["x-cache"] != "HIT":
            raise SystemExit(f"no cache hit; first answer: {first.json()}")
        raw = redis.Redis.from_url(url)
        (key,) = raw.keys("llamarada:response:*")
        hit, get = [], []
        for _ in range(ROUNDS):  # interleaved, so both sides see the same machine
            started = time.perf_counter()
            client.post("/api/chat", json=BODY)
            hit.append(time.perf_counter() - started)
            started = time.perf_counter()
            raw.get(key)
            get.append(time.perf_counter() - started)
        raw.close()
    return {
        "gateway_hit_ms": median(hit) * 1000,
        "redis_get_ms": median(get) * 1000,
        "ratio": median(hit) / median(get),
    }
