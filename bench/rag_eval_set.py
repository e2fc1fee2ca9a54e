"""The knowledge-base evaluation set on disk: corpus files, labelled questions, text matching."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "rag_eval"
CORPUS = DATA / "corpus"
QUESTIONS = DATA / "questions.jsonl"
SPLITS = ("dev", "test")
LANGS = ("es", "en")
KINDS = ("direct", "paraphrase", "cross_lingual", "unanswerable")


@dataclass(frozen=True)
class Question:
    """One labelled question (a line of questions.jsonl; README.md there defines the fields)."""

    id: str
    split: str
    lang: str
    doc_lang: str | None
    question: str
    source: str | None
    evidence: str | None
    kind: str

    @property
    def answerable(self) -> bool:
        """Whether a document of the corpus answers it."""
        return self.source is not None


def load_questions(split: str | None = None) -> list[Question]:
    """The questions of a split (all when None), in file order."""
    lines = QUESTIONS.read_text(encoding="utf-8").splitlines()
    questions = [Question(**json.loads(line)) for line in lines if line.strip()]
    return [q for q in questions if split is None or q.split == split]


def document_lang(name: str) -> str:
    """A corpus file's language, from its name (`man-es-df.txt` is Spanish)."""
    return name.split("-")[1]


def normalise(text: str) -> str:
    """Whitespace collapsed, so line breaks and justification do not decide a match."""
    return " ".join(text.split())
