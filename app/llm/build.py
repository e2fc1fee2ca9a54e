"""Builds the model backend and the completion pipeline from the settings (API and worker alike)."""

from __future__ import annotations

from app.core.cache import RedisCache, ResponseCache
from app.core.config import Settings
from app.core.metrics import Metrics
from app.core.semantic import Embed, SemanticCache
from app.llm.base import Backend
from app.llm.completions import CompletionService
from app.llm.relay import Relay
from app.llm.traces import traced_cache


def build_backend(settings: Settings, metrics: Metrics) -> Backend:
    """The model backend the settings ask for (not started)."""
    if settings.llm_backend == "ollama":
        from app.llm.pool import OllamaPool

        return OllamaPool(
            settings.ollama_urls,
            settings.pool,
            metrics,
            connect_timeout=settings.ollama_connect_timeout,
            read_timeout=settings.ollama_read_timeout,
        )
    from app.llm.aliases import AliasedBackend
    from app.llm.embedded import EmbeddedBackend
    from app.llm.modelfile import load_models

    gauge = metrics.queue_waiting.labels(backend="embedded")
    embedded = EmbeddedBackend(settings.embedded, on_waiting=gauge.set, limits=settings.limits)
    return AliasedBackend(embedded, load_models(settings.models_dir))


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
        traced_cache(cache),
        metrics,
        settings.limits,
        settings.default_model,
        cache_scope=settings.cache_scope,
        relay=Relay(client, lease=settings.flight_lease, outage=outage) if client else None,
        semantic=semantic,
        semantic_max_temperature=settings.semantic_max_temperature,
    )
