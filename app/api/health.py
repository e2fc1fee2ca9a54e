"""Liveness, readiness and the Prometheus scrape."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.api.deps import CacheDep, CompletionsDep, MetricsDep, RagDep
from app.core.errors import CacheUnavailable, LlamaradaError

router = APIRouter(tags=["health"])


@router.get("/health/live")
async def live() -> dict[str, str]:
    """The process is up and serving HTTP."""
    return {"status": "ok"}


@router.get("/health/ready", response_model=None)
async def ready(
    request: Request, completions: CompletionsDep, cache: CacheDep, rag: RagDep
) -> Response:
    """Ready when the model backend answers; a cache or vector store that is down degrades;
    unready at once when draining (SIGTERM)."""
    if request.app.state.drain.draining:
        return JSONResponse({"status": "draining"}, status_code=503, headers={"Retry-After": "1"})
    backend = completions.backend
    checks: dict[str, dict[str, Any]] = {}
    try:
        await backend.check()
        checks["backend"] = {"status": "up", "name": backend.name}
    except LlamaradaError as exc:
        checks["backend"] = {"status": "down", "name": backend.name, "error": exc.message}
    if cache is None:
        checks["cache"] = {"status": "off"}
    else:
        try:
            await cache.check()
            checks["cache"] = {"status": "up", "kind": cache.name}
        except CacheUnavailable as exc:
            checks["cache"] = {"status": "down", "kind": cache.name, "error": str(exc)}
    try:
        await rag.knowledge.store.heartbeat()
        checks["vectors"] = {"status": "up"}
    except LlamaradaError as exc:
        checks["vectors"] = {"status": "down", "error": exc.message}
    if checks["backend"]["status"] != "up":
        status, code = "unready", 503
    elif "down" in (checks["cache"]["status"], checks["vectors"]["status"]):
        status, code = "degraded", 200
    else:
        status, code = "ready", 200
    headers = {"Retry-After": "5"} if code == 503 else None
    return JSONResponse({"status": status, "checks": checks}, status_code=code, headers=headers)


@router.get("/metrics", include_in_schema=False)
async def metrics_text(metrics: MetricsDep) -> Response:
    """Prometheus exposition of every worker's metrics."""
    return Response(metrics.render(), media_type=metrics.content_type)
