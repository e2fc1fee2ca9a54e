"""Operators' routes: the response cache's counts, and dropping its entries (admin keys only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from app.api.deps import CacheDep, CompletionsDep, PrincipalDep
from app.core.auth import Principal
from app.core.cache_admin import cache_counts, drop_cache
from app.core.errors import Forbidden

router = APIRouter(prefix="/api/admin", tags=["admin"])


def _require_admin(caller: Principal) -> None:
    if not caller.admin:
        raise Forbidden("the cache's administration needs an admin key")


@router.get("/cache")
async def counts(caller: PrincipalDep, cache: CacheDep, completions: CompletionsDep) -> Any:
    """Cache entries by kind (exact, semantic) and model."""
    _require_admin(caller)
    return await cache_counts(cache, completions.semantic)


@router.delete("/cache")
async def drop(
    caller: PrincipalDep,
    cache: CacheDep,
    completions: CompletionsDep,
    model: Annotated[str | None, Query(max_length=256, description="only this model's")] = None,
) -> dict[str, int]:
    """Drop every cache entry, or one model's; answers how many of each kind went."""
    _require_admin(caller)
    return await drop_cache(cache, completions.semantic, model or None)
