"""Dependencies: what the lifespan built, handed to routes (never module globals)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from app.agent.loop import AgentService
from app.batch.build import Batch
from app.core.auth import ANONYMOUS, Principal
from app.core.cache import CachePolicy, ResponseCache
from app.core.config import Settings
from app.core.errors import Unauthorized
from app.core.metrics import Metrics
from app.llm.completions import CompletionService
from app.rag.build import Rag
from app.rag.chat import ChatService


async def get_settings(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


async def get_metrics(request: Request) -> Metrics:
    """The app's metrics."""
    metrics: Metrics = request.app.state.metrics
    return metrics


async def get_completions(request: Request) -> CompletionService:
    """The completion pipeline."""
    completions: CompletionService = request.app.state.completions
    return completions


async def get_chat(request: Request) -> ChatService:
    """The chat entry: every model, knowledge bases included."""
    chat: ChatService = request.app.state.chat
    return chat


async def get_agent(request: Request) -> AgentService:
    """The tool-using agent."""
    agent: AgentService = request.app.state.agent
    return agent


async def get_rag(request: Request) -> Rag:
    """The knowledge-base services."""
    rag: Rag = request.app.state.rag
    return rag


async def get_cache(request: Request) -> ResponseCache | None:
    """The response cache, or None when caching is off."""
    cache: ResponseCache | None = request.app.state.cache
    return cache


async def get_batch(request: Request) -> Batch:
    """The batch services."""
    batch: Batch = request.app.state.batch
    return batch


async def get_principal(request: Request) -> Principal:
    """The caller AccessMiddleware found (anonymous, who sees everything, without keys)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is not None:
        return principal
    if request.app.state.settings.auth_enabled:  # a route outside /api and /v1: fail closed
        raise Unauthorized("an API key is needed")
    return ANONYMOUS


async def get_cache_policy(request: Request) -> CachePolicy:
    """What the request's `Cache-Control` header allows."""
    return CachePolicy.from_header(request.headers.get("cache-control"))


@dataclass(frozen=True, slots=True)
class ModelCall:
    """What a model route needs, in one dependency (each one costs FastAPI a solve per request):
    the chat entry and the pipeline, who calls, and what its `Cache-Control` allows."""

    chat: ChatService
    completions: CompletionService
    caller: Principal
    policy: CachePolicy


async def get_model_call(request: Request) -> ModelCall:
    """The services, caller and cache policy of a model request."""
    state = request.app.state
    policy = CachePolicy.from_header(request.headers.get("cache-control"))
    return ModelCall(state.chat, state.completions, await get_principal(request), policy)


SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
CompletionsDep = Annotated[CompletionService, Depends(get_completions)]
ChatDep = Annotated[ChatService, Depends(get_chat)]
AgentDep = Annotated[AgentService, Depends(get_agent)]
RagDep = Annotated[Rag, Depends(get_rag)]
BatchDep = Annotated[Batch, Depends(get_batch)]
CacheDep = Annotated[ResponseCache | None, Depends(get_cache)]
CachePolicyDep = Annotated[CachePolicy, Depends(get_cache_policy)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
ModelCallDep = Annotated[ModelCall, Depends(get_model_call)]
