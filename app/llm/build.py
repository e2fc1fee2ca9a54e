"""Builds the model backend and the completion pipeline from the settings (API and worker alike)."""

from __future__ import annotations

from app.core.cache import ResponseCache
from app.core.config import Settings
from app.core.metrics import Metrics
from app.llm.base import Backend
from app.llm.completions import CompletionService


def build_backend(settings: Settings, metrics: Metrics) -> Backend:
    """The model backend the settings ask for (not started)."""
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
            settings.ollama_urls,
            settings.pool,
            metrics,
            connect_timeout=settings.ollama_connect_timeout,
            read_timeout=settings.ollama_read_timeout,
            slots=slots,
        )
    from app.llm.aliases import AliasedBackend
    from app.llm.embedded import EmbeddedBackend
    from app.llm.modelfile import load_models

    gauge = metrics.queue_waiting.labels(backend="embedded")
    embedded = EmbeddedBackend(settings.embedded, on_waiting=gauge.set, limits=settings.limits)
    return AliasedBackend(embedded, load_models(settings.models_dir))


def build_completions(
    settings: Settings, backend: Backend, cache: ResponseCache | None, metrics: Metrics
) -> CompletionService:
    """The completion pipeline over a backend and the response cache."""
    return CompletionService(
        backend,
        cache,
        metrics,
        settings.limits,
        settings.default_model,
        cache_scope=settings.cache_scope,
    )
