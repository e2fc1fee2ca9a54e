"""What bounding `format` schemas costs: the check per request, the child process per new schema."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from app.core.config import LimitSettings
from app.llm.base import ChatRequest
from app.llm.embedded import default_model_path
from app.llm.grammar import GrammarCompiler
from app.llm.grammar_worker import Builder
from app.llm.schema_limits import check_format
from bench.common import median

ROUNDS = 2000
NEW_SCHEMAS = 30
# The openai SDK's `parse()` of a small pydantic model (`strict: true`).
SCHEMA: dict[str, Any] = {
    "title": "CalendarEvent",
    "type": "object",
    "properties": {
        "name": {"title": "Name", "type": "string", "maxLength": 30},
        "date": {"title": "Date", "type": "string", "format": "date"},
        "participants": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
    },
    "required": ["name", "date", "participants"],
    "additionalProperties": False,
}
BODY = json.dumps(
    {
        "model": "smollm2:135m",
        "messages": [{"role": "user", "content": "Alice and Bob meet on Friday."}],
        "format": SCHEMA,
        "stream": False,
    }
)


def run() -> dict[str, float]:
    """Median seconds of each side, and their ratios."""
    limits = LimitSettings()
    check, parse = [], []
    for _ in range(ROUNDS):  # interleaved, so both sides see the same machine
        started = time.perf_counter()
        check_format(SCHEMA, limits)
        check.append(time.perf_counter() - started)
        started = time.perf_counter()
        ChatRequest.model_validate_json(BODY)
        parse.append(time.perf_counter() - started)
    child, in_process, first, cached = asyncio.run(_grammars(limits))
    return {
        "check_us": median(check) * 1e6,
        "parse_us": median(parse) * 1e6,
        "check_ratio": median(check) / median(parse),
        "child_ms": median(child) * 1000,
        "in_process_ms": median(in_process) * 1000,
        "child_ratio": median(child) / median(in_process),
        "first_ms": first * 1000,
        "cached_us": median(cached) * 1e6,
    }


async def _grammars(limits: LimitSettings) -> tuple[list[float], list[float], float, list[float]]:
    model = default_model_path()
    compiler = GrammarCompiler(limits, model)  # as the embedded backend runs it
    builder = Builder(str(model))  # the child's own work, done here in this process
    work = (limits.max_grammar_bytes, limits.grammar_check_tokens, limits.grammar_token_ms)
    try:
        started = time.perf_counter()
        await compiler.grammar(SCHEMA)  # starts the child: imports llama_cpp
        first = time.perf_counter() - started
        child, in_process, cached = [], [], []
        for n in range(NEW_SCHEMAS):
            schema = {**SCHEMA, "title": f"Event{n}"}  # a new schema each round: no cache hit
            started = time.perf_counter()
            await compiler.grammar(schema)
            child.append(time.perf_counter() - started)
            started = time.perf_counter()
            await compiler.grammar(schema)
            cached.append(time.perf_counter() - started)
            started = time.perf_counter()  # what the same work costs in the server's process
            builder.compile(json.dumps(schema), *work)
            in_process.append(time.perf_counter() - started)
    finally:
        await compiler.aclose()
    return child, in_process, first, cached


def rows(result: dict[str, float]) -> list[tuple[str, str, str, str]]:
    """The benchmark table's rows."""
    return [
        (
            "`format` schema check per request vs parsing the same `/api/chat` body",
            f"{result['check_us']:.1f} vs {result['parse_us']:.1f} us",
            f"{result['check_ratio']:.2f}",
            "an openai `parse()` schema; every request with a schema pays it",
        ),
        (
            "New schema's grammar built and tried in the child process vs the same in process",
            f"{result['child_ms']:.2f} vs {result['in_process_ms']:.2f} ms "
            f"(child start {result['first_ms']:.0f} ms once; cached {result['cached_us']:.0f} us)",
            f"{result['child_ratio']:.1f}x the time",
            "once per distinct schema, 8 tokens sampled through it; a crash costs only the child",
        ),
    ]


if __name__ == "__main__":
    print(run())
