"""The answer prompt: the seed's rule in the question's language, sized to the model's window."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from app.llm.base import Message
from app.rag.language import Language
from app.rag.retrieve import Hit
from app.rag.schemas import Citation

SNIPPET_CHARS = 240
CHARS_PER_TOKEN = 3  # a pessimistic average for English and Spanish; keeps prompts inside n_ctx

# The seed's rule and template (Spanish), and the same words in English.
SYSTEM = {
    "es": (
        "Usa el siguiente contexto para responder la pregunta. Si no sabes la respuesta, di que "
        "no lo sabes, no inventes información. Cita cada afirmación con el número de su fuente "
        "entre corchetes, por ejemplo [1]. Responde en español."
    ),
    "en": (
        "Use the following context to answer the question. If you don't know the answer, say "
        "that you don't know; don't make anything up. Cite each statement with the number of its "
        "source in square brackets, for example [1]. Answer in English."
    ),
}
_FRAME = {
    "es": ("Contexto:", "Pregunta:", "Respuesta útil en español:", "fuente", "p."),
    "en": ("Context:", "Question:", "Helpful answer in English:", "source", "p."),
}
NOT_FOUND = {
    "es": "No encuentro la respuesta en los documentos de la colección «{name}».",
    "en": "The documents in the collection '{name}' don't contain the answer.",
}
SOURCES_LABEL = {"es": "Fuentes", "en": "Sources"}

_CITATION = re.compile(r"\[(\d{1,2})\]")


def estimate_tokens(text: str) -> int:
    """A pessimistic token count for a text."""
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class Prompt:
    """The messages for the model, the hits it got as context and those with no room.

    `passages[i]` is the text given as source i + 1: the section around `used[i]` where
    there was room for it, else the chunk alone.
    """

    messages: list[Message]
    used: list[Hit]
    dropped: list[Hit]
    passages: list[str]


def build_prompt(
    question: str,
    hits: Sequence[Hit],
    language: Language,
    *,
    context_tokens: int,
    answer_tokens: int,
    history: Sequence[Message] = (),
    contexts: Sequence[str | None] = (),
) -> Prompt:
    """The seed's prompt with numbered sources, keeping whole chunks while they fit the window.

    Which chunks are used depends on the chunks alone (so the found/not-found decision does
    not move with section sizes); then, best first, a chunk becomes the section around it
    (`contexts`) where the room left allows.
    """
    context_label, question_label, answer_label, _, _ = _FRAME[language]
    fixed = (
        SYSTEM[language]
        + context_label
        + question_label
        + question
        + answer_label
        + "".join(m.content for m in history)
    )
    room = context_tokens - answer_tokens - estimate_tokens(fixed) - 16 * (len(history) + 2)
    used: list[Hit] = []
    dropped: list[Hit] = []
    for hit in hits:
        cost = _cost(len(used) + 1, hit, hit.text, language)
        if cost <= room:
            room -= cost
            used.append(hit)
        else:  # never cut a chunk: drop it whole, and say so in the response
            dropped.append(hit)
    around = {hit.id: context for hit, context in zip(hits, contexts, strict=False) if context}
    passages: list[str] = []
    for n, hit in enumerate(used, start=1):
        passage = hit.text
        context = around.get(hit.id)
        if context and context != hit.text and not any(hit.text in p for p in passages):
            extra = _cost(n, hit, context, language) - _cost(n, hit, hit.text, language)
            if extra <= room:
                room -= extra
                passage = context
        passages.append(passage)
    blocks = [
        f"[{n}] ({label(hit, language)})\n{passage}"
        for n, (hit, passage) in enumerate(zip(used, passages, strict=True), start=1)
    ]
    context = "\n\n".join(blocks)
    user = f"{context_label}\n{context}\n\n{question_label} {question}\n\n{answer_label}"
    messages = [Message(role="system", content=SYSTEM[language]), *history]
    messages.append(Message(role="user", content=user))
    return Prompt(messages, used, dropped, passages)


def _cost(n: int, hit: Hit, passage: str, language: Language) -> int:
    return estimate_tokens(f"[{n}] ({label(hit, language)})\n{passage}") + 2


def label(hit: Hit, language: Language) -> str:
    """Where a chunk comes from, as the prompt and the source list show it."""
    _, _, _, source_word, page_word = _FRAME[language]
    parts = [f"{source_word}: {hit.metadata.get('source', '?')}"]
    if "page" in hit.metadata:
        parts.append(f"{page_word} {hit.metadata['page']}")
    if "heading" in hit.metadata:
        parts.append(str(hit.metadata["heading"]))
    return ", ".join(parts)


def citation(n: int, hit: Hit, passage: str | None = None) -> Citation:
    """A hit as the response lists it, numbered as in the prompt, with the text it was given."""
    text = " ".join(hit.text.split())
    snippet = text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"
    page = hit.metadata.get("page")
    heading = hit.metadata.get("heading")
    return Citation(
        n=n,
        document_id=str(hit.metadata.get("document_id", "")),
        source=str(hit.metadata.get("source", "")),
        chunk_id=hit.id,
        chunk_index=int(hit.metadata.get("chunk_index", 0)),
        score=round(hit.score, 4),
        snippet=snippet,
        page=int(page) if page is not None else None,
        heading=str(heading) if heading is not None else None,
        text=passage,
    )


def cited_numbers(answer: str, available: int) -> list[int]:
    """The source numbers an answer cites, in order of first use, ignoring ones that don't exist."""
    seen: list[int] = []
    for match in _CITATION.finditer(answer):
        n = int(match.group(1))
        if 1 <= n <= available and n not in seen:
            seen.append(n)
    return seen


def sources_footer(citations: Sequence[Citation], language: Language) -> str:
    """The numbered source list appended to chat answers, for clients that show only text."""
    lines = []
    for c in citations:
        where = f", p. {c.page}" if c.page is not None else ""
        heading = f" · {c.heading}" if c.heading else ""
        lines.append(f"[{c.n}] {c.source}{where}{heading}")
    return f"\n\n{SOURCES_LABEL[language]}:\n" + "\n".join(lines)
