"""What every model backend speaks: requests in Ollama's shape, a stream of chunks out."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field


class Options(BaseModel):
    """Ollama's per-request model options; unknown names are rejected, not ignored, and so are
    values of the wrong JSON type (`true` is not a number)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    num_keep: int | None = None
    seed: int | None = None
    num_predict: int | None = None
    top_k: int | None = Field(default=None, ge=0)
    top_p: float | None = Field(default=None, ge=0, le=1)
    min_p: float | None = Field(default=None, ge=0, le=1)
    typical_p: float | None = Field(default=None, ge=0, le=1)
    repeat_last_n: int | None = None
    temperature: float | None = Field(default=None, ge=0)
    repeat_penalty: float | None = Field(default=None, ge=0)
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    penalize_newline: bool | None = None
    mirostat: int | None = Field(default=None, ge=0, le=2)  # 0, 1 or 2; strict: not `false`
    mirostat_tau: float | None = None
    mirostat_eta: float | None = None
    stop: list[str] | None = None
    numa: bool | None = None
    num_ctx: int | None = Field(default=None, ge=1)
    num_batch: int | None = Field(default=None, ge=1)
    num_gpu: int | None = None
    main_gpu: int | None = None
    use_mmap: bool | None = None
    num_thread: int | None = Field(default=None, ge=0)
    # Older Ollama options that clients (LangChain's ChatOllama among them) still send.
    tfs_z: float | None = None
    num_gqa: int | None = None
    low_vram: bool | None = None
    f16_kv: bool | None = None
    logits_all: bool | None = None
    vocab_only: bool | None = None
    use_mlock: bool | None = None
    embedding_only: bool | None = None
    rope_frequency_base: float | None = None
    rope_frequency_scale: float | None = None


class Message(BaseModel):
    """One chat message, as Ollama's `/api/chat` takes it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    images: list[str] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_name: str | None = None
    thinking: str | None = None


JsonFormat = Literal["json"] | dict[str, Any] | None
Think = bool | Literal["low", "medium", "high"] | None


class ChatRequest(BaseModel):
    """A chat completion request in Ollama's shape; `stream` and `keep_alive` don't shape output."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(default="", max_length=256)
    messages: list[Message]
    options: Options | None = None
    format: JsonFormat = None
    tools: list[dict[str, Any]] | None = None
    think: Think = None
    stream: bool = True
    keep_alive: str | float | None = None


class GenerateRequest(BaseModel):
    """A completion request in Ollama's `/api/generate` shape."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(default="", max_length=256)
    prompt: str = ""
    suffix: str | None = None
    system: str | None = None
    template: str | None = None
    context: list[int] | None = None
    raw: bool = False
    images: list[str] | None = None
    options: Options | None = None
    format: JsonFormat = None
    think: Think = None
    stream: bool = True
    keep_alive: str | float | None = None


class EmbedRequest(BaseModel):
    """Ollama's `/api/embed` request."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model: str = Field(default="", max_length=256)
    input: str | list[str]
    truncate: bool = True
    options: Options | None = None
    keep_alive: str | float | None = None
    dimensions: int | None = Field(default=None, ge=1)

    @property
    def texts(self) -> list[str]:
        """The input as a list."""
        return [self.input] if isinstance(self.input, str) else self.input


@dataclass
class Chunk:
    """A piece of a streamed answer; the last one has `done` and the counters."""

    content: str = ""
    thinking: str = ""
    tool_calls: list[dict[str, Any]] | None = None
    done: bool = False
    done_reason: str | None = None
    prompt_eval_count: int = 0
    eval_count: int = 0
    total_duration: int = 0  # all durations in nanoseconds, as Ollama reports them
    load_duration: int = 0
    prompt_eval_duration: int = 0
    eval_duration: int = 0


@dataclass
class Embeddings:
    """Vectors for a list of inputs, in order."""

    vectors: list[list[float]]
    prompt_eval_count: int = 0
    model: str = ""  # the full name of the model that made them, set by the pipeline


@dataclass
class ModelInfo:
    """A model as `/api/tags` lists it."""

    name: str
    size: int = 0
    digest: str = ""
    modified_at: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    """A source of completions: the in-process model or an Ollama server."""

    name: str

    async def start(self) -> None:
        """Open connections or load the model."""

    async def aclose(self) -> None:
        """Release what `start` took."""

    def chat(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        """Stream the answer to a chat; raise the project's errors before the first chunk."""

    def generate(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]:
        """Stream the completion of a prompt."""

    async def embed(self, model: str, inputs: list[str], *, truncate: bool = True) -> Embeddings:
        """Embed each input with the model."""

    async def list_models(self) -> list[ModelInfo]:
        """The models this backend serves."""

    async def show(self, model: str) -> dict[str, Any]:
        """Ollama's `/api/show` answer for the model."""

    async def running(self) -> list[dict[str, Any]]:
        """Ollama's `/api/ps` entries: the models loaded now."""

    async def check(self) -> None:
        """Raise `UpstreamUnavailable` unless the backend can answer now."""


# The counters an answer ends with, as Ollama names them (nanoseconds for durations).
STATS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)


def merge_chunks(chunks: list[Chunk]) -> Chunk:
    """One chunk holding a whole answer: the text joined, the counters of the last."""
    last = chunks[-1]
    tool_calls = [call for chunk in chunks for call in chunk.tool_calls or []]
    merged = Chunk(
        content="".join(chunk.content for chunk in chunks),
        thinking="".join(chunk.thinking for chunk in chunks),
        tool_calls=tool_calls or None,
        done=True,
        done_reason=last.done_reason,
    )
    for name in STATS:
        setattr(merged, name, getattr(last, name))
    return merged
