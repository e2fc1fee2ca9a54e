"""Upload parsing: a bounded child per file vs parsing in process, and the time to refuse each
hostile file.

Run: `python -m bench.rag_parse`. Small files are parsed both ways, interleaved round by round;
the hostile files are the ones tests/rag/test_hostile_uploads.py sends, under default limits.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from app.core.config import RagSettings
from app.core.errors import LlamaradaError
from app.rag.chunking import Upload, prepare_upload
from app.rag.parsing import ParseLimits, UploadParser
from tests.rag.files import make_docx, make_pdf, make_zip_bomb
from tests.rag.hostile import (
    binary_junk,
    deeply_nested_pdf,
    huge_xml_docx,
    malformed_docx,
    many_pages_pdf,
    truncated_pdf,
)

ROUNDS = 15
SMALL: dict[str, Callable[[], bytes]] = {
    "txt 2 KB": lambda: b"Llamas hum to their young. " * 80,
    "md 4 KB": lambda: b"# Guide\n\n## Setup\n\n" + b"Run the installer and wait. " * 150,
    "pdf 2 pages": lambda: make_pdf(["Llamas live in the Andes. " * 20] * 2),
    "docx 20 paragraphs": lambda: make_docx(
        [(None, f"Paragraph {n}, on wool.") for n in range(20)]
    ),
}
HOSTILE: dict[str, Callable[[], bytes]] = {
    "zip bomb docx (300 MB of zeros)": lambda: make_zip_bomb(300_000_000),
    "huge-XML docx (200k paragraphs)": lambda: huge_xml_docx(200_000),
    "pdf of 20,000 pages": lambda: many_pages_pdf(20_000),
    "malformed docx XML": malformed_docx,
    "truncated pdf": truncated_pdf,
    "pdf nested 100,000 deep": lambda: deeply_nested_pdf(100_000),
    "binary junk named .txt": lambda: binary_junk(200_000),
}


async def overhead(parser: UploadParser, settings: RagSettings) -> dict[str, dict[str, float]]:
    """Median ms per small file, in process and in a child, measured round by round."""
    await parser.prepare(Upload("warm.txt", b"warm up the fork server"), 1000, 200)
    table: dict[str, dict[str, float]] = {}
    for label, make in SMALL.items():
        upload = Upload("small", make())
        inline: list[float] = []
        child: list[float] = []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            prepare_upload(upload, 1000, 200, settings.max_document_chars, settings.max_pages)
            inline.append(time.perf_counter() - started)
            started = time.perf_counter()
            await parser.prepare(upload, 1000, 200)
            child.append(time.perf_counter() - started)
        table[label] = {
            "inline_ms": statistics.median(inline) * 1000,
            "child_ms": statistics.median(child) * 1000,
        }
    return table


async def refusals(parser: UploadParser) -> dict[str, dict[str, Any]]:
    """Seconds until each hostile file is refused, and with what status."""
    table: dict[str, dict[str, Any]] = {}
    for label, make in HOSTILE.items():
        data = make()
        started = time.perf_counter()
        status = 201
        try:
            await parser.prepare(Upload("hostile", data), 1000, 200)
        except LlamaradaError as exc:
            status = exc.status_code
        table[label] = {
            "bytes": len(data),
            "seconds": time.perf_counter() - started,
            "status": status,
        }
    return table


async def run() -> dict[str, Any]:
    """Both measurements under the default settings."""
    settings = RagSettings()
    parser = UploadParser(ParseLimits.of(settings), settings.parse_workers)
    return {"overhead": await overhead(parser, settings), "refusals": await refusals(parser)}


def rows(result: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The lines of docs/BENCHMARKS.md."""
    lines = []
    for label, row in result["overhead"].items():
        lines.append(
            (
                f"Parse + split of a small file ({label}) in a bounded child vs in process",
                f"{row['child_ms']:.1f} vs {row['inline_ms']:.1f} ms",
                f"+{row['child_ms'] - row['inline_ms']:.1f} ms",
                "a fresh child from a fork server that has the parsers loaded",
            )
        )
    for label, row in result["refusals"].items():
        lines.append(
            (
                f"Time to refuse a hostile upload: {label}, {row['bytes'] / 1e6:.2f} MB",
                f"{row['seconds']:.2f} s",
                f"HTTP {row['status']}",
                "default limits; the server answers other requests meanwhile",
            )
        )
    return lines


def main() -> int:
    """Measure and print."""
    result = asyncio.run(run())
    for line in rows(result):
        print(" | ".join(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
