"""The typed upstream list: `LLAMARADA_UPSTREAMS=ollama=http://a:11434,openai=http://b:8000/v1`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, SecretStr

UpstreamKind = Literal["ollama", "openai"]
KINDS: tuple[UpstreamKind, ...] = ("ollama", "openai")


class Upstream(BaseModel):
    """One server of the pool: the API it speaks, its base URL, and its key if it needs one."""

    model_config = ConfigDict(frozen=True)

    kind: UpstreamKind
    url: str
    api_key: SecretStr | None = None  # from the settings only, never from a request


def parse_upstreams(text: str) -> list[Upstream]:
    """`KIND=URL[;key=KEY]` entries, comma-separated; ValueError naming the bad entry's place.

    Messages never quote an entry: one may hold a key.
    """
    upstreams = []
    for place, entry in enumerate((part.strip() for part in text.split(",")), start=1):
        if not entry:
            continue
        kind, sep, rest = entry.partition("=")
        kind = kind.strip().lower()
        if not sep or kind not in KINDS:
            raise ValueError(f"entry {place} must start with ollama= or openai=")
        url, *params = (part.strip() for part in rest.split(";"))
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"entry {place} needs an http(s) URL after {kind}=")
        key = None
        for param in params:
            name, sep, value = param.partition("=")
            if name.strip() != "key" or not sep or not value.strip() or key is not None:
                raise ValueError(f"entry {place}: after the URL only one ;key=KEY may follow")
            key = SecretStr(value.strip())
        upstreams.append(Upstream(kind=kind, url=url.rstrip("/"), api_key=key))
    if not upstreams:
        raise ValueError("at least one upstream is needed, such as ollama=http://localhost:11434")
    return upstreams
