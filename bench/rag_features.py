"""Candidate features of the dev questions, dumped once so that tuning runs without the server.

Run: `python -m bench.rag_features OUT.json` (dev split only: the test split is never tuned on);
`--depth D --reranked N` dump a wider first stage than the search reads (each candidate keeps its
rank on either side, so `bench.rag_stage` can replay narrower ones).

The corpus is uploaded as `bench.rag_eval` does; each dev question's fused candidates (the
first stage, before reranking) are written with the evidence reranking and refusals read, the
collection-level share of unheld words, and whether the candidate's text and the section
around it hold the question's labelled evidence. `bench.rag_cv` reads the file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from app.core.auth import ANONYMOUS
from app.core.config import RagSettings, Settings
from app.main import create_app
from app.rag.lexical import QUERY_ANALYZERS
from app.rag.retrieve import CANDIDATES, RERANKED, Hit
from app.rag.service import KnowledgeBase
from bench.rag_eval import COLLECTION, upload_corpus
from bench.rag_eval_set import load_questions, normalise

SPLIT = "dev"


async def collect(
    k: int = 5, depth: int = CANDIDATES, reranked: int = RERANKED
) -> list[dict[str, Any]]:
    """Every dev question with its candidates' features, from a fresh upload of the corpus."""
    from tests.fakes import ScriptedBackend

    backend = ScriptedBackend(pieces=("-",))
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            _env_file=None,
            data_dir=Path(folder) / "data",
            models_dir=Path(folder) / "models",
            rag=RagSettings(),
            default_model=backend.model,
        )
        app = create_app(settings, backend=backend)
        async with (
            LifespanManager(app, startup_timeout=120, shutdown_timeout=60) as manager,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=manager.app), base_url="http://localhost"
            ) as client,
        ):
            await upload_corpus(client)
            knowledge: KnowledgeBase = app.state.rag.knowledge
            return [
                await _features(knowledge, q, k, depth, reranked) for q in load_questions(SPLIT)
            ]


async def _features(
    knowledge: KnowledgeBase, question: Any, k: int, depth: int, reranked: int
) -> dict[str, Any]:
    found, index, trust = await knowledge.candidates(
        COLLECTION, question.question, caller=ANONYMOUS, k=k, depth=depth, reranked=reranked
    )
    rows = [index.row(p) for p in found.positions]
    hits = [Hit(row.id, row.text, row.metadata, None, None, 0.0, 0.0) for row in rows]
    contexts = await knowledge.contexts(COLLECTION, hits, caller=ANONYMOUS)
    wanted = normalise(question.evidence or "")
    candidates = []
    for i, row in enumerate(rows):
        context = contexts[i] or row.text
        evidence = found.found[i]
        candidates.append(
            {
                "source": row.metadata.get("source"),
                "language": index.lexical.language(found.positions[i]),
                "text": row.text,
                "heading": row.metadata.get("heading"),
                "evidence_in_text": bool(wanted) and wanted in normalise(row.text),
                "evidence_in_context": bool(wanted) and wanted in normalise(context),
                "dense": evidence.dense,
                "coverage": evidence.coverage,
                "proximity": evidence.proximity,
                "heading_share": evidence.heading,
                "fused": found.fused[i],
                "dense_rank": found.dense_rank.get(found.positions[i]),
                "lexical_rank": found.lexical_rank.get(found.positions[i]),
            }
        )
    return {
        "id": question.id,
        "lang": question.lang,
        "kind": question.kind,
        "question": question.question,
        "source": question.source,
        "trust_dense": trust,
        "unheld": found.unheld,
        "idf": {  # the question's terms as each language reads it, with their idf
            language: {term: index.lexical.idf(term) for term in analyzer.terms(question.question)}
            for language, analyzer in QUERY_ANALYZERS.items()
        },
        "candidates": candidates,
    }


def main(argv: list[str] | None = None) -> int:
    """Collect the features and write them."""
    parser = argparse.ArgumentParser(prog="python -m bench.rag_features", description=__doc__)
    parser.add_argument("out", type=Path, help="where to write the JSON")
    parser.add_argument("--depth", type=int, default=CANDIDATES, help="finds of each side")
    parser.add_argument("--reranked", type=int, default=RERANKED, help="fused candidates kept")
    args = parser.parse_args(argv)
    records = asyncio.run(collect(depth=args.depth, reranked=args.reranked))
    args.out.write_text(json.dumps(records, ensure_ascii=False) + "\n")
    print(f"{len(records)} questions written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
