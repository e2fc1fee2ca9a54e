"""Single flight: identical requests that arrive while one is generating share its stream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

from app.core.errors import UpstreamUnavailable
from app.llm.base import Chunk


class Flight:
    """One upstream generation, broadcast to every subscriber from its first chunk.

    The generation runs in its own task, so it outlives any one client; it is cancelled
    (and the model stops) only when the last subscriber has gone. `on_finish` runs once
    at the end, whatever the outcome; `error` is None when the answer is whole.
    """

    def __init__(
        self,
        source: AsyncGenerator[Chunk, None],
        on_finish: Callable[[Flight], Awaitable[None]],
    ) -> None:
        self.chunks: list[Chunk] = []
        self.error: BaseException | None = None
        self.finished = False
        self._subscribers = 0
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._run(source, on_finish))

    @property
    def _answered(self) -> bool:
        """Whether the generation has produced its last chunk."""
        return bool(self.chunks) and self.chunks[-1].done

    @property
    def joinable(self) -> bool:
        """True while a newcomer can still get the whole answer from this generation."""
        return not self.finished and not self._task.cancelling()

    async def _run(
        self,
        source: AsyncGenerator[Chunk, None],
        on_finish: Callable[[Flight], Awaitable[None]],
    ) -> None:
        try:
            async for chunk in source:
                self.chunks.append(chunk)
                self._wake()
        except asyncio.CancelledError:
            # Only reached once nobody listens, or at shutdown: no one to re-raise it to.
            self.error = UpstreamUnavailable("the generation was stopped")
        except Exception as exc:
            self.error = exc
        finally:
            self.finished = True
            self._wake()
            with contextlib.suppress(Exception):
                await source.aclose()
        await on_finish(self)

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def follow(self) -> AsyncIterator[Chunk]:
        """Every chunk of the generation, from the first, as it is produced."""
        self._subscribers += 1
        sent = 0
        try:
            while True:
                while sent < len(self.chunks):
                    yield self.chunks[sent]
                    sent += 1
                if self.finished:
                    if self.error is not None:
                        raise self.error
                    return
                await self._changed.wait()
        finally:
            self._subscribers -= 1
            # Stopped only while it still has words to write: past its last chunk it is ending
            # by itself, and stopping it then would keep a whole answer out of the cache.
            if self._subscribers == 0 and not self.finished and not self._answered:
                self._task.cancel()
