"""Builds the model backend and the completion pipeline from the settings (API and worker alike)."""

from __future__ import annotations

from app.core.cache import RedisCache, ResponseCache
from app.core.config import Settings
from app.core.metrics import Metrics
from app.core.semantic import Embed, SemanticCache
from app.core.upstreams import Upstream
from app.llm.base import Backend
from app.llm.completions import CompletionService
from app.llm.relay import Relay


def build_backend(settings: Settings, metrics: Metrics) -> Backend:
    """The model backend the settings ask for (not started)."""
    backend = _model_backend(settings, metrics)
    # Tool emulation: on for the embedded model unless turned off, off for the pool unless on.
    emulate = settings.tool_emulation
    if emulate or (emulate is None and settings.llm_backend == "embedded"):
        from app.llm.tool_emulation import ToolEmulatingBackend

        return ToolEmulatingBackend(backend, settings.limits)
    return backend


def _model_backend(settings: Settings, metrics: Metrics) -> Backend:
    if settings.llm_backend == "ollama":
        from app.llm.pool import OllamaPool
        from app.llm.slots import ClusterSlots

        redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
        slots = ClusterSlots(
            redis_url,
            max_concurrency=settings.pool.max_concurrency,
            max_queue=settings.pool.max_queue,
            lease_seconds=settings.pool.lease_seconds,
            max_connections=settings.redis_max_connections,
        )
        return OllamaPool(
            [upstream_backend(upstream, settings) for upstream in settings.pool_upstreams],
            settings.pool,
            metrics,
            slots=slots,
        )
    from app.llm.aliases import AliasedBackend
    from app.llm.embedded import EmbeddedBackend
    from app.llm.modelfile import load_models

    gauge = metrics.queue_waiting.labels(backend="embedded")
    embedded = EmbeddedBackend(settings.embedded, on_waiting=gauge.set, limits=settings.limits)
    return AliasedBackend(embedded, load_models(settings.models_dir))


def upstream_backend(upstream: Upstream, settings: Settings) -> Backend:
    """The client for one server of the pool, by the API it speaks."""
    connect, read = settings.ollama_connect_timeout, settings.ollama_read_timeout
    if upstream.kind == "openai":
        from app.llm.openai_upstream import OpenAIBackend

        return OpenAIBackend(
            upstream.url, api_key=upstream.api_key, connect_timeout=connect, read_timeout=read
        )
    from app.llm.ollama import OllamaBackend

    return OllamaBackend(upstream.url, connect_timeout=connect, read_timeout=read)


def build_completions(
    settings: Settings,
    backend: Backend,
    cache: ResponseCache | None,
    metrics: Metrics,
    *,
    embed: Embed | None = None,
) -> CompletionService:
    """The completion pipeline over a backend and the response cache; with `embed` and
    LLAMARADA_SEMANTIC_CACHE, a semantic cache behind the exact one."""
    client = cache.client if isinstance(cache, RedisCache) else None
    outage = cache.outage if isinstance(cache, RedisCache) else None
    semantic = None
    if settings.semantic_cache and cache is not None and embed is not None:
        semantic = SemanticCache(
            embed,
            threshold=settings.semantic_threshold,
            ttl=settings.cache_ttl,
            max_entries=settings.semantic_max_entries,
            client=client,
            outage=outage,
        )
    return CompletionService(
        backend,
        cache,
        metrics,
        settings.limits,
        settings.default_model,
        cache_scope=settings.cache_scope,
        relay=Relay(client, lease=settings.flight_lease, outage=outage) if client else None,
        semantic=semantic,
        semantic_max_temperature=settings.semantic_max_temperature,
    )
