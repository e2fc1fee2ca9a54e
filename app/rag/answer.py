"""Cited answers over a collection: `/api/rag/query`, and the `kb:<collection>` chat models."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from app.core.auth import Principal
from app.core.cache import CachePolicy, CacheStatus
from app.core.config import RagSettings
from app.core.errors import InvalidRequest, UpstreamUnavailable
from app.core.metrics import Metrics
from app.llm.base import ChatRequest, Chunk, Message, ModelInfo, Options
from app.llm.completions import CompletionService, Reply, replay
from app.rag.extract import extractive_answer
from app.rag.language import detect as detect_language
from app.rag.prompt import (
    NOT_FOUND,
    build_prompt,
    citation,
    cited_numbers,
    sources_footer,
)
from app.rag.schemas import QueryRequest, QueryResponse
from app.rag.service import KnowledgeBase

logger = logging.getLogger(__name__)

KB_PREFIX = "kb:"
HISTORY_TURNS = 6  # earlier chat messages passed on to the model with a kb: question


def is_kb_model(model: str) -> bool:
    """Whether a model name names a knowledge base (`kb:<collection>`)."""
    return model.startswith(KB_PREFIX)


@dataclass(frozen=True)
class StartedAnswer:
    """Sources found and the model's answer begun (no reply when nothing was found)."""

    head: QueryResponse
    reply: Reply | None

    @property
    def cache(self) -> CacheStatus:
        """What the response cache did (BYPASS when no model was asked)."""
        return self.reply.cache if self.reply else CacheStatus.BYPASS


class AnswerService:
    """Retrieves, prompts the model through the completion pipeline, and cites."""

    def __init__(
        self,
        knowledge: KnowledgeBase,
        completions: CompletionService,
        settings: RagSettings,
        metrics: Metrics,
    ) -> None:
        self._knowledge = knowledge
        self._completions = completions
        self._settings = settings
        self._metrics = metrics

    async def start(
        self,
        body: QueryRequest,
        policy: CachePolicy,
        *,
        caller: Principal,
        history: Sequence[Message] = (),
        options: Options | None = None,
    ) -> StartedAnswer:
        """Retrieve and start the answer; errors before any byte is sent are plain 4xx/5xx.

        The collection must be the caller's, and so must the answering model be. Extractive
        answers come from the same retrieval and the same found/not-found decision, then
        quote the sources instead of asking a model.
        """
        language = detect_language(body.question)
        hits = await self._knowledge.retrieve(
            body.collection,
            body.question,
            caller=caller,
            k=body.k,
            min_score=self._settings.min_score if body.min_score is None else body.min_score,
            sources=body.sources,
            embedding_model=body.embedding_model,
        )
        contexts = await self._knowledge.contexts(body.collection, hits, caller=caller)
        prompt = build_prompt(
            body.question,
            hits,
            language,
            context_tokens=self._settings.context_tokens,
            answer_tokens=self._settings.answer_tokens,
            history=history,
            contexts=contexts,
        )
        dropped = [citation(0, hit) for hit in prompt.dropped]
        if prompt.dropped:
            logger.warning(
                "context window full: chunks dropped",
                extra={"collection": body.collection, "dropped": len(prompt.dropped)},
            )
        if not prompt.used:
            # Nothing relevant enough: say so without asking the model to improvise.
            self._metrics.rag_queries.labels(outcome="not_found").inc()
            answer = NOT_FOUND[language].format(name=body.collection)
            head = QueryResponse(
                answer=answer,
                sources=[],
                dropped=dropped,
                found=False,
                language=language,
                answer_mode=body.answer_mode,
            )
            return StartedAnswer(head, None)
        sources = [
            citation(n, hit, passage)
            for n, (hit, passage) in enumerate(zip(prompt.used, prompt.passages, strict=True), 1)
        ]
        if body.answer_mode == "extractive":
            self._metrics.rag_queries.labels(outcome="extracted").inc()
            answer, cited = extractive_answer(
                body.question, prompt.passages, language, self._settings.extractive_sentences
            )
            head = QueryResponse(
                answer=answer,
                sources=sources,
                cited=cited,
                dropped=dropped,
                found=True,
                language=language,
                answer_mode="extractive",
            )
            return StartedAnswer(head, None)
        options = (options or Options()).model_copy()
        if options.num_predict is None:
            options.num_predict = self._settings.answer_tokens
        if options.temperature is None:
            options.temperature = self._settings.answer_temperature
        request = ChatRequest(model=body.model or "", messages=prompt.messages, options=options)
        reply = await self._completions.chat(request, policy, caller=caller, question=body.question)
        self._metrics.rag_queries.labels(outcome="answered").inc()
        head = QueryResponse(
            answer="",
            sources=sources,
            dropped=dropped,
            found=True,
            model=reply.model,
            language=language,
        )
        return StartedAnswer(head, reply)

    async def collect(self, started: StartedAnswer) -> QueryResponse:
        """The whole answer with its citations."""
        if started.reply is None:
            return started.head
        answer = "".join([chunk.content async for chunk in started.reply.chunks]).strip()
        cited = cited_numbers(answer, len(started.head.sources))
        return started.head.model_copy(update={"answer": answer, "cited": cited})

    async def events(self, started: StartedAnswer) -> AsyncIterator[dict[str, Any]]:
        """NDJSON events: the sources first, then the answer's tokens, then the whole answer."""
        head = started.head.model_dump(mode="json", exclude={"answer", "cited"})
        yield {"event": "sources", **head}
        if started.reply is None:
            yield {"event": "token", "content": started.head.answer}
            yield {"event": "done", "answer": started.head.answer, "cited": started.head.cited}
            return
        parts: list[str] = []
        async for chunk in started.reply.chunks:  # a failure here ends the stream's error line
            if chunk.content:
                parts.append(chunk.content)
                yield {"event": "token", "content": chunk.content}
        answer = "".join(parts).strip()
        cited = cited_numbers(answer, len(started.head.sources))
        yield {"event": "done", "answer": answer, "cited": cited}

    async def rag_chat(
        self, request: ChatRequest, policy: CachePolicy, *, caller: Principal
    ) -> Reply:
        """Answer a chat addressed to `kb:<collection>`; the text ends with the sources list,
        and the reply carries them."""
        caller.require_model(request.model)
        collection = request.model.removeprefix(KB_PREFIX)
        if request.tools:
            raise InvalidRequest("knowledge-base models do not call tools", field="tools")
        turns = [m for m in request.messages if m.role in ("user", "assistant")]
        if not turns or turns[-1].role != "user" or not turns[-1].content.strip():
            raise InvalidRequest("the last message must be the user's question", field="messages")
        body = QueryRequest(collection=collection, question=turns[-1].content)
        started = await self.start(
            body,
            policy,
            caller=caller,
            history=turns[:-1][-HISTORY_TURNS:],
            options=request.options,
        )
        head = started.head
        if started.reply is None:
            chunks = replay([Chunk(content=head.answer), Chunk(done=True, done_reason="stop")])
            return Reply(request.model, chunks, CacheStatus.BYPASS, sources=[])
        footer = sources_footer(head.sources, head.language)
        return Reply(
            request.model,
            _with_footer(started.reply.chunks, footer),
            started.reply.cache,
            sources=[source.model_dump(mode="json") for source in head.sources],
            hit=started.reply.hit,
        )

    async def list_kb_models(self, *, caller: Principal) -> list[ModelInfo]:
        """The caller's collections as models `kb:<name>`; none while the store is unreachable."""
        try:
            collections = await self._knowledge.list_collections(caller=caller)
        except UpstreamUnavailable as exc:
            logger.warning("knowledge bases not listed", extra={"error": exc.message})
            return []
        return [
            ModelInfo(
                name=KB_PREFIX + c.name,
                modified_at=c.created_at,
                details={
                    "format": "knowledge-base",
                    "family": "rag",
                    "families": ["rag"],
                    "parameter_size": "",
                    "quantization_level": "",
                    "embedding_model": c.embedding_model,
                    "documents": c.documents,
                    "chunks": c.chunks,
                },
            )
            for c in collections
        ]


async def _with_footer(chunks: AsyncIterator[Chunk], footer: str) -> AsyncIterator[Chunk]:
    async for chunk in chunks:
        if chunk.done:
            yield Chunk(content=footer)
        yield chunk
