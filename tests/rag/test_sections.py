"""Structure-aware chunks: sections from headings, outlines, manual pages; context around hits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from fpdf import FPDF

from app.core.auth import ANONYMOUS
from app.core.config import Settings
from app.llm.base import ChatRequest
from app.main import create_app
from app.rag.build import Rag
from app.rag.ingest import split_document
from app.rag.loaders import load_document
from app.rag.manpage import is_manpage, manpage_sections
from app.rag.namespace import storage_name
from app.rag.store import Metadata
from app.rag.troff import is_troff
from tests.conftest import app_client
from tests.fakes import ScriptedBackend
from tests.rag.conftest import MODEL, upload

# `man apropos` in Spanish, as `man -l apropos.1.gz | col -b` prints it (tabs and all).
MANPAGE = """APROPOS(1)\t      Utilidades de paginador del manual\t    APROPOS(1)

NOMBRE
       apropos - busca nombres y descripciones de páginas de manual

SINOPSIS
       apropos\t[-dalv?V] [-e|-w|-r] [-s listado] palabraclave ...

DESCRIPCIÓN
       Cada página de manual contiene una breve\t descripción.\tapropos\t busca
       las descripciones de las instancias de palabraclave.

OPCIONES
       -d, --debug
\t      Escribe información de depuración.

       -e, --exact
\t      Cada  palabra clave deberá coincidir exactamente con los nombres
\t      de las páginas y con las descripciones.

       -l, --long
\t      No corta la salida a la anchura de la terminal.

ESTADO DE SALIDA
       0      Ejecución del programa satisfactoria.

       16     No se ha encontrado nada que coincida con el criterio.

VÉASE TAMBIÉN
       man(1), whatis(1), mandb(8)

2.11.2\t\t\t\t  2023-02-24\t\t\t    APROPOS(1)
"""
LIMIT = 1_000_000


def test_manpage_sections_split_at_sections_and_option_entries() -> None:
    assert is_manpage(MANPAGE)
    assert not is_manpage("NAME is a word.\nSome text about names.\n")
    pieces = manpage_sections(MANPAGE)
    headings = [heading for heading, _, _ in pieces]
    assert headings == [
        "APROPOS(1) > NOMBRE",
        "APROPOS(1) > SINOPSIS",
        "APROPOS(1) > DESCRIPCIÓN",
        "APROPOS(1) > OPCIONES > -d, --debug",
        "APROPOS(1) > OPCIONES > -e, --exact",
        "APROPOS(1) > OPCIONES > -l, --long",
        "APROPOS(1) > ESTADO DE SALIDA > 0",
        "APROPOS(1) > ESTADO DE SALIDA > 16",
        "APROPOS(1) > VÉASE TAMBIÉN",
    ]
    for _, text, start in pieces:
        assert MANPAGE[start : start + len(text)] == text
    exact = {h: t for h, t, _ in pieces}["APROPOS(1) > OPCIONES > -e, --exact"]
    assert "coincidir exactamente" in exact
    assert "anchura" not in exact


def test_load_document_reads_a_manpage_as_sections_of_text() -> None:
    loaded = load_document(MANPAGE.encode(), "apropos.txt", LIMIT)
    assert loaded.doc_type == "txt"
    assert loaded.sections[4].heading == "APROPOS(1) > OPCIONES > -e, --exact"
    chunks = split_document(loaded.sections, 1000, 100)
    # Each option is its own small piece, whatever room the chunk size leaves.
    exact = [c for c in chunks if c.heading == "APROPOS(1) > OPCIONES > -e, --exact"]
    assert len(exact) == 1
    assert exact[0].text.startswith("-e, --exact")
    assert MANPAGE[exact[0].start : exact[0].end] == exact[0].text
    assert len({chunk.section for chunk in chunks}) == len(loaded.sections)


# The source of the same kind of page, as Debian ships it (gunzipped).
TROFF = r""".\" Man page for apropos
.TH APROPOS 1 2023-01-08 2.11.2 "Utilidades de paginador del manual"
.SH NOMBRE
apropos \- busca nombres y descripciones de páginas de manual
.SH DESCRIPCIÓN
Cada página de manual contiene una breve descripción.  \fBapropos\fP busca
las descripciones de las instancias de \fIpalabraclave\fP.
.SH OPCIONES
.TP
.if  !'po4a'hide' .BR \-d ", " \-\-debug
Escribe información de depuración.
.TP
\fB\-s\fP \fIlistado\/\fP, \fB\-\-sections=\fP\fIlistado\fP
Busca solo las secciones del manual indicadas.
.PP
Las opciones se pueden combinar.
.SH "VÉASE TAMBIÉN"
.BR man (1),
.BR whatis (1)
"""


def test_troff_sources_become_plain_sections_and_option_entries() -> None:
    assert is_troff(TROFF)
    assert not is_troff(MANPAGE)
    loaded = load_document(TROFF.encode(), "apropos.1", LIMIT)
    assert [(s.heading, s.text) for s in loaded.sections] == [
        (
            "APROPOS(1) > NOMBRE",
            "NOMBRE\napropos - busca nombres y descripciones de páginas de manual",
        ),
        (
            "APROPOS(1) > DESCRIPCIÓN",
            "DESCRIPCIÓN\nCada página de manual contiene una breve descripción.  apropos busca\n"
            "las descripciones de las instancias de palabraclave.",
        ),
        (
            "APROPOS(1) > OPCIONES > -d, --debug",
            "OPCIONES\n-d, --debug\nEscribe información de depuración.",
        ),
        (
            "APROPOS(1) > OPCIONES > -s listado, --sections=listado",
            "-s listado, --sections=listado\nBusca solo las secciones del manual indicadas.",
        ),
        ("APROPOS(1) > OPCIONES", "Las opciones se pueden combinar."),
        ("APROPOS(1) > VÉASE TAMBIÉN", "VÉASE TAMBIÉN\nman(1),\nwhatis(1)"),
    ]


def outlined_pdf() -> bytes:
    """Three pages with bookmarks: a chapter on page 1, its section on page 2."""
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    pdf.add_page()
    pdf.start_section("Llamas")
    pdf.multi_cell(0, 8, "Llamas are camelids from South America.")
    pdf.add_page()
    pdf.start_section("Food", level=1)
    pdf.multi_cell(0, 8, "They eat grass and hay.")
    pdf.add_page()
    pdf.multi_cell(0, 8, "And they drink little water.")
    return bytes(pdf.output())


def test_load_document_pdf_headings_come_from_its_outline() -> None:
    loaded = load_document(outlined_pdf(), "llamas.pdf", LIMIT)
    assert [(s.page, s.heading) for s in loaded.sections] == [
        (1, "Llamas"),
        (2, "Llamas > Food"),
        (3, "Llamas > Food"),
    ]


def test_split_document_never_spans_two_sections() -> None:
    text = "# Guide\n\n" + "Intro words here. " * 30 + "\n\n## Setup\n\n" + "Setup steps. " * 30
    loaded = load_document(text.encode(), "guide.md", LIMIT)
    chunks = split_document(loaded.sections, 200, 20)
    for chunk in chunks:
        section = loaded.sections[chunk.section]
        assert chunk.heading == section.heading
        assert chunk.text in section.text
        assert text[chunk.start : chunk.end] == chunk.text


# A handbook whose sections each split into several 200-character chunks.
HANDBOOK = (
    "# Handbook\n\n## Vacation\n\n"
    "Employees get 25 days of paid vacation per year. "
    + "Plan them with the team calendar in mind. " * 6
    + "\n\nUnused days carry over until the end of March of the next year. "
    + "Ask your manager two weeks ahead. " * 4
    + "\n\n## Parking\n\n"
    + "The garage has 40 places for bicycles and cars. " * 8
)


@pytest.fixture
async def app(settings: Settings, backend: ScriptedBackend) -> AsyncIterator[FastAPI]:
    """An app whose `handbook` collection splits into 200-character chunks."""
    rag = settings.rag.model_copy(update={"section_chars": 700})
    settings = settings.model_copy(update={"default_model": MODEL, "rag": rag})
    app = create_app(settings, backend=backend)
    async with app_client(app) as client:
        app.state.test_client = client
        created = await client.post(
            "/api/rag/collections",
            json={"name": "handbook", "chunk_size": 200, "chunk_overlap": 20},
        )
        assert created.status_code == 201
        assert (await upload(client, "handbook", ("handbook.md", HANDBOOK.encode()))).is_success
        yield app


@pytest.fixture
def client(app: FastAPI) -> httpx.AsyncClient:
    """The app's client."""
    client: httpx.AsyncClient = app.state.test_client
    return client


async def test_search_results_carry_heading_and_the_section_around_them(
    client: httpx.AsyncClient,
) -> None:
    search = {"query": "Unused vacation days carry over until March", "k": 1}
    response = await client.post("/api/rag/collections/handbook/search", json=search)
    hit = response.json()["results"][0]
    assert {"text", "source", "score", "chunk_id", "start", "end", "heading"} <= set(hit)
    assert hit["heading"] == "Handbook > Vacation"
    assert len(hit["text"]) <= 200
    assert "carry over" in hit["text"]
    context = hit["context"]
    assert hit["text"] in context
    assert len(context) <= 700
    assert len(context) > len(hit["text"])
    assert "garage" not in context  # another section
    assert context in HANDBOOK or all(part in HANDBOOK for part in context.split("\n"))


OPTIONS_PAGE = (
    "# tool\n\n## Options\n\n"
    "### --alpha\n\nAlpha makes the tool print every file it reads.\n\n"
    "### --beta\n\nBeta keeps the old copies as tool.bak next to the new ones.\n\n"
    "### --gamma\n\nGamma limits the run to ten minutes.\n\n"
    "## Files\n\n" + "The settings live in the tool.conf file of the home folder. " * 6
)


async def test_a_one_chunk_section_gets_its_sibling_sections_as_context(
    client: httpx.AsyncClient,
) -> None:
    """An option's entry is a chunk of its own: the options next to it are its context."""
    assert (await upload(client, "handbook", ("tool.md", OPTIONS_PAGE.encode()))).is_success
    search = {"query": "Which option keeps the old copies as tool.bak?", "k": 1}
    hit = (await client.post("/api/rag/collections/handbook/search", json=search)).json()
    result = hit["results"][0]
    assert result["heading"] == "tool > Options > --beta"
    context = result["context"]
    assert result["text"] in context
    assert "Alpha makes the tool print" in context
    assert "Gamma limits the run" in context
    assert "settings live" not in context  # another section, not a sibling


async def test_query_gives_the_model_the_section_around_the_hit(
    client: httpx.AsyncClient, backend: ScriptedBackend
) -> None:
    response = await client.post(
        "/api/rag/query",
        json={
            "collection": "handbook",
            "question": "Until when do unused days carry over?",
            "k": 1,
        },
    )
    body = response.json()
    assert body["found"] is True
    source = body["sources"][0]
    assert source["text"] != source["snippet"]
    assert "carry over" in source["text"]
    prompt = backend.requests[-1]
    assert isinstance(prompt, ChatRequest)
    assert source["text"] in prompt.messages[-1].content
    assert "garage" not in prompt.messages[-1].content


async def test_chunks_stored_without_sections_keep_working(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    """A collection filled before sections were recorded: search and answers as before."""
    rag: Rag = app.state.rag
    await client.post("/api/rag/collections", json={"name": "legacy"})
    text = "Old chunk: the office closes at six in the evening on Fridays."
    vector = (await rag.knowledge.embedder.embed_documents([text]))[0]
    metadata: Metadata = {
        "document_id": "old1",
        "source": "old.txt",
        "type": "txt",
        "chunk_index": 0,
        "chunk_count": 1,
        "start": 0,
        "end": len(text),
        "content_hash": "0" * 64,
        "bytes": len(text),
        "chars": len(text),
        "created_at": "2025-01-01T00:00:00Z",
    }
    storage = storage_name(ANONYMOUS.name, "legacy")
    await rag.knowledge.store.upsert(storage, ["old1:0"], [vector], [text], [metadata])
    search = {"query": "When does the office close on Fridays?", "k": 1}
    hit = (await client.post("/api/rag/collections/legacy/search", json=search)).json()
    assert hit["results"][0]["text"] == text
    assert hit["results"][0]["context"] is None
    query = {"collection": "legacy", "question": "When does the office close on Fridays?"}
    body = (await client.post("/api/rag/query", json=query)).json()
    assert body["found"] is True
    assert body["sources"][0]["text"] == text
