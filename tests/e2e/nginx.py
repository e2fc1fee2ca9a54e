"""The Debian nginx binary running the project's template, as compose would, on this host.

The official image renders `nginx/nginx.conf.template` with envsubst, replacing only the
variables it was given; `render_template` does the same with `string.Template`. The rendered
site is then pointed at this host (a free port on 127.0.0.1, the repository's frontend/) and
included in a minimal main config whose pid, logs and temp files live in a temp dir.
"""

from __future__ import annotations

import os
import shutil
import string
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "nginx" / "nginx.conf.template"
FRONTEND = REPO / "frontend"
DEBIAN_NGINX = Path("/usr/sbin/nginx")


def render_template(template: str, variables: Mapping[str, str]) -> str:
    """What the image's envsubst does: `$NAME` and `${NAME}` replaced for the given names only."""
    return string.Template(template).safe_substitute(variables)


def site_config(upstream: str, port: int, root: Path = FRONTEND) -> str:
    """The template rendered for `upstream` (host:port), listening on 127.0.0.1:`port`."""
    text = render_template(TEMPLATE.read_text(encoding="utf-8"), {"API_UPSTREAM": upstream})
    for container, host in (
        ("listen 80;", f"listen 127.0.0.1:{port};"),
        ("root /usr/share/nginx/html;", f"root {root};"),
    ):
        assert container in text, f"nginx/nginx.conf.template no longer has {container!r}"
        text = text.replace(container, host)
    return text


def nginx_binary() -> str:
    """The nginx executable, or a failed test saying how to get it."""
    found = shutil.which("nginx") or (str(DEBIAN_NGINX) if DEBIAN_NGINX.is_file() else None)
    if found is None:
        pytest.fail("nginx is not installed: `make system-deps` installs the Debian package")
    return found


@dataclass
class Nginx:
    """A running nginx: its base URL and its error log."""

    url: str
    error_log: Path
    access_log: Path


@contextmanager
def run_nginx(upstream: str, workdir: Path, *, connections: int = 256) -> Iterator[Nginx]:
    """nginx in front of `upstream` (host:port) until the block ends; `connections` per worker
    counts both sides of each proxied request (the load run needs more than the tests)."""
    binary = nginx_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    site = workdir / "site.conf"
    site.write_text(site_config(upstream, port), encoding="utf-8")
    temp = workdir / "temp"
    temp.mkdir(exist_ok=True)
    error_log, access_log = workdir / "error.log", workdir / "access.log"
    # As root, workers would drop to `nobody`, who cannot read the temp dirs pytest makes.
    user = "user root;" if os.geteuid() == 0 else ""
    main = workdir / "nginx.conf"
    main.write_text(
        f"""
        {user}
        daemon off;
        worker_processes 1;
        pid {workdir}/nginx.pid;
        error_log {error_log} info;
        events {{ worker_connections {connections}; }}
        http {{
            include /etc/nginx/mime.types;
            default_type application/octet-stream;
            access_log {access_log};
            client_body_temp_path {temp}/body;
            proxy_temp_path {temp}/proxy;
            fastcgi_temp_path {temp}/fastcgi;
            uwsgi_temp_path {temp}/uwsgi;
            scgi_temp_path {temp}/scgi;
            include {site};
        }}
        """,
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [binary, "-c", str(main), "-p", str(workdir), "-e", str(error_log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, error_log)
        yield Nginx(url, error_log, access_log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(url: str, process: subprocess.Popen[bytes], error_log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = error_log.read_text() if error_log.exists() else ""
            pytest.fail(f"nginx exited with {process.returncode}:\n{log}")
        try:
            httpx.get(f"{url}/", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    pytest.fail(f"nginx did not answer on {url} within 10 s")
