"""JSON schema to llama.cpp grammar, built and checked in a child process, remembered per schema.

llama.cpp crashes the process that hands it a grammar it cannot parse, and the schema converter
can take any amount of memory; both run in `grammar_worker.py`, a long-lived child under a
memory limit and a deadline, one schema at a time. Each distinct schema is built once: the
grammar (or the reason there is none) is remembered by the schema's hash.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any

from app.core.config import LimitSettings
from app.core.errors import InvalidRequest

logger = logging.getLogger(__name__)

WORKER = Path(__file__).with_name("grammar_worker.py")
CACHED_SCHEMAS = 256  # grammars are at most `max_grammar_bytes` each
STARTUP_TIMEOUT = 60.0  # seconds for the child's imports and the model's vocabulary

Outcome = tuple[str, str]  # (grammar, "") or ("", why there is none)


class GrammarCompiler:
    """Grammars for JSON schemas, from a child process that may die without harm."""

    def __init__(self, limits: LimitSettings, model_path: Path | None = None) -> None:
        self._limits = limits
        self._model_path = model_path  # its vocabulary lets the child try sampling
        self._outcomes: OrderedDict[str, Outcome] = OrderedDict()
        self._lock = asyncio.Lock()  # one schema at a time: a flood of new ones queues here
        self._process: asyncio.subprocess.Process | None = None
        self.built = 0  # schemas sent to the child, for tests and metrics

    async def grammar(self, schema: dict[str, Any], field: str = "format") -> str:
        """The grammar for `schema`; `InvalidRequest` naming `field` when there is none."""
        text = json.dumps(schema, separators=(",", ":"))  # key order kept: it orders the output
        key = hashlib.sha256(text.encode()).hexdigest()
        outcome = self._outcomes.get(key)
        if outcome is None:
            async with self._lock:
                outcome = self._outcomes.get(key) or await self._build(text)
            self._outcomes[key] = outcome
            if len(self._outcomes) > CACHED_SCHEMAS:
                self._outcomes.popitem(last=False)
        self._outcomes.move_to_end(key)
        grammar, error = outcome
        if error:
            raise InvalidRequest(error, field=field)
        return grammar

    async def aclose(self) -> None:
        """Stop the child."""
        await self._stop()

    async def _build(self, text: str) -> Outcome:
        self.built += 1
        request = json.dumps(
            {
                "schema": text,
                "max_bytes": self._limits.max_grammar_bytes,
                "tokens": self._limits.grammar_check_tokens,
                "token_ms": self._limits.grammar_token_ms,
            }
        )
        while True:
            reused = self._process is not None and self._process.returncode is None
            try:
                reply = await self._exchange(request.encode() + b"\n")
            except TimeoutError:
                await self._stop()
                return "", "building the schema's grammar took longer than this server allows"
            except (OSError, ValueError) as exc:  # no answer: the child died, or a cut line
                code = await self._stop()
                if reused:
                    continue  # it may have died before this schema: once more, with a new one
                logger.warning(
                    "grammar builder stopped",
                    extra={"exit_code": code, "error": type(exc).__name__},
                )
                return "", "the schema's grammar could not be built within this server's limits"
            except asyncio.CancelledError:
                # Its answer would be read as the next schema's: this child is done.
                if self._process is not None and self._process.returncode is None:
                    self._process.kill()
                self._process = None
                raise
            return str(reply.get("grammar", "")), str(reply.get("error", ""))

    async def _exchange(self, request: bytes) -> dict[str, Any]:
        """Send one request to the child and read its one-line reply."""
        process = await self._worker()
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(request)
        await process.stdin.drain()
        line = await asyncio.wait_for(process.stdout.readline(), self._limits.grammar_timeout)
        reply: dict[str, Any] = json.loads(line)  # an empty line: the child died
        return reply

    async def _worker(self) -> asyncio.subprocess.Process:
        if self._process is None or self._process.returncode is not None:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-I",  # the child imports nothing from the working directory or PYTHON* paths
                str(WORKER),
                str(self._limits.grammar_memory_mb * 1024 * 1024),
                *([str(self._model_path)] if self._model_path else []),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
                limit=8 * self._limits.max_grammar_bytes + 65536,  # JSON-escaped grammar
            )
            # Its start (imports, the vocabulary) is not the first schema's time.
            assert self._process.stdout is not None
            ready = await asyncio.wait_for(self._process.stdout.readline(), STARTUP_TIMEOUT)
            json.loads(ready)  # `{"ready": true}`; an empty line: it could not start
        return self._process

    async def _stop(self) -> int | None:
        """End the child (a new one starts with the next schema); its exit code."""
        process, self._process = self._process, None
        if process is None:
            return None
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        return await process.wait()
