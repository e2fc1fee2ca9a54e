"""Bilingual retrieval evaluation: real Debian documents and labelled questions, over HTTP.

Run: `python -m bench.rag_eval [--split test|dev|both] [--k 5] [--json OUT]` (`make eval-rag`:
test).

The app is built in process on a temp data dir (embedded Chroma, the default embedder), the
corpus in bench/data/rag_eval is uploaded through `POST .../documents` into one collection, and
each question of the split goes to `/search` (retrieval figures) and to `/api/rag/query`
(refusals: `found: false`). See bench/data/rag_eval/README.md for the data.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from app.core.config import RagSettings, Settings
from app.main import create_app
from bench.rag_eval_set import CORPUS, Question, load_questions, normalise

COLLECTION = "rag-eval"
UPLOAD_BATCH = 10  # files per upload request (the route takes at most 20 by default)
WIDER_FIELDS = ("context", "section")  # larger text around a hit, where results carry one
# Only `found` is read from /api/rag/query, and a generative query decides it before the model
# writes a token; short answers keep the fallback (a server without answer_mode) affordable.
ANSWER_TOKENS = 16


@dataclass
class Outcome:
    """What the server did with one question."""

    question: Question
    sources: list[str]  # the top-k results' sources, in rank order
    texts: list[str]
    wider: list[str] | None  # the results' context/section text, when they carry one
    search_ms: float
    refused: bool | None = None
    query_mode: str | None = None


@dataclass
class Group:
    """Figures for one slice of the questions (a language, a kind, or all)."""

    outcomes: list[Outcome] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Recall@1/3/5, evidence hits, MRR and refusal figures of the slice."""
        answerable = [o for o in self.outcomes if o.question.answerable]
        unanswerable = [o for o in self.outcomes if not o.question.answerable]
        refused = [o for o in self.outcomes if o.refused]
        figures: dict[str, Any] = {"questions": len(self.outcomes), "answerable": len(answerable)}
        for n in (1, 3, 5):
            figures[f"recall@{n}"] = _mean(_rank(o) <= n for o in answerable)
        figures["evidence@5"] = _mean(_holds(o.texts, o.question.evidence) for o in answerable)
        with_wider = [o for o in answerable if o.wider is not None]
        figures["evidence@5_wider"] = (
            _mean(_holds(o.wider or [], o.question.evidence) for o in with_wider)
            if with_wider
            else None
        )
        figures["mrr@5"] = _mean(1 / _rank(o) if _rank(o) <= 5 else 0.0 for o in answerable)
        figures["search_p50_ms"] = (
            statistics.median(o.search_ms for o in self.outcomes) if self.outcomes else None
        )
        asked = any(o.refused is not None for o in self.outcomes)
        hits = sum(1 for o in refused if not o.question.answerable)
        figures["refusal_precision"] = hits / len(refused) if refused else None
        figures["refusal_recall"] = hits / len(unanswerable) if asked and unanswerable else None
        figures["answerable_refused"] = (
            _mean(bool(o.refused) for o in answerable) if asked else None
        )
        return figures


def _rank(outcome: Outcome) -> int:
    """1-based rank of the first result from the labelled file; a large number when none is."""
    for rank, source in enumerate(outcome.sources, start=1):
        if source == outcome.question.source:
            return rank
    return 1_000_000


def _holds(texts: Iterable[str], evidence: str | None) -> bool:
    wanted = normalise(evidence or "")
    return bool(wanted) and any(wanted in normalise(text) for text in texts)


def _mean(values: Iterable[float | bool]) -> float | None:
    numbers = [float(v) for v in values]
    return sum(numbers) / len(numbers) if numbers else None


@asynccontextmanager
async def gateway(data_dir: Path, scripted: bool = False) -> AsyncIterator[httpx.AsyncClient]:
    """The app in process with its lifespan run, data in `data_dir`, no .env file read.

    `scripted`: a model that answers at once instead of SmolLM2. Only a generative query needs
    a model, and it decides `found` before the model is asked, so the refusal figures are the
    same; SmolLM2 reading each ~1,500-token context costs seconds a question on 2 cores.
    """
    settings = Settings(
        _env_file=None,
        data_dir=data_dir / "data",
        models_dir=data_dir / "models",
        rag=RagSettings(answer_tokens=ANSWER_TOKENS),
    )
    backend = None
    if scripted:
        from tests.fakes import ScriptedBackend

        backend = ScriptedBackend(pieces=("-",))
        settings = settings.model_copy(update={"default_model": backend.model})
    app = create_app(settings, backend=backend)
    async with (
        LifespanManager(app, startup_timeout=120, shutdown_timeout=60) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app),
            base_url="http://localhost",
            timeout=None,
        ) as client,
    ):
        yield client


def _checked(response: httpx.Response) -> Any:
    if response.is_error:
        raise SystemExit(f"{response.request.url.path}: {response.status_code} {response.text}")
    return response.json()


async def upload_corpus(client: httpx.AsyncClient) -> dict[str, Any]:
    """Create the collection and upload every corpus file; the chunk count and the time taken."""
    _checked(await client.post("/api/rag/collections", json={"name": COLLECTION}))
    files = sorted(CORPUS.iterdir())
    started = time.perf_counter()
    chunks = 0
    for at in range(0, len(files), UPLOAD_BATCH):
        parts = [
            ("files", (path.name, path.read_bytes())) for path in files[at : at + UPLOAD_BATCH]
        ]
        result = _checked(
            await client.post(f"/api/rag/collections/{COLLECTION}/documents", files=parts)
        )
        chunks += sum(document.get("chunks", 0) for document in result.get("documents", []))
    return {"documents": len(files), "chunks": chunks, "upload_s": time.perf_counter() - started}


async def search(client: httpx.AsyncClient, question: Question, k: int) -> Outcome:
    """Top-k retrieval for one question, timed."""
    started = time.perf_counter()
    body = _checked(
        await client.post(
            f"/api/rag/collections/{COLLECTION}/search", json={"query": question.question, "k": k}
        )
    )
    elapsed_ms = (time.perf_counter() - started) * 1000
    results: list[dict[str, Any]] = body["results"][:k]
    wider_field = next((f for f in WIDER_FIELDS if results and f in results[0]), None)
    return Outcome(
        question=question,
        sources=[r["source"] for r in results],
        texts=[r["text"] for r in results],
        wider=[str(r.get(wider_field) or "") for r in results] if wider_field else None,
        search_ms=elapsed_ms,
    )


async def ask(client: httpx.AsyncClient, outcome: Outcome) -> None:
    """Whether the answering route refuses the question: extractive mode, else generative."""
    body: dict[str, Any] = {
        "collection": COLLECTION,
        "question": outcome.question.question,
        "answer_mode": "extractive",
        "stream": False,
    }
    response = await client.post("/api/rag/query", json=body)
    outcome.query_mode = "extractive"
    if response.status_code == 422:
        # A server without answer_mode: the generative route, on the embedded model.
        del body["answer_mode"]
        response = await client.post("/api/rag/query", json=body)
        outcome.query_mode = "generative"
    outcome.refused = not _checked(response)["found"]


async def evaluate(
    splits: list[str], k: int, refusals: bool = True, scripted: bool = False
) -> dict[str, Any]:
    """Upload the corpus once, run every question of each split; one report per split."""
    with tempfile.TemporaryDirectory() as folder:
        async with gateway(Path(folder), scripted) as client:
            corpus = await upload_corpus(client)
            _progress(f"uploaded {corpus['documents']} documents, {corpus['chunks']} chunks")
            runs: dict[str, list[Outcome]] = {}
            for split in splits:
                runs[split] = [await search(client, q, k) for q in load_questions(split)]
                _progress(f"{split}: searched {len(runs[split])} questions")
            for split, outcomes in runs.items() if refusals else ():
                for n, outcome in enumerate(outcomes, start=1):
                    await ask(client, outcome)
                    if n % 20 == 0:
                        _progress(f"{split}: asked {n}/{len(outcomes)} ({outcome.query_mode})")
    return {split: _report(split, k, corpus, outcomes) for split, outcomes in runs.items()}


def _report(split: str, k: int, corpus: dict[str, Any], outcomes: list[Outcome]) -> dict[str, Any]:
    groups: dict[str, Group] = {"all": Group()}
    for outcome in outcomes:
        q = outcome.question
        for name in ("all", f"lang={q.lang}", f"kind={q.kind}"):
            groups.setdefault(name, Group()).outcomes.append(outcome)
    modes = sorted({o.query_mode for o in outcomes if o.query_mode})
    return {
        "split": split,
        "k": k,
        "corpus": corpus,
        "query_mode": ",".join(modes) or None,
        "groups": {name: group.summary() for name, group in sorted(groups.items())},
        "misses": [
            {
                "id": o.question.id,
                "lang": o.question.lang,
                "kind": o.question.kind,
                "source": o.question.source,
                "top": o.sources[:3],
            }
            for o in outcomes
            if o.question.answerable and _rank(o) > k
        ],
    }


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def table(report: dict[str, Any]) -> str:
    """The report as a Markdown table, one row per slice."""
    columns = [
        ("n", "answerable", "{:d}"),
        ("R@1", "recall@1", "{:.2f}"),
        ("R@3", "recall@3", "{:.2f}"),
        ("R@5", "recall@5", "{:.2f}"),
        ("MRR@5", "mrr@5", "{:.2f}"),
        ("evidence@5", "evidence@5", "{:.2f}"),
        ("evidence@5 (context)", "evidence@5_wider", "{:.2f}"),
        ("search p50 ms", "search_p50_ms", "{:.1f}"),
        ("refusal P", "refusal_precision", "{:.2f}"),
        ("refusal R", "refusal_recall", "{:.2f}"),
        ("answerable refused", "answerable_refused", "{:.2f}"),
    ]
    order = ["lang=es", "lang=en", "all", "kind=direct", "kind=paraphrase", "kind=cross_lingual"]
    lines = [
        "| slice | " + " | ".join(title for title, _, _ in columns) + " |",
        "| --- |" + " ---: |" * len(columns),
    ]
    for name in order + [n for n in report["groups"] if n not in order]:
        figures = report["groups"].get(name)
        if figures is None:
            continue
        cells = [
            "-" if figures.get(key) is None else fmt.format(figures[key]) for _, key, fmt in columns
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation, print the tables, optionally write the JSON report."""
    parser = argparse.ArgumentParser(prog="python -m bench.rag_eval", description=__doc__)
    parser.add_argument(
        "--split", choices=("test", "dev", "both"), default="test", help="both: one upload"
    )
    parser.add_argument("--k", type=int, default=5, help="results asked of /search (default 5)")
    parser.add_argument("--json", type=Path, help="write the reports here, keyed by split")
    parser.add_argument(
        "--no-refusals", action="store_true", help="skip the /api/rag/query refusal figures"
    )
    parser.add_argument(
        "--scripted-model",
        action="store_true",
        help="answer generative queries with a scripted model (same refusals, no SmolLM2 cost)",
    )
    args = parser.parse_args(argv)
    splits = ["test", "dev"] if args.split == "both" else [args.split]
    started = time.perf_counter()
    reports = asyncio.run(
        evaluate(splits, args.k, not args.no_refusals, scripted=args.scripted_model)
    )
    elapsed = time.perf_counter() - started
    for split, report in reports.items():
        corpus = report["corpus"]
        print(
            f"\nsplit {split}, k={args.k}: {corpus['documents']} documents, {corpus['chunks']} "
            f"chunks uploaded in {corpus['upload_s']:.1f} s; refusals via "
            f"{report['query_mode'] or 'not measured'} /api/rag/query\n"
        )
        print(table(report))
    print(f"\n{elapsed:.0f} s in all")
    if args.json:
        args.json.write_text(json.dumps(reports, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
