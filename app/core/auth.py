"""API keys: who is calling, and what that key may use.

Keys come from `LLAMARADA_API_KEYS` (entries separated by commas or new lines) and from
`LLAMARADA_API_KEYS_FILE` (one entry per line, `#` starts a comment line). An entry is

    [NAME:]SECRET[;admin][;models=PATTERN|PATTERN...][;rpm=N][;tpm=N]

SECRET is the key itself (16 to 512 printable ASCII characters, no `,` `;` `:`) or
`sha256:<64 hex digits>`, its digest, so a keys file need not hold the key at all. NAME (letters,
digits, `.`, `_`, `-`) is who owns what the key creates; without one, the key is named
`key-<12 hex digits of its digest>`. Two keys with one name share their objects and quotas
(rotation: add the new key under the old name, then remove the old key).

Keys are kept only as SHA-256 digests. A fast hash is enough here: the keys are random strings,
so nobody can guess one from its digest whatever the hash's speed, while a password hash (bcrypt,
argon2) costs tens of milliseconds per request to protect human-chosen passwords, which API keys
are not. The digest of the presented key is compared with every configured one by
`hmac.compare_digest`, never stopping early, so timing tells nothing about how close a guess is.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from starlette.datastructures import Headers

from app.core.errors import Forbidden

logger = logging.getLogger(__name__)

ANONYMOUS_NAME = "anonymous"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_SECRET = re.compile(r"[!-~]{16,512}")
_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
_OPTIONS = "admin, models=A|B, rpm=N, tpm=N"


class KeyFormatError(ValueError):
    """A key entry that cannot be read; the message never holds the secret."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the owner name of what it creates, and what its key allows."""

    name: str
    admin: bool = False
    models: tuple[str, ...] | None = None  # None: every model
    rpm: int | None = None  # None: the configured default
    tpm: int | None = None

    def owns(self, owner: str | None) -> bool:
        """Whether this caller may see an object recorded with `owner` (admins see all)."""
        return self.admin or owner == self.name

    def may_use(self, model: str) -> bool:
        """Whether the key's model patterns allow `model`."""
        return self.models is None or any(fnmatchcase(model, p) for p in self.models)

    def require_model(self, model: str) -> None:
        """Raise Forbidden unless the key may use `model`."""
        if not self.may_use(model):
            raise Forbidden(f"this API key may not use model {model!r}")


# Without keys nothing is protected, as before keys existed: one caller that sees everything.
ANONYMOUS = Principal(ANONYMOUS_NAME, admin=True)


@dataclass(frozen=True)
class KeyEntry:
    """One configured key: its digest and the caller it stands for."""

    digest: bytes
    principal: Principal


def digest_of(key: str) -> bytes:
    """SHA-256 of a key."""
    return hashlib.sha256(key.encode()).digest()


def parse_entry(text: str, where: str) -> KeyEntry:
    """One `[NAME:]SECRET[;OPTION]...` entry; `where` names it in error messages."""
    head, *options = [part.strip() for part in text.split(";")]
    name, secret = "", head
    if not head.startswith("sha256:"):
        name, colon, rest = head.partition(":")
        name, secret = (name, rest) if colon else ("", head)
    if secret.startswith("sha256:"):
        if not _DIGEST.fullmatch(secret.removeprefix("sha256:")):
            raise KeyFormatError(f"{where}: 'sha256:' must be followed by 64 hex digits")
        digest = bytes.fromhex(secret.removeprefix("sha256:"))
    else:
        if not _SECRET.fullmatch(secret) or any(c in secret for c in ",;:"):
            raise KeyFormatError(
                f"{where}: a key must be 16-512 printable ASCII characters without ',;:' "
                "(make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        digest = digest_of(secret)
    if name and (not _NAME.fullmatch(name) or name == ANONYMOUS_NAME):
        raise KeyFormatError(
            f"{where}: the name must be 1-64 letters, digits, '.', '_' or '-' (not "
            f"{ANONYMOUS_NAME!r})"
        )
    return KeyEntry(digest, _principal(name or f"key-{digest.hex()[:12]}", options, where))


def _principal(name: str, options: list[str], where: str) -> Principal:
    admin, models = False, None
    limits: dict[str, int | None] = {"rpm": None, "tpm": None}
    for option in options:
        key, equals, value = option.partition("=")
        if option == "admin":
            admin = True
        elif key == "models" and equals:
            models = tuple(p.strip() for p in value.split("|") if p.strip())
            if not models:
                raise KeyFormatError(f"{where}: 'models=' needs one or more names or patterns")
        elif key in limits and equals and value.isdigit():
            limits[key] = int(value)
        else:
            # The text is not echoed: a misplaced separator could have put a key there.
            raise KeyFormatError(f"{where}: unknown option; the options are {_OPTIONS}")
    return Principal(name, admin, models, limits["rpm"], limits["tpm"])


def parse_entries(text: str, source: str) -> list[KeyEntry]:
    """Every entry of an environment value (commas or new lines) or a file (lines, `#`)."""
    entries = []
    lines = [line.strip() for line in text.splitlines()]
    parts = [part.strip() for line in lines if not line.startswith("#") for part in line.split(",")]
    for number, part in enumerate((p for p in parts if p), start=1):
        entries.append(parse_entry(part, f"{source} entry {number}"))
    seen: set[bytes] = set()
    for entry in entries:
        if entry.digest in seen:
            raise KeyFormatError(f"{source}: the same key is listed twice")
        seen.add(entry.digest)
    return entries


def presented_key(headers: Headers) -> str | None:
    """The key a request carries: `Authorization: Bearer KEY`, else `X-API-Key: KEY`."""
    scheme, _, token = headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key", "").strip() or None


class KeyRing:
    """The configured keys; a keys file is read again when it changes (revocation by edit)."""

    def __init__(
        self, inline: Iterable[KeyEntry], path: Path | None = None, *, check_every: float = 1.0
    ) -> None:
        self._inline = list(inline)
        self._path = path
        self._check_every = check_every
        self._next_check = 0.0
        self._stamp: tuple[int, int] | None = None  # the file as last read, good or bad
        self._from_file: list[KeyEntry] = []
        if path is not None:
            self._reload(first=True)

    def authenticate(self, key: str) -> Principal | None:
        """The caller a key stands for, or None; every digest is compared, in constant time."""
        self._maybe_reload()
        digest = digest_of(key)
        found = None
        for entry in (*self._inline, *self._from_file):
            if hmac.compare_digest(digest, entry.digest):
                found = entry.principal
        return found

    def _maybe_reload(self) -> None:
        now = time.monotonic()
        if self._path is None or now < self._next_check:
            return
        self._next_check = now + self._check_every
        self._reload(first=False)

    def _reload(self, *, first: bool) -> None:
        assert self._path is not None
        try:
            status = self._path.stat()
            stamp = (status.st_mtime_ns, status.st_size)
        except OSError:
            stamp = (-1, -1)  # gone: an error below, unless it is the same as last time
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            entries = parse_entries(self._path.read_text(encoding="utf-8"), str(self._path))
        except (OSError, UnicodeDecodeError, KeyFormatError) as exc:
            if first:
                raise
            # Keep the last good set: a half-saved file must not lock every client out.
            logger.error("API keys file not reloaded", extra={"error": str(exc)})
            return
        self._from_file = entries
        if not first:
            logger.info("API keys file reloaded", extra={"keys": len(entries)})


def build_key_ring(inline: str | None, path: Path | None) -> KeyRing | None:
    """The configured keys, or None when neither setting is given (no authentication)."""
    if inline is None and path is None:
        return None
    return KeyRing(parse_entries(inline or "", "LLAMARADA_API_KEYS"), path)
