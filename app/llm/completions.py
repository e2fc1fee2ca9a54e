"""The completion pipeline every surface shares: limits, cache, single flight, metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import orjson

from app.core import tracing
from app.core.auth import Principal
from app.core.cache import (
    EXACT_HIT,
    CacheHit,
    CachePolicy,
    CacheStatus,
    ResponseCache,
    cache_key,
)
from app.core.config import LimitSettings
from app.core.errors import (
    CacheUnavailable,
    InvalidRequest,
    LlamaradaError,
    ModelNotFound,
    UpstreamError,
)
from app.core.metrics import Metrics
from app.core.quota import record_tokens
from app.core.semantic import SemanticCache, SemanticQuery
from app.llm.base import (
    Backend,
    ChatRequest,
    Chunk,
    Embeddings,
    GenerateRequest,
    ModelInfo,
    Options,
)
from app.llm.flight import Flight
from app.llm.relay import Relay
from app.llm.schema_limits import check_format
from app.llm.semantic_key import semantic_query
from app.llm.traces import traced_reply

logger = logging.getLogger(__name__)

_EXACT = {"llamarada.cache.kind": "exact"}
_SEMANTIC = {"llamarada.cache.kind": "semantic"}

MODEL_LIST_TTL = 10.0  # seconds a backend's model list is trusted before asking again
_CHUNK_DEFAULTS = {f.name: f.default for f in fields(Chunk)}


@dataclass
class Reply:
    """A started answer: its chunks (the first already produced), what the cache did, and the
    passages a knowledge-base answer cites (`sources`, sent with its last chunk)."""

    model: str
    chunks: AsyncIterator[Chunk]
    cache: CacheStatus
    sources: list[dict[str, Any]] | None = None
    hit: CacheHit | None = None  # on a HIT: exact or semantic, and how similar


def encode_chunks(chunks: list[Chunk]) -> bytes:
    """Serialize a whole answer, keeping only the fields that differ from the defaults."""
    # vars(), not asdict(): nothing here needs asdict's deep copies, which cost the most.
    compact = [
        {k: v for k, v in vars(chunk).items() if v != _CHUNK_DEFAULTS[k]} for chunk in chunks
    ]
    return orjson.dumps(compact)


def decode_chunks(data: bytes) -> list[Chunk]:
    """The answer `encode_chunks` stored."""
    return [Chunk(**item) for item in orjson.loads(data)]


def request_key(
    route: str, request: ChatRequest | GenerateRequest, scope: str | None = None
) -> str:
    """The cache key: everything in the request that changes the output, and the key's scope."""
    inputs = request.model_dump(mode="json", exclude_none=True, exclude={"stream", "keep_alive"})
    if not inputs.get("options"):
        inputs.pop("options", None)
    if scope is not None:
        inputs["scope"] = scope
    return cache_key({"route": route, **inputs})


class CompletionService:
    """Answers chat and generate requests through the cache and the backend, with metrics."""

    def __init__(
        self,
        backend: Backend,
        cache: ResponseCache | None,
        metrics: Metrics,
        limits: LimitSettings,
        default_model: str,
        *,
        cache_scope: str = "shared",
        relay: Relay | None = None,
        semantic: SemanticCache | None = None,
        semantic_max_temperature: float = 0.3,
    ) -> None:
        self.backend = backend
        self._cache = cache
        self._metrics = metrics
        self.limits = limits
        self._default_model = default_model
        self._per_key = cache_scope == "key"
        self._flights: dict[str, Flight] = {}
        self._relay = relay  # one generation per key across processes, with Redis
        self._semantic = semantic
        self._semantic_max_temperature = semantic_max_temperature
        self._models: tuple[float, list[ModelInfo]] | None = None

    async def chat(
        self,
        request: ChatRequest,
        policy: CachePolicy,
        *,
        caller: Principal,
        question: str | None = None,
    ) -> Reply:
        """Start answering a chat with a model the caller's key may use; `question` is the part
        of the last message the semantic cache compares (default: all of it)."""
        if not request.messages:
            return await self._load(request.model, request.keep_alive, caller)
        if len(request.messages) > self.limits.max_messages:
            raise InvalidRequest(
                f"{len(request.messages)} messages, at most {self.limits.max_messages} allowed",
                field="messages",
            )
        self._check_prompt_size(sum(len(m.content) for m in request.messages), "messages")
        check_format(request.format, self.limits)
        own_limit = _own_limit(request.options)
        resolved = await self._resolved(request.model, request.options, caller)
        request = request.model_copy(update=resolved)
        serving = self._serve(
            "chat",
            request,
            lambda: self.backend.chat(request),
            policy,
            self._scope(caller),
            own_limit=own_limit,
            question=question,
        )
        return await traced_reply("chat", request, serving, self.backend.name)

    async def generate(
        self, request: GenerateRequest, policy: CachePolicy, *, caller: Principal
    ) -> Reply:
        """Start completing a prompt with a model the caller's key may use."""
        if not request.prompt and not request.images:
            return await self._load(request.model, request.keep_alive, caller)
        self._check_prompt_size(len(request.prompt) + len(request.system or ""), "prompt")
        check_format(request.format, self.limits)
        own_limit = _own_limit(request.options)
        resolved = await self._resolved(request.model, request.options, caller)
        request = request.model_copy(update=resolved)
        serving = self._serve(
            "generate",
            request,
            lambda: self.backend.generate(request),
            policy,
            self._scope(caller),
            own_limit=own_limit,
        )
        return await traced_reply("generate", request, serving, self.backend.name)

    @property
    def semantic(self) -> SemanticCache | None:
        """The semantic cache, when LLAMARADA_SEMANTIC_CACHE turned it on."""
        return self._semantic

    def _scope(self, caller: Principal) -> str | None:
        """Whose cache entries a request may share: everyone's, or its key's own."""
        return caller.name if self._per_key else None

    async def _load(self, model: str, keep_alive: str | float | None, caller: Principal) -> Reply:
        """Ollama's answer to a request with nothing to say: the model is (un)loaded, no text."""
        model = await self.resolve_model(model, caller=caller)
        unload = keep_alive in (0, "0", "0s", "0m")
        done = Chunk(done=True, done_reason="unload" if unload else "load")
        return Reply(model, replay([done]), CacheStatus.BYPASS)

    async def list_models(self) -> list[ModelInfo]:
        """The backend's models, remembered for a few seconds."""
        now = time.monotonic()
        if self._models is None or now - self._models[0] > MODEL_LIST_TTL:
            self._models = (now, await self.backend.list_models())
        return self._models[1]

    async def resolve_model(self, name: str, *, caller: Principal) -> str:
        """The served model's full name for `name` (`:latest` rule); Forbidden outside the
        caller's models."""
        name = name or self._default_model
        wanted = {name, f"{name}:latest"}
        for fresh in (False, True):
            if fresh:
                self._models = None
            names = [model.name for model in await self.list_models()]
            for candidate in names:
                if candidate in wanted:
                    caller.require_model(candidate)
                    return candidate
        raise ModelNotFound(name, [name for name in names if caller.may_use(name)])

    async def embed(
        self,
        model: str,
        inputs: list[str],
        *,
        truncate: bool = True,
        caller: Principal,
    ) -> Embeddings:
        """Embed the inputs with the model, within the prompt limits."""
        if not inputs:
            raise InvalidRequest("needs at least one text", field="input")
        if len(inputs) > self.limits.max_messages:
            raise InvalidRequest(
                f"{len(inputs)} texts, at most {self.limits.max_messages} allowed", field="input"
            )
        self._check_prompt_size(sum(len(text) for text in inputs), "input")
        model = await self.resolve_model(model, caller=caller)
        started = time.perf_counter()
        self._metrics.active_requests.labels(model=model).inc()
        error = True
        try:
            result = await self.backend.embed(model, inputs, truncate=truncate)
            error = False
        finally:
            self._finish(model, started, error=error)
        self._metrics.tokens.labels(model=model, kind="prompt").inc(result.prompt_eval_count)
        record_tokens(result.prompt_eval_count)
        return replace(result, model=model)

    async def show(self, model: str, *, caller: Principal) -> dict[str, Any]:
        """What the backend says about a model it serves."""
        return await self.backend.show(await self.resolve_model(model, caller=caller))

    def _check_prompt_size(self, chars: int, field: str) -> None:
        if chars > self.limits.max_prompt_chars:
            raise InvalidRequest(
                f"{chars} characters, at most {self.limits.max_prompt_chars} allowed",
                field=field,
            )

    async def _resolved(
        self, model: str, options: Options | None, caller: Principal
    ) -> dict[str, Any]:
        """The request's model name and options with the defaults and limits applied."""
        model = await self.resolve_model(model, caller=caller)
        options = options or Options()
        cap = self.limits.max_num_predict
        if options.num_predict is not None and options.num_predict > cap:
            raise InvalidRequest(f"must be at most {cap}", field="options.num_predict")
        if options.num_predict is None or options.num_predict < 0:
            options = options.model_copy(update={"num_predict": cap})
        return {"model": model, "options": options}

    async def _serve(
        self,
        route: str,
        request: ChatRequest | GenerateRequest,
        produce: Callable[[], AsyncGenerator[Chunk, None]],
        policy: CachePolicy,
        scope: str | None,
        *,
        own_limit: bool,
        question: str | None = None,
    ) -> Reply:
        started = time.perf_counter()
        model = request.model
        key = request_key(route, request, scope)
        query = None
        if self._semantic is not None:
            query = semantic_query(
                route,
                request,
                scope,
                max_temperature=self._semantic_max_temperature,
                question=question,
            )
        if logger.isEnabledFor(logging.DEBUG):  # prompts are the users' words: debug only
            prompt = request.model_dump(mode="json", include={"messages", "prompt", "system"})
            logger.debug("completion request", extra={"route": route, "model": model, **prompt})
        self._metrics.active_requests.labels(model=model).inc()
        try:
            status, hit, chunks = await self._open(key, model, query, produce, policy, own_limit)
            first = await anext(chunks)
        except StopAsyncIteration:
            self._finish(model, started, error=True)
            raise UpstreamError("the model backend ended the answer without a result") from None
        except BaseException:
            self._finish(model, started, error=True)
            raise
        metered = status != CacheStatus.HIT  # a cached answer costs the caller no tokens
        observed = self._observe(model, started, first, chunks, metered)
        return Reply(model, observed, status, hit=hit)

    async def _open(
        self,
        key: str,
        model: str,
        query: SemanticQuery | None,
        produce: Callable[[], AsyncGenerator[Chunk, None]],
        policy: CachePolicy,
        own_limit: bool,
    ) -> tuple[CacheStatus, CacheHit | None, AsyncIterator[Chunk]]:
        """Chunks from the cache (exact, then semantic), from a generation in flight, or from a
        new generation."""
        status = CacheStatus.BYPASS
        cache = self._cache
        if cache is not None and policy.read:
            try:
                with tracing.span("llamarada.cache.lookup", _EXACT) as span:
                    stored = await cache.get(key)
                    result = "miss" if stored is None else "hit"
                    span.set_attribute("llamarada.cache.result", result)
            except CacheUnavailable:
                self._metrics.cache_requests.labels(result="error").inc()
                cache = None
            else:
                hit: CacheHit | None = EXACT_HIT
                if stored is None and query is not None:
                    hit, stored = await self._similar(cache, query)
                if stored is not None and hit is not None:
                    self._metrics.cache_requests.labels(result="hit").inc()
                    self._metrics.cache_hits.labels(kind=hit.kind).inc()
                    return CacheStatus.HIT, hit, replay(decode_chunks(stored))
                self._metrics.cache_requests.labels(result="miss").inc()
                status = CacheStatus.MISS
        elif cache is not None:
            self._metrics.cache_requests.labels(result="bypass").inc()

        flight = self._flights.get(key)
        if flight is None or not flight.joinable:
            store = cache if policy.write else None
            source = produce() if self._relay is None else self._relay.source(key, produce)
            flight = Flight(source, self._on_finish(key, model, query, store, own_limit))
            self._flights[key] = flight
        return status, None, flight.follow()

    async def _similar(
        self, cache: ResponseCache, query: SemanticQuery
    ) -> tuple[CacheHit | None, bytes | None]:
        """The stored answer to a question close enough to this one, if any."""
        assert self._semantic is not None
        try:
            with tracing.span("llamarada.cache.lookup", _SEMANTIC) as span:
                found = await self._semantic.lookup(query)
                span.set_attribute("llamarada.cache.result", "miss" if found is None else "hit")
            if found is None:
                return None, None
            return CacheHit("semantic", found.similarity), await cache.get(found.key)
        except Exception as exc:  # the semantic layer fails open, whatever failed
            self._metrics.cache_requests.labels(result="error").inc()
            logger.warning("semantic cache lookup failed", extra={"error": str(exc)})
            return None, None

    def _on_finish(
        self,
        key: str,
        model: str,
        query: SemanticQuery | None,
        cache: ResponseCache | None,
        own_limit: bool,
    ) -> Callable[[Flight], Awaitable[None]]:
        async def finish(flight: Flight) -> None:
            if self._flights.get(key) is flight:
                del self._flights[key]
            if flight.error is not None or not flight.chunks:
                return
            last = flight.chunks[-1]
            self._metrics.tokens.labels(model=model, kind="prompt").inc(last.prompt_eval_count)
            self._metrics.tokens.labels(model=model, kind="completion").inc(last.eval_count)
            # An answer cut by the server's cap is not what the request would get with room to
            # finish; one cut by the client's own limit is, and its key holds that limit.
            if cache is None or (last.done_reason == "length" and not own_limit):
                return
            try:
                await cache.set(key, encode_chunks(flight.chunks))
                if query is not None and self._semantic is not None:
                    await self._semantic.add(query, key)
            except CacheUnavailable:
                self._metrics.cache_requests.labels(result="error").inc()
            except Exception as exc:  # an embedding that failed: the answer is stored anyway
                logger.warning("semantic cache entry not added", extra={"error": str(exc)})

        return finish

    async def _observe(
        self, model: str, started: float, first: Chunk, rest: AsyncIterator[Chunk], metered: bool
    ) -> AsyncIterator[Chunk]:
        """Pass the chunks on, recording time to first token, duration, outcome and tokens."""
        error = True
        pieces = 0  # an answer cut short is charged a token per piece passed on
        try:
            chunk = first
            self._metrics.time_to_first_token.labels(model=model).observe(
                time.perf_counter() - started
            )
            while True:
                if chunk.done:
                    chunk = replace(chunk, total_duration=_ns_since(started))
                    if metered:
                        record_tokens(chunk.prompt_eval_count + chunk.eval_count)
                        metered = False
                pieces += 1
                yield chunk
                if chunk.done:
                    break
                try:
                    chunk = await anext(rest)
                except StopAsyncIteration:
                    raise UpstreamError("the model backend ended the answer early") from None
            error = False
        except LlamaradaError as exc:
            logger.warning("answer failed mid-stream", extra={"error": exc.message})
            raise
        finally:
            if metered:
                record_tokens(pieces)
            self._finish(model, started, error=error)
            # Closed here, not left to the garbage collector, whose finalizer costs a task and
            # a wake-up of the event loop for every answer.
            close = getattr(rest, "aclose", None)
            if close is not None:
                await close()

    def _finish(self, model: str, started: float, *, error: bool) -> None:
        self._metrics.active_requests.labels(model=model).dec()
        self._metrics.requests.labels(model=model, status="error" if error else "success").inc()
        self._metrics.request_duration.labels(model=model).observe(time.perf_counter() - started)


async def replay(chunks: list[Chunk]) -> AsyncIterator[Chunk]:
    """Chunks already at hand as an answer's stream (a cache hit, a fixed answer)."""
    for chunk in chunks:
        yield chunk


def _own_limit(options: Options | None) -> bool:
    """Whether the client set the answer's length limit itself (then a cut answer is the one
    the same request gets again, and may be stored)."""
    return options is not None and options.num_predict is not None and options.num_predict >= 0


def _ns_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1e9)
