"""The multilingual embedder: real USE weights, checked files, questions across languages."""

from __future__ import annotations

import numpy as np
import pytest

from app.rag.embeddings import ModelFileError, verify_sha256
from app.rag.multilingual import USE_FILES, MultilingualEmbedder, use_resources

PASSAGES = [
    "The tmpfs filesystem keeps its files in virtual memory; unmounting discards them.",
    "shred sobreescribe el archivo 3 veces por defecto para dificultar la recuperación.",
    "A hostname may be at most 253 characters long, dots included.",
    "nice ejecuta una orden con la prioridad de planificación modificada.",
]


@pytest.fixture(scope="module")
def embedder() -> MultilingualEmbedder:
    return MultilingualEmbedder.load(threads=1)


def nearest(embedder: MultilingualEmbedder, query: str) -> int:
    vectors = embedder.embed_sync(PASSAGES)
    return int(np.argmax(vectors @ embedder.embed_query_sync(query)))


@pytest.mark.parametrize(
    ("query", "best"),
    [
        ("How many times does shred overwrite a file?", 1),  # English question, Spanish text
        ("¿Qué pasa con los archivos de tmpfs al desmontarlo?", 0),  # and the other way
        ("¿Cuál es la longitud máxima de un nombre de máquina?", 2),
        ("run a command with a lower scheduling priority", 3),
    ],
)
def test_questions_find_passages_across_languages(
    embedder: MultilingualEmbedder, query: str, best: int
) -> None:
    assert nearest(embedder, query) == best


def test_vectors_are_unit_length_and_empty_text_is_embedded(
    embedder: MultilingualEmbedder,
) -> None:
    vectors = embedder.embed_sync(["", "hola", "hello " * 2000])
    assert vectors.shape == (3, 512)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


async def test_async_calls_match_the_sync_ones(embedder: MultilingualEmbedder) -> None:
    [document] = await embedder.embed_documents(["El archivo fstab describe los discos."])
    query = await embedder.embed_query("El archivo fstab describe los discos.")
    assert np.allclose(document, query, atol=1e-5)


def test_the_shipped_files_are_the_pinned_ones() -> None:
    folder = use_resources()
    for name, digest in USE_FILES.items():
        verify_sha256(folder / name, digest)
    with pytest.raises(ModelFileError, match="expected"):
        verify_sha256(folder / "sp.model", USE_FILES["weights.npz"])
