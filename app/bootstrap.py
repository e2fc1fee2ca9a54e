"""Container start-up against Ollama: wait for it, pull missing models, create the custom ones.

`start.sh` runs `python -m app.bootstrap ollama` before it becomes the server, and the image's
health check runs `python -m app.bootstrap probe URL`. The standard library's HTTP client is
enough here, and keeps this step free of the event loop the server will own.

Its settings, like every other: `LLAMARADA_PULL_MODELS` (comma-separated; default the default
model), `LLAMARADA_MODELS_DIR` (default `models`) and `OLLAMA_WAIT_TIMEOUT` (seconds, default 120).
"""

import hashlib
import json
import logging
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Final

from app.core.config import ConfigError, load_settings
from app.core.logging import configure_logging
from app.llm.modelfile import Modelfile, ModelfileError, is_local_path, load_models, read_modelfile

# Variables outside the LLAMARADA_ prefix that its settings read too (Ollama's own name).
ENV_VARS: Final = ("OLLAMA_WAIT_TIMEOUT",)
DEFAULT_WAIT_TIMEOUT: Final = 120.0
log = logging.getLogger("llamarada.bootstrap")
# Ollama is on the container network: never send it through an HTTP proxy from the environment.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class BootstrapError(RuntimeError):
    """Ollama is not there, or refused a pull or a create."""


class OllamaAdmin:
    """The few model-management calls of Ollama's API that start-up needs."""

    def __init__(self, base_url: str, *, timeout: float = 10.0, stream_timeout: float = 600.0):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.stream_timeout = stream_timeout

    def version(self, timeout: float | None = None) -> str:
        """`GET /api/version`: the server's version; fails fast when it is not up yet."""
        with self._open("GET", "/api/version", timeout=timeout) as response:
            return str(json.load(response).get("version", "unknown"))

    def models(self) -> set[str]:
        """`GET /api/tags`: the names of the models present, with their tags."""
        with self._open("GET", "/api/tags") as response:
            entries = json.load(response).get("models") or []
        return {full_name(entry.get("name") or entry.get("model") or "") for entry in entries}

    def pull(self, model: str) -> Iterator[dict[str, Any]]:
        """`POST /api/pull`: the progress events of a download."""
        return self._stream("/api/pull", {"model": model, "stream": True})

    def create(self, body: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """`POST /api/create` with a body from `Modelfile.create_request`: its progress events."""
        return self._stream("/api/create", body)

    def upload_blob(self, path: Path) -> str:
        """Upload a file as a blob unless Ollama has it already; return its `sha256:` digest."""
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        name = f"sha256:{digest.hexdigest()}"
        try:
            self._open("HEAD", f"/api/blobs/{name}").close()
        except BootstrapError:
            with path.open("rb") as handle:
                self._open("POST", f"/api/blobs/{name}", data=handle).close()
        return name

    def _stream(self, path: str, body: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        with self._open("POST", path, body, timeout=self.stream_timeout) as response:
            last: dict[str, Any] = {}
            for line in response:
                if not line.strip():
                    continue
                last = json.loads(line)
                if "error" in last:
                    raise BootstrapError(f"{self.base_url}{path}: {last['error']}")
                yield last
        if last.get("status") != "success":
            raise BootstrapError(f"{self.base_url}{path}: stream ended without success")

    def _open(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        data: BinaryIO | None = None,
        timeout: float | None = None,
    ) -> Any:
        payload = json.dumps(body).encode() if body is not None else data
        request = urllib.request.Request(self.base_url + path, data=payload, method=method)
        request.add_header("Content-Type", "application/json")
        if data is not None:
            request.add_header("Content-Length", str(os.fstat(data.fileno()).st_size))
        try:
            return _opener.open(request, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as exc:
            detail = exc.read(300).decode(errors="replace").strip()
            raise BootstrapError(f"{method} {request.full_url}: HTTP {exc.code} {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise BootstrapError(f"{method} {request.full_url}: {reason}") from None


def full_name(model: str) -> str:
    """A model name with its tag, as `/api/tags` lists it (`llama3` is `llama3:latest`)."""
    return model if ":" in model.rsplit("/", 1)[-1] else f"{model}:latest"


def wait_for(
    admins: Sequence[OllamaAdmin],
    timeout: float,
    *,
    interval: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Poll each server's `/api/version` until it answers; fail once `timeout` seconds pass."""
    deadline = clock() + timeout
    for admin in admins:
        attempts = 0
        while True:
            attempts += 1
            try:
                version = admin.version(timeout=max(0.1, min(5.0, deadline - clock())))
            except BootstrapError as exc:
                remaining = deadline - clock()
                if remaining <= 0:
                    raise BootstrapError(
                        f"Ollama at {admin.base_url} did not answer GET /api/version within "
                        f"{timeout:g} s ({attempts} attempts; last error: {exc})"
                    ) from None
                sleep(min(interval, remaining))
                continue
            log.info("ollama is up", extra={"url": admin.base_url, "version": version})
            break


def pull_missing(admin: OllamaAdmin, models: Sequence[str]) -> list[str]:
    """Pull each model `/api/tags` does not list, logging progress; return those pulled."""
    present = admin.models()
    missing = [m for m in dict.fromkeys(models) if full_name(m) not in present]
    for model in missing:
        log.info("pulling model", extra={"url": admin.base_url, "model": model})
        shown: dict[str, int] = {}
        for event in admin.pull(model):
            status, total = str(event.get("status", "")), int(event.get("total") or 0)
            percent = int(event.get("completed") or 0) * 100 // total if total else -1
            # One line per status and per 10 %: a 5 GB pull is not ten thousand log lines.
            if status not in shown or percent >= shown[status] + 10:
                shown[status] = percent
                if total:
                    log.info(f"pull {model}: {status} {percent}%", extra={"model": model})
                else:
                    log.info(f"pull {model}: {status}", extra={"model": model})
    return missing


def create_model(admin: OllamaAdmin, name: str, modelfile: Modelfile, base_dir: Path) -> None:
    """Create (or update) one model from its Modelfile, uploading local FROM/ADAPTER files."""
    files = adapters = None
    if modelfile.base_is_local:
        files = _upload(admin, modelfile.base, base_dir)
    if modelfile.adapter is not None:
        adapters = _upload(admin, modelfile.adapter, base_dir)
    body = modelfile.create_request(name, files=files, adapters=adapters)
    for event in admin.create(body):
        log.info(f"create {name}: {event.get('status', '')}", extra={"model": name})


def create_model_from_file(urls: Sequence[str], name: str, path: Path) -> None:
    """`llamarada models create NAME -f Modelfile`: create the model on every Ollama server."""
    modelfile = read_modelfile(path)
    for url in urls:
        create_model(OllamaAdmin(url), name, modelfile, path.parent)


def prepare_ollama(
    urls: Sequence[str],
    *,
    pull: Sequence[str],
    models_dir: Path,
    wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
) -> None:
    """Wait for every server, pull `pull` and the bases of `models_dir`, create its models."""
    admins = [OllamaAdmin(url) for url in urls]
    wait_for(admins, wait_timeout)
    custom = load_models(models_dir)
    names = {full_name(name) for name in custom}
    bases = [m.base for m in custom.values() if not m.base_is_local]
    wanted = [m for m in pull if full_name(m) not in names] + bases
    for admin in admins:
        pull_missing(admin, wanted)
        for name, modelfile in custom.items():
            create_model(admin, name, modelfile, models_dir / name)
    log.info("ollama ready", extra={"urls": list(urls), "custom_models": sorted(custom)})


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m app.bootstrap ollama` (start-up) or `probe URL|/PATH` (health check)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["probe"] and len(args) == 2:
        return _probe(args[1])
    if args != ["ollama"]:
        print("usage: python -m app.bootstrap ollama | probe URL|/PATH", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
        configure_logging(settings.log_level)
        prepare_ollama(
            # OpenAI-compatible upstreams load their models themselves: only Ollama is prepared.
            [upstream.url for upstream in settings.pool_upstreams if upstream.kind == "ollama"],
            pull=settings.pull_models or [settings.default_model],
            models_dir=settings.models_dir,
            wait_timeout=settings.ollama_wait_timeout,
        )
    except (BootstrapError, ConfigError, ModelfileError, ValueError) as exc:
        log.error("start-up failed", extra={"error": str(exc)})
        print(f"start.sh: {exc}", file=sys.stderr)
        return 1
    return 0


def _upload(admin: OllamaAdmin, reference: str, base_dir: Path) -> dict[str, str]:
    path = (base_dir / Path(reference).expanduser()).resolve()
    if not is_local_path(reference) or not path.is_file():
        raise ModelfileError(f"{reference} is not a file (looked for {path})")
    return {path.name: admin.upload_blob(path)}


def _probe(url: str) -> int:
    if url.startswith("/"):  # a path on this container's own server
        url = f"http://127.0.0.1:{os.environ.get('PORT', '8000')}{url}"
    try:
        with _opener.open(url, timeout=4) as response:
            return 0 if 200 <= response.status < 300 else 1
    except (urllib.error.URLError, OSError):
        return 1


if __name__ == "__main__":
    sys.exit(main())
