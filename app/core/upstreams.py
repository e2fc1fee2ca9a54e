"""The typed upstream list: `LLAMARADA_UPSTREAMS=ollama=http://a:11434,openai=http://b:8000/v1`."""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr

UpstreamKind = Literal["ollama", "openai"]
KINDS: tuple[UpstreamKind, ...] = ("ollama", "openai")


class Upstream(BaseModel):
    """One server of the pool: the API it speaks, its base URL, and its key if it needs one."""

    model_config = ConfigDict(frozen=True)

    kind: UpstreamKind
    url: str
    api_key: SecretStr | None = None  # from the settings only, never from a request


def url_problem(url: str) -> str | None:
    """What makes `url` unusable as a server's base URL (None: nothing). The answer never
    quotes the URL, which may hold a password."""
    if not url.startswith(("http://", "https://")):
        return "is not an http(s) URL"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- read for its check: a port that is no number, or out of range
    except ValueError:
        return "has a port that is not a number from 0 to 65535"
    return None if parts.hostname else "names no host"


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
        problem = url_problem(url)
        if problem is not None:
            raise ValueError(f"entry {place}: the URL after {kind}= {problem}")
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
