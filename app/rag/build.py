"""Builds the knowledge-base services from the settings; the app's lifespan owns the result."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from app.core.config import Settings
from app.core.metrics import Metrics
from app.llm.completions import CompletionService
from app.rag.answer import AnswerService
from app.rag.chat import ChatService
from app.rag.embeddings import MINILM_MODEL, Embedder, MiniLMEmbedder, OllamaEmbedder
from app.rag.multilingual import USE_MODEL, MultilingualEmbedder
from app.rag.service import KnowledgeBase
from app.rag.store import ChromaStore
from app.rag.support import warm

# The models that run in process, by the name a collection records.
LOCAL_EMBEDDERS: dict[str, Callable[[], Embedder]] = {
    MINILM_MODEL: MiniLMEmbedder,
    USE_MODEL: MultilingualEmbedder,
}


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
        kind = "multilingual" if settings.llm_backend == "embedded" else "ollama"
    backend = completions.backend if kind == "ollama" else None
    embedder: Embedder
    if kind == "ollama":
        embedder = OllamaEmbedder(completions.backend, rag.ollama_embedding_model)
    else:
        embedder = LOCAL_EMBEDDERS[MINILM_MODEL if kind == "minilm" else USE_MODEL]()

    def other(model: str) -> Embedder | None:
        """In-process models by name (collections made with them keep working), else Ollama."""
        local = LOCAL_EMBEDDERS.get(model)
        if local is not None:
            return local()
        return OllamaEmbedder(backend, model) if backend is not None else None

    # The everyday-word stems refusals read take seconds to build: not in a question's time.
    threading.Thread(target=warm, name="rag-everyday-words", daemon=True).start()
    knowledge = KnowledgeBase(store, embedder, rag, metrics, other_embedder=other)
    answers = AnswerService(knowledge, completions, rag, metrics)
    return Rag(knowledge, answers, ChatService(completions, answers))
