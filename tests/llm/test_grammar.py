"""The grammar builder's child process: schemas built once, refusals as 422, its death contained."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.core.config import LimitSettings
from app.core.errors import InvalidRequest
from app.llm.embedded import default_model_path
from app.llm.grammar import GrammarCompiler
from tests.llm.schemas import EVERYDAY, REPORTED

pytestmark = pytest.mark.timeout(60)
MiB = 1024 * 1024


def rss() -> int:
    """This process's resident memory, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def worker_pids() -> list[int]:
    """This process's grammar builders (other children, such as the upload parsers' fork
    server that earlier tests started, are not theirs to count)."""
    found: list[int] = []
    for task in Path("/proc/self/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:  # gone meanwhile
                continue
            if b"grammar_worker" in command:
                found.append(int(pid))
    return found


@pytest.fixture
async def lifted() -> AsyncIterator[GrammarCompiler]:
    """A builder with no grammar size limit to speak of: the child's own limits are the test."""
    compiler = GrammarCompiler(LimitSettings(max_grammar_bytes=64 * MiB, grammar_memory_mb=64))
    yield compiler
    await compiler.aclose()


async def test_grammar_builds_each_everyday_schema_once() -> None:
    compiler = GrammarCompiler(LimitSettings(), default_model_path())  # sampled through, too
    try:
        for schema in EVERYDAY:
            assert "root ::=" in await compiler.grammar(schema)
        for schema in EVERYDAY:
            await compiler.grammar(schema)
        assert compiler.built == len(EVERYDAY)
        # Strings hold no raw control characters: JSON forbids them.
        assert "\\x00-\\x1F" in await compiler.grammar({"type": "string"})
    finally:
        await compiler.aclose()
    assert worker_pids() == []


async def test_grammar_refused_by_llama_cpp_is_422_and_the_child_lives_on(
    lifted: GrammarCompiler,
) -> None:
    """The reported crash: llama.cpp refuses a 2000-deep grammar; here that is only a 422."""
    with pytest.raises(InvalidRequest) as caught:
        await lifted.grammar(REPORTED[0])
    assert caught.value.field == "format"
    assert "llama.cpp" in caught.value.message
    (pid,) = worker_pids()
    assert "root ::=" in await lifted.grammar(EVERYDAY[0])
    assert worker_pids() == [pid]


async def test_grammar_memory_bomb_ends_in_the_child_not_here(lifted: GrammarCompiler) -> None:
    """`minItems: 10**8` wants gigabytes: the child's limit stops it, this process stays flat."""
    before = rss()
    bomb = {"type": "array", "items": {"type": "string"}, "minItems": 10**8}
    with pytest.raises(InvalidRequest) as caught:
        await lifted.grammar(bomb, field="response_format")
    assert caught.value.field == "response_format"
    assert "memory" in caught.value.message or "limits" in caught.value.message
    assert rss() - before < 32 * MiB
    assert "root ::=" in await lifted.grammar(EVERYDAY[1])
    with pytest.raises(InvalidRequest):  # remembered: not built a second time
        await lifted.grammar(bomb)
    assert lifted.built == 2


async def test_grammar_child_killed_between_schemas_is_replaced() -> None:
    compiler = GrammarCompiler(LimitSettings())
    try:
        await compiler.grammar(EVERYDAY[0])
        (pid,) = worker_pids()
        os.kill(pid, signal.SIGKILL)
        assert "root ::=" in await compiler.grammar(EVERYDAY[1])
        assert [other for other in worker_pids() if other != pid]
    finally:
        await compiler.aclose()


async def test_grammar_past_the_deadline_is_422_and_the_child_is_stopped() -> None:
    # Sampling 8 tokens over the whole vocabulary takes tens of milliseconds at least.
    compiler = GrammarCompiler(LimitSettings(grammar_timeout=0.001), default_model_path())
    try:
        with pytest.raises(InvalidRequest) as caught:
            await compiler.grammar(EVERYDAY[0])
        assert "longer" in caught.value.message
        assert worker_pids() == []
    finally:
        await compiler.aclose()


async def test_grammar_too_big_for_the_setting_is_422() -> None:
    compiler = GrammarCompiler(LimitSettings(max_grammar_bytes=4096))
    try:
        with pytest.raises(InvalidRequest) as caught:
            await compiler.grammar({"enum": [f"value {i}" for i in range(1000)]})
        assert "at most 4096" in caught.value.message
    finally:
        await compiler.aclose()


async def test_grammar_whose_matching_crawls_is_422() -> None:
    """`(a?){0,500}` passes the count limits, but each token's matching takes seconds."""
    limits = LimitSettings(grammar_timeout=5)
    compiler = GrammarCompiler(limits, default_model_path())
    try:
        assert await compiler.grammar({"type": "string", "pattern": "^(a?){0,5}$"})
        with pytest.raises(InvalidRequest) as caught:
            await compiler.grammar({"type": "string", "pattern": "^(a?){0,500}$"})
        assert "per token" in caught.value.message or "longer" in caught.value.message
    finally:
        await compiler.aclose()
