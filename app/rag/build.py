"""Builds the knowledge-base services from the settings; the app's lifespan owns the result."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.config import Settings
from app.core.metrics import Metrics
from app.llm.completions import CompletionService
from app.rag.answer import AnswerService
from app.rag.chat import ChatService
from app.rag.embeddings import Embedder, MiniLMEmbedder, OllamaEmbedder
from app.rag.service import KnowledgeBase
from app.rag.store import ChromaStore


@dataclass(frozen=True)
class Rag:
    """The knowledge base, its answers, and the chat entry that serves `kb:` models."""

    knowledge: KnowledgeBase
    answers: AnswerService
    chat: ChatService

    async def aclose(self) -> None:
        """Close the store and the embedder."""
        await self.knowledge.aclose()


def build_rag(settings: Settings, completions: CompletionService, metrics: Metrics) -> Rag:
    """Chroma (server when LLAMARADA_CHROMA_URL is set, else in the data dir) and an embedder."""
    rag = settings.rag
    retry = rag.store_retry_after
    store = (
        ChromaStore.server(settings.chroma_url, retry_after=retry)
        if settings.chroma_url
        else ChromaStore.persistent(settings.data_dir / "chroma", retry_after=retry)
    )
    kind = rag.embedder
    if kind == "auto":
        kind = "minilm" if settings.llm_backend == "embedded" else "ollama"
    embedder: Embedder
    if kind == "minilm":
        embedder = MiniLMEmbedder()
        other = None
    else:
        backend = completions.backend
        embedder = OllamaEmbedder(backend, rag.ollama_embedding_model)

        def other(model: str) -> Embedder:
            return OllamaEmbedder(backend, model)

    knowledge = KnowledgeBase(store, embedder, rag, metrics, other_embedder=other)
    answers = AnswerService(knowledge, completions, rag, metrics)
    return Rag(knowledge, answers, ChatService(completions, answers))
