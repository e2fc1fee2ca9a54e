"""Custom models from Modelfiles, applied by the gateway itself in embedded mode.

Each `models/<name>/Modelfile` whose FROM is a model the backend serves becomes the model
`<name>:latest`: its SYSTEM prompt and MESSAGE turns go before the conversation, and its
PARAMETERs are the default options, which a request's own options override. (With Ollama,
start.sh creates the same models in Ollama instead.)
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Mapping
from dataclasses import replace
from typing import Any

from app.llm.base import (
    Backend,
    ChatRequest,
    Chunk,
    Embeddings,
    GenerateRequest,
    Message,
    ModelInfo,
    Options,
)
from app.llm.modelfile import Modelfile

logger = logging.getLogger(__name__)


def full_name(name: str) -> str:
    """Ollama's rule: a name without a tag means `:latest`."""
    return name if ":" in name else f"{name}:latest"


class AliasedBackend:
    """A backend plus the Modelfile models built on the models it serves."""

    def __init__(self, inner: Backend, modelfiles: Mapping[str, Modelfile]) -> None:
        self.inner = inner
        self.name = inner.name
        self._modelfiles = dict(modelfiles)
        self.aliases: dict[str, Modelfile] = {}

    async def start(self) -> None:
        """Start the backend, then keep the Modelfiles whose base it serves."""
        await self.inner.start()
        served = {info.name for info in await self.inner.list_models()}
        for name, modelfile in self._modelfiles.items():
            names = (modelfile.base, full_name(modelfile.base))
            base = next((name for name in names if name in served), None)
            if base is None:
                logger.info(
                    "custom model skipped: its base is not served here",
                    extra={"model": name, "base": modelfile.base},
                )
                continue
            if modelfile.template or modelfile.adapter:
                logger.warning(
                    "custom model: TEMPLATE and ADAPTER apply only on Ollama",
                    extra={"model": name},
                )
            self.aliases[full_name(name)] = replace(modelfile, base=base)

    async def aclose(self) -> None:
        """Close the backend."""
        await self.inner.aclose()

    def chat(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        """Chat with the base model, the alias's prompt and options applied."""
        alias = self.aliases.get(request.model)
        if alias is None:
            return self.inner.chat(request)
        # As Ollama orders them: the system prompt (the request's own, or the alias's), then
        # the Modelfile's example turns, then the conversation.
        messages = list(request.messages)
        system = []
        while messages and messages[0].role == "system":
            system.append(messages.pop(0))
        if not system and alias.system:
            system = [Message(role="system", content=alias.system)]
        examples = [
            Message.model_validate({"role": m.role, "content": m.content}) for m in alias.messages
        ]
        return self.inner.chat(
            request.model_copy(
                update={
                    "model": alias.base,
                    "messages": [*system, *examples, *messages],
                    "options": _options(alias, request.options),
                }
            )
        )

    def generate(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]:
        """Complete with the base model, the alias's system prompt and options applied."""
        alias = self.aliases.get(request.model)
        if alias is None:
            return self.inner.generate(request)
        return self.inner.generate(
            request.model_copy(
                update={
                    "model": alias.base,
                    "system": request.system if request.system is not None else alias.system,
                    "options": _options(alias, request.options),
                }
            )
        )

    async def embed(self, model: str, inputs: list[str], *, truncate: bool = True) -> Embeddings:
        """Embed with the base model."""
        alias = self.aliases.get(model)
        return await self.inner.embed(alias.base if alias else model, inputs, truncate=truncate)

    async def list_models(self) -> list[ModelInfo]:
        """The backend's models and the custom ones."""
        models = await self.inner.list_models()
        by_name = {info.name: info for info in models}
        for name, alias in self.aliases.items():
            base = by_name[alias.base]
            details = {**base.details, "parent_model": alias.base}
            models.append(
                ModelInfo(name, base.size, base.digest, base.modified_at, details=details)
            )
        return models

    async def show(self, model: str) -> dict[str, Any]:
        """The base model's details, with the alias's system prompt and parameters."""
        alias = self.aliases.get(model)
        if alias is None:
            return await self.inner.show(model)
        shown = await self.inner.show(alias.base)
        parameters = "\n".join(f"{k:<16}{v}" for k, v in alias.options().items())
        return {**shown, "system": alias.system or "", "parameters": parameters}

    async def running(self) -> list[dict[str, Any]]:
        """What the backend has loaded."""
        return await self.inner.running()

    async def check(self) -> None:
        """The backend's health."""
        await self.inner.check()


def _options(alias: Modelfile, given: Options | None) -> Options:
    """The alias's parameters under the request's own options."""
    known = Options.model_fields
    defaults = {k: v for k, v in alias.options().items() if k in known}
    if isinstance(defaults.get("stop"), str):
        defaults["stop"] = [defaults["stop"]]
    own = given.model_dump(exclude_none=True) if given else {}
    return Options.model_validate({**defaults, **own})
