"""The application factory: settings in, a FastAPI app with every client owned by its lifespan."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext

import httpx
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app import __version__
from app.agent.build import build_agent, mcp_servers
from app.api import (
    admin,
    agent,
    anthropic,
    batch,
    health,
    ollama,
    openai,
    openai_batch,
    openai_responses,
    rag,
)
from app.api.access import AccessMiddleware, HostCheckMiddleware
from app.api.docs import mount_docs
from app.api.drain import Drain, DrainMiddleware
from app.api.errors import ERROR_RESPONSES, install_error_handlers
from app.api.frontend import mount_frontend
from app.api.mcp import McpEndpoint
from app.api.middleware import BodyLimitMiddleware, RequestContextMiddleware
from app.api.origin import OriginCheckMiddleware
from app.batch.build import build_batch
from app.core.auth import build_key_ring
from app.core.cache import build_cache
from app.core.config import Settings, load_settings
from app.core.metrics import Metrics, mark_worker_dead
from app.core.quota import Quotas
from app.core.tracing import start_tracing
from app.llm.base import Backend
from app.llm.build import build_backend, build_completions
from app.rag.build import build_rag
from app.rag.multilingual import MultilingualEmbedder

logger = logging.getLogger(__name__)


def create_app(
    settings: Settings, *, backend: Backend | None = None, drain_on_signals: bool = False
) -> FastAPI:
    """Build the app; a `backend` handed in (started, and closed by the caller) replaces the
    configured one; `drain_on_signals` (the server process) drains on SIGTERM."""
    metrics = Metrics()
    drain = Drain(settings.server.drain_timeout)
    keys = build_key_ring(
        settings.api_keys.get_secret_value() if settings.api_keys else None,
        settings.api_keys_file,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tracing = start_tracing()  # first: the clients built below see whether it is on
        owned = backend is None  # a backend handed in belongs to the caller
        model_backend = backend or build_backend(settings, metrics)
        cache = build_cache(settings)
        if owned:
            await model_backend.start()
        if settings.llm_backend == "embedded" and owned:
            metrics.backend_up.labels(backend=model_backend.name).set(1)
        app.state.cache = cache
        redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
        app.state.quotas = Quotas(
            settings.quota, redis_url, max_connections=settings.redis_max_connections
        )
        # The semantic cache compares questions with the knowledge bases' multilingual model,
        # handed down as a function: the pipeline sits on a lower floor than the RAG code.
        embedder = MultilingualEmbedder() if settings.semantic_cache else None
        embed = embedder.embed_query if embedder else None
        completions = build_completions(settings, model_backend, cache, metrics, embed=embed)
        app.state.completions = completions
        http = httpx.AsyncClient()  # the agent's tools' client (Open-Meteo)
        app.state.rag = build_rag(settings, completions, metrics)
        app.state.chat = app.state.rag.chat
        app.state.mcp_servers = mcp_servers(settings, metrics)
        tools = await app.state.mcp_servers.start(settings.agent.mcp_start_timeout)
        knowledge = app.state.rag.knowledge
        app.state.agent = build_agent(settings, completions, http, metrics, knowledge, tools)
        app.state.batch = build_batch(settings, app.state.chat, metrics, app.state.quotas)
        logger.info(
            "llamarada started",
            extra={
                "backend": model_backend.name,
                "cache": cache.name if cache else "off",
                "version": __version__,
                "auth": "api keys" if keys else "off",
                "allowed_hosts": settings.allowed_hosts,
            },
        )
        # What start-up built (libraries, clients, models) lives as long as the process: kept
        # out of the garbage collector's passes, which then only walk per-request objects.
        gc.collect()
        gc.freeze()
        try:
            with drain.on_signals() if drain_on_signals else nullcontext():
                yield
        finally:
            await app.state.quotas.aclose()
            await app.state.mcp_servers.aclose()
            await http.aclose()
            await app.state.rag.aclose()
            await app.state.batch.aclose()
            if owned:
                await model_backend.aclose()
            if cache is not None:
                await cache.aclose()
            if embedder is not None:
                await embedder.aclose()
            mark_worker_dead()
            if tracing is not None:
                tracing.shutdown()  # sends the spans still queued

    mcp = McpEndpoint()
    app = FastAPI(
        title="Llamarada",
        version=__version__,
        description="Self-hosted LLM gateway speaking the Ollama, OpenAI and Anthropic APIs.",
        lifespan=mcp.around(lifespan),
        responses=ERROR_RESPONSES,
        docs_url=None,  # mount_docs serves it without a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.drain = drain
    install_error_handlers(app)
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.limits.max_body_bytes,
        overrides={
            rag.UPLOAD_PREFIX: settings.rag.max_upload_bytes,
            batch.JOBS_PREFIX: settings.batch.max_upload_bytes,
            openai_batch.FILES_PREFIX: settings.batch.max_upload_bytes,
        },
    )
    app.add_middleware(AccessMiddleware, keys=keys)
    app.add_middleware(OriginCheckMiddleware, trusted=settings.cors_origins)  # spends no quota
    if settings.cors_origins:  # outside the keys: a browser's preflight carries none
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=[
                "X-Request-ID",
                "X-Cache",
                "X-Cache-Kind",
                "X-Cache-Similarity",
                "Retry-After",
            ],
            max_age=600,
        )
    app.add_middleware(HostCheckMiddleware, allowed=settings.allowed_hosts)
    app.add_middleware(DrainMiddleware, drain=drain)  # counts what a drain waits for
    # Outermost: every answer has an id and an access line, and with tracing on is a span.
    app.add_middleware(RequestContextMiddleware)
    app.include_router(health.router)
    app.include_router(ollama.router)
    app.include_router(openai.router)
    app.include_router(openai_responses.router)
    app.include_router(anthropic.router)
    app.include_router(agent.router)
    app.include_router(rag.router)
    app.include_router(batch.router)
    app.include_router(openai_batch.router)
    mcp.mount(app)
    app.include_router(admin.router)
    mount_docs(app)
    mount_frontend(app)  # last: the API's routes come first
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers (logging is set up by `llamarada serve`)."""
    return create_app(load_settings(), drain_on_signals=True)
