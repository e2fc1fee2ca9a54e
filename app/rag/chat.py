"""The one chat entry for every caller (routers, batch items): `kb:<collection>` models answer
from a knowledge base with their sources, every other model through the completion pipeline."""

from __future__ import annotations

from app.core.auth import Principal
from app.core.cache import CachePolicy
from app.llm.base import ChatRequest, ModelInfo
from app.llm.completions import CompletionService, Reply
from app.llm.traces import traced_reply
from app.rag.answer import AnswerService, is_kb_model


class ChatService:
    """Chat with any model the caller may use, knowledge bases included."""

    def __init__(self, completions: CompletionService, answers: AnswerService) -> None:
        self.completions = completions
        self._answers = answers

    async def chat(self, request: ChatRequest, policy: CachePolicy, *, caller: Principal) -> Reply:
        """Start the answer; a `kb:` model's reply carries the passages it was given."""
        if is_kb_model(request.model):
            answering = self._answers.rag_chat(request, policy, caller=caller)
            return await traced_reply("chat", request, answering, "llamarada.rag")
        return await self.completions.chat(request, policy, caller=caller)

    async def list_models(self, *, caller: Principal) -> list[ModelInfo]:
        """The models the caller may use: the served ones, then its knowledge bases."""
        served = [
            *await self.completions.list_models(),
            *await self._answers.list_kb_models(caller=caller),
        ]
        return [info for info in served if caller.may_use(info.name)]

    async def resolve_model(self, name: str, *, caller: Principal) -> str:
        """The full name of a model the caller may use (a `kb:` name is kept as it is)."""
        if is_kb_model(name):
            caller.require_model(name)
            return name
        return await self.completions.resolve_model(name, caller=caller)
