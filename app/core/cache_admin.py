"""What operators see and drop of the response cache: entries by model, exact and semantic."""

from __future__ import annotations

from typing import Any

from app.core.cache import KEY_PREFIX, ResponseCache, key_model
from app.core.semantic import SemanticCache


async def cache_counts(cache: ResponseCache | None, semantic: SemanticCache | None) -> Any:
    """Entries by kind and model."""
    exact: dict[str, int] = {}
    for key in await cache.keys(KEY_PREFIX) if cache else []:
        model = key_model(key)
        exact[model] = exact.get(model, 0) + 1
    similar = await semantic.counts() if semantic else {}
    return {
        "store": cache.name if cache else "off",
        "exact": {"total": sum(exact.values()), "models": exact},
        "semantic": {
            "enabled": semantic is not None,
            "total": sum(similar.values()),
            "models": similar,
        },
    }


async def drop_cache(
    cache: ResponseCache | None, semantic: SemanticCache | None, model: str | None
) -> dict[str, int]:
    """Drop every entry, or one model's; how many of each kind went."""
    exact = 0
    if cache is not None:
        prefix = f"{KEY_PREFIX}{model}:" if model else KEY_PREFIX
        keys = [key for key in await cache.keys(prefix) if model is None or key_model(key) == model]
        exact = await cache.delete(keys)
    similar = await semantic.drop(model) if semantic else 0
    return {"exact": exact, "semantic": similar}
