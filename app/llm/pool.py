"""A pool of Ollama and OpenAI-compatible servers: model-aware routing, health checks, a breaker
and a bounded queue.

A request goes to a server that has the model, preferring one that has it loaded, then the
least busy. Any failure before the first chunk (a refused, dropped or reset connection, a
timeout, an empty or cut response, a 503 or a 429) fails over to the next server, as nothing
has reached the client yet; after the first chunk nothing is retried. Each server takes
`max_concurrency` requests at once and queues `max_queue` more; when every queue is full the
pool answers at once with `Overloaded` (503 and Retry-After) instead of timing out. With Redis,
the cap and the queue hold across every process sharing it (`app.llm.slots`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import urlsplit

from app.core import tracing
from app.core.config import PoolSettings
from app.core.errors import (
    LlamaradaError,
    ModelNotFound,
    Overloaded,
    UpstreamError,
    UpstreamUnavailable,
)
from app.core.metrics import Metrics
from app.llm.base import Backend, ChatRequest, Chunk, Embeddings, GenerateRequest, ModelInfo
from app.llm.ollama import OllamaBackend
from app.llm.slots import ClusterSlots
from app.llm.version import lowest_version

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Breaker(StrEnum):
    """A server's circuit breaker state."""

    CLOSED = "closed"  # requests flow
    OPEN = "open"  # failing: no requests until the cool-down has passed
    HALF_OPEN = "half_open"  # cooled down: one trial request decides


@dataclass(eq=False)
class Member:
    """One server of the pool (any backend: Ollama, OpenAI-compatible) and what the pool knows."""

    backend: Backend
    models: dict[str, ModelInfo] | None = None  # None until its model list was read once
    loaded: set[str] = field(default_factory=set)
    in_flight: int = 0
    waiting: int = 0
    failures: int = 0
    breaker: Breaker = Breaker.CLOSED
    opened_at: float = 0.0
    slot_freed: asyncio.Event = field(default_factory=asyncio.Event)
    # What the model call's span says of the server that answered, made once.
    span_attributes: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        where = urlsplit(self.url)  # OpenTelemetry's GenAI conventions name the server so
        self.span_attributes = {
            "server.address": where.hostname or self.url,
            "server.port": where.port,  # None, when the URL has none: the span drops it
            "llamarada.upstream.server": self.url,
        }

    @property
    def url(self) -> str:
        """The server's base URL, its name in metrics and logs."""
        return self.backend.name

    def has(self, model: str) -> bool | None:
        """Whether it serves the model; None while its list is unknown."""
        return None if self.models is None else model in self.models


class OllamaPool:
    """Implements the Backend protocol over one or more servers: Ollama base URLs, or backends
    already built (such as `OpenAIBackend`)."""

    def __init__(
        self,
        urls: Sequence[str | Backend],
        settings: PoolSettings,
        metrics: Metrics,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 300.0,
        slots: ClusterSlots | None = None,
    ) -> None:
        self.name = "ollama"
        self._settings = settings
        self._metrics = metrics
        self._slots = slots or ClusterSlots(
            None,
            max_concurrency=settings.max_concurrency,
            max_queue=settings.max_queue,
            lease_seconds=settings.lease_seconds,
        )
        self.members = [
            Member(
                OllamaBackend(url, connect_timeout=connect_timeout, read_timeout=read_timeout)
                if isinstance(url, str)
                else url
            )
            for url in urls
        ]
        self._health_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Read every server's models once, then keep checking them in the background."""
        await self.refresh()
        await self._slots.start()
        self._health_task = asyncio.create_task(self._health_loop())

    async def aclose(self) -> None:
        """Stop the health checks and close every connection."""
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
        await self._slots.aclose()
        for member in self.members:
            await member.backend.aclose()

    @property
    def api_version(self) -> str | None:
        """The lowest Ollama version among the servers that answered: what every one speaks."""
        # getattr: only Ollama servers report one; other upstream types have nothing to add.
        versions = (getattr(m.backend, "version", None) for m in self.members)
        return lowest_version(version for version in versions if isinstance(version, str))

    # Routing and admission ------------------------------------------------------------------

    async def _admit(self, model: str, tried: set[Member]) -> Member:
        """A server for the model with a free slot, waiting in its queue if needed."""
        candidates = [m for m in self.members if m not in tried and self._usable(m)]
        serving = [m for m in candidates if m.has(model)]
        if not serving and not any(m.has(model) for m in self.members):
            await self.refresh()  # a model pulled since the last check should be found
            serving = [m for m in candidates if m.has(model)]
        serving += [m for m in candidates if m.has(model) is None]  # lists not read yet
        if not serving:
            if any(m.has(model) for m in self.members):
                raise UpstreamUnavailable(
                    f"no Ollama server with {model!r} is available",
                    retry_after=self._settings.retry_after,
                )
            raise ModelNotFound(model, self._known_models())
        cap = self._settings.max_concurrency
        serving.sort(key=lambda m: (model not in m.loaded, m.in_flight / cap, m.waiting))
        for member in serving:
            if member.in_flight < cap and await self._slots.take(member.url):
                self._take(member)
                return member
        queue = min(serving, key=lambda m: m.waiting)
        if queue.waiting >= self._settings.max_queue or not await self._slots.enter_queue(
            queue.url
        ):
            raise Overloaded(
                f"every Ollama server with {model!r} is busy and its queue is full",
                retry_after=self._settings.retry_after,
            )
        queue.waiting += 1
        try:
            with tracing.span("llamarada.queue.wait", {"llamarada.upstream.server": queue.url}):
                while True:
                    queue.slot_freed.clear()
                    if queue.in_flight < cap and await self._slots.take(queue.url):
                        break
                    await self._slots.wait(queue.slot_freed)
        finally:
            queue.waiting -= 1
            self._slots.leave_queue(queue.url)
        self._take(queue)
        return queue

    def _usable(self, member: Member) -> bool:
        """The breaker's verdict: closed, or cooled down with no trial under way."""
        if member.breaker is Breaker.OPEN:
            if time.monotonic() - member.opened_at < self._settings.breaker_cooldown:
                return False
            member.breaker = Breaker.HALF_OPEN
            logger.info("breaker half-open, trying the server", extra={"backend": member.url})
        if member.breaker is Breaker.HALF_OPEN:
            return member.in_flight == 0
        return True

    def _take(self, member: Member) -> None:
        member.in_flight += 1
        self._metrics.in_flight.labels(backend=member.url).set(member.in_flight)

    def _release(self, member: Member) -> None:
        self._slots.release(member.url)
        member.in_flight -= 1
        self._metrics.in_flight.labels(backend=member.url).set(member.in_flight)
        member.slot_freed.set()

    def _known_models(self) -> list[str]:
        return sorted({name for m in self.members for name in m.models or {}})

    # Outcomes --------------------------------------------------------------------------------

    def _succeeded(self, member: Member) -> None:
        if member.breaker is not Breaker.CLOSED:
            logger.info("breaker closed", extra={"backend": member.url})
        member.failures = 0
        member.breaker = Breaker.CLOSED
        self._metrics.backend_up.labels(backend=member.url).set(1)

    def _failed(self, member: Member, exc: LlamaradaError) -> None:
        self._metrics.upstream_errors.labels(backend=member.url, reason=exc.error_type).inc()
        if not isinstance(exc, UpstreamError):
            return  # a full queue (429) or a bad request is no sign of a broken server
        member.failures += 1
        if member.breaker is Breaker.HALF_OPEN or (
            member.breaker is Breaker.CLOSED and member.failures >= self._settings.breaker_failures
        ):
            member.breaker = Breaker.OPEN
            member.opened_at = time.monotonic()
            self._metrics.backend_up.labels(backend=member.url).set(0)
            logger.warning("breaker open", extra={"backend": member.url, "error": exc.message})

    # Streaming with failover -----------------------------------------------------------------

    def chat(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        """Stream a chat from the best server, failing over before the first chunk."""
        return self._stream(request.model, lambda member: member.backend.chat(request))

    def generate(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]:
        """Stream a completion, failing over before the first chunk."""
        return self._stream(request.model, lambda member: member.backend.generate(request))

    async def _stream(
        self, model: str, start: Callable[[Member], AsyncGenerator[Chunk, None]]
    ) -> AsyncGenerator[Chunk, None]:
        # No span of its own: the pipeline's model-call span (`app.llm.traces`) is current until
        # the first chunk, and it is the upstream call (GenAI conventions): the server that
        # answered is its `server.*` attributes, and each failover before it one of its events.
        tried: dict[Member, LlamaradaError | None] = {}
        while True:
            member = await self._next(model, tried)
            tried[member] = None
            stream = start(member)
            try:
                first = await anext(stream)
            except (UpstreamUnavailable, Overloaded, ModelNotFound) as exc:
                self._release(member)
                await stream.aclose()
                tried[member] = exc
                self._note_before_first_byte(member, model, exc)
                continue
            except UpstreamError as exc:
                self._release(member)
                self._failed(member, exc)
                raise
            except BaseException:
                self._release(member)
                raise
            self._succeeded(member)
            tracing.current_span().set_attributes(member.span_attributes)
            try:
                yield first
                async for chunk in stream:
                    yield chunk
            except UpstreamError as exc:  # after the first byte: reported, never retried
                self._failed(member, exc)
                raise
            finally:
                self._release(member)
                await stream.aclose()
            return

    async def _next(self, model: str, tried: dict[Member, LlamaradaError | None]) -> Member:
        """The next server to try; once all have failed, the last one's error."""
        try:
            return await self._admit(model, set(tried))
        except (ModelNotFound, UpstreamUnavailable):
            errors = [error for error in tried.values() if error is not None]
            if errors:
                raise errors[-1] from None
            raise

    def _note_before_first_byte(self, member: Member, model: str, exc: LlamaradaError) -> None:
        if isinstance(exc, ModelNotFound) and member.models is not None:
            member.models.pop(model, None)  # stale list: it no longer has the model
        else:
            self._failed(member, exc)
        tracing.current_span().add_event(
            "failover", {"llamarada.upstream.server": member.url, "error.type": exc.error_type}
        )
        logger.info(
            "failing over before the first byte",
            extra={"backend": member.url, "error": exc.message},
        )

    async def _call(self, model: str, call: Callable[[Member], Awaitable[T]]) -> T:
        """A one-shot call with the same routing and failover as the streams."""
        tried: dict[Member, LlamaradaError | None] = {}
        while True:
            member = await self._next(model, tried)
            tried[member] = None
            try:
                result = await call(member)
            except (UpstreamUnavailable, Overloaded, ModelNotFound) as exc:
                tried[member] = exc
                self._note_before_first_byte(member, model, exc)
                continue
            except UpstreamError as exc:
                self._failed(member, exc)
                raise
            finally:
                self._release(member)
            self._succeeded(member)
            return result

    # The rest of the Backend protocol --------------------------------------------------------

    async def embed(self, model: str, inputs: list[str], *, truncate: bool = True) -> Embeddings:
        """Embeddings from a server that has the model."""
        return await self._call(model, lambda m: m.backend.embed(model, inputs, truncate=truncate))

    async def show(self, model: str) -> dict[str, Any]:
        """`/api/show` from a server that has the model."""
        return await self._call(model, lambda m: m.backend.show(model))

    async def list_models(self) -> list[ModelInfo]:
        """Every model some server of the pool has, once each."""
        if all(m.models is None for m in self.members):
            await self.refresh()
        if all(m.models is None for m in self.members):
            down = ", ".join(m.url for m in self.members)
            raise UpstreamUnavailable(
                f"no Ollama server answers: {down}", retry_after=self._settings.retry_after
            )
        seen: dict[str, ModelInfo] = {}
        for member in self.members:
            for name, info in (member.models or {}).items():
                seen.setdefault(name, info)
        return list(seen.values())

    async def running(self) -> list[dict[str, Any]]:
        """Every server's loaded models."""
        answers = await asyncio.gather(
            *(m.backend.running() for m in self.members), return_exceptions=True
        )
        return [entry for answer in answers if isinstance(answer, list) for entry in answer]

    async def check(self) -> None:
        """Ready while at least one server answers."""
        if any(m.breaker is not Breaker.OPEN and m.models is not None for m in self.members):
            return
        await self.refresh()
        if not any(m.breaker is not Breaker.OPEN and m.models is not None for m in self.members):
            down = ", ".join(m.url for m in self.members)
            raise UpstreamUnavailable(f"no Ollama server answers: {down}")

    # Health ----------------------------------------------------------------------------------

    async def refresh(self) -> None:
        """Ask every server for its version, models and loaded models."""
        await asyncio.gather(*(self._probe(m) for m in self.members))

    async def _probe(self, member: Member) -> None:
        if member.breaker is Breaker.OPEN and not self._usable(member):
            return  # still cooling down
        try:
            await member.backend.check()
            models = await member.backend.list_models()
        except LlamaradaError as exc:
            self._failed(member, exc if isinstance(exc, UpstreamError) else UpstreamError(str(exc)))
            self._metrics.backend_up.labels(backend=member.url).set(0)
            return
        try:
            loaded = await member.backend.running()
        except LlamaradaError:  # older servers have no /api/ps: no preference, no harm
            loaded = []
        member.models = {info.name: info for info in models}
        member.loaded = {entry.get("name") or entry.get("model", "") for entry in loaded}
        self._succeeded(member)

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.health_interval)
            try:
                await self.refresh()
            except Exception:  # the loop must outlive any one bad check
                logger.exception("health check failed")
