"""The labelled corpus in tests/data/rag: documents, questions and the document answering each."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from app.core.auth import ANONYMOUS
from app.rag.ingest import Upload
from app.rag.service import KnowledgeBase

DATA = Path(__file__).resolve().parent.parent / "data" / "rag"


@dataclass(frozen=True)
class Question:
    """A question, its language and the source that answers it (None: no document does)."""

    question: str
    lang: str
    source: str | None


def corpus_uploads() -> list[Upload]:
    """Every corpus document as an upload."""
    return [Upload(path.name, path.read_bytes()) for path in sorted((DATA / "corpus").iterdir())]


def questions() -> tuple[list[Question], list[Question]]:
    """The answerable questions and the ones no document answers."""
    data = json.loads((DATA / "questions.json").read_text())
    answerable = [Question(q["question"], q["lang"], q["source"]) for q in data["answerable"]]
    unanswerable = [Question(q["question"], q["lang"], None) for q in data["not_in_documents"]]
    return answerable, unanswerable


async def recall(knowledge: KnowledgeBase, collection: str, asked: list[Question], k: int) -> float:
    """The share of questions whose answering document is among the top-k chunks' sources."""
    found = 0
    for item in asked:
        hits = await knowledge.retrieve(collection, item.question, k=k, caller=ANONYMOUS)
        found += item.source in {hit.metadata["source"] for hit in hits}
    return found / len(asked)
