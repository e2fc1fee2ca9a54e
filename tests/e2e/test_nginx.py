"""nginx with the project's config in front of a running Llamarada: proxying, streaming, limits."""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.api.frontend import SECURITY_HEADERS
from app.api.middleware import BodyLimitMiddleware
from app.core.config import Settings
from app.main import create_app
from tests.conftest import free_port
from tests.e2e.conftest import ScriptedModels, Site
from tests.e2e.nginx import TEMPLATE, render_template, run_nginx

MiB = 1024 * 1024


def chat_body(content: str) -> dict[str, object]:
    return {"model": "scripted:1b", "messages": [{"role": "user", "content": content}]}


class _Scripts(HTMLParser):
    """The page's <script> elements and any inline handler or style attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline_code: list[str] = []
        self.inline_attributes: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts.append(dict(attrs))
            self._in_script = True
        if tag == "style":
            self.inline_code.append("<style>")
        for name, _ in attrs:
            if name.startswith("on") or name == "style":
                self.inline_attributes.append(f"<{tag} {name}>")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_code.append(data)


def test_nginx_serves_the_app_with_security_headers(site: Site) -> None:
    response = httpx.get(f"{site.url}/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = response.headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["default-src"] == "'none'"
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "server" not in response.headers or "/" not in response.headers["server"]
    # The same headers on the app's own answers and on nginx's errors.
    for url in (f"{site.url}/api/version", f"{site.url}/missing.js"):
        assert httpx.get(url).headers["content-security-policy"] == csp


def test_nginx_security_headers_match_the_app_in_embedded_mode(site: Site) -> None:
    through_nginx = httpx.get(f"{site.url}/").headers
    embedded = httpx.get(f"{site.app_url}/").headers
    for name, value in SECURITY_HEADERS.items():
        assert through_nginx[name] == value
        assert embedded[name] == value


def test_nginx_page_has_no_inline_script_or_style(site: Site) -> None:
    parser = _Scripts()
    parser.feed(httpx.get(f"{site.url}/").text)
    assert parser.scripts, "the page loads its modules"
    assert all(script.get("src") for script in parser.scripts)
    assert parser.inline_code == []
    assert parser.inline_attributes == []
    for script in parser.scripts:
        src = script["src"] or ""
        assert not src.startswith(("http:", "https:", "//")), "scripts come from this host"
        assert httpx.get(f"{site.url}/{src}").status_code == 200


def test_nginx_does_not_serve_metrics(site: Site) -> None:
    assert httpx.get(f"{site.app_url}/metrics").status_code == 200  # the app has them
    for path in ("/metrics", "/metrics/", "/metrics?name[]=x", "/METRICS"):
        response = httpx.get(f"{site.url}{path}")
        assert response.status_code == 404, path
        assert "llama_requests_total" not in response.text


def test_nginx_proxies_api_and_v1_keeping_the_prefix(site: Site) -> None:
    version = httpx.get(f"{site.url}/api/version")
    assert version.json() == httpx.get(f"{site.app_url}/api/version").json()
    tags = httpx.get(f"{site.url}/api/tags").json()
    assert [model["name"] for model in tags["models"]] == list(site.backend.models)
    # A path only the app knows answers with the app's JSON error, not nginx's page.
    missing = httpx.get(f"{site.url}/v1/no-such-route")
    assert missing.status_code == 404
    assert "error" in missing.json()
    assert "x-request-id" in missing.headers


@pytest.mark.parametrize(
    "path",
    ["/api/rag/collections", "/api/rag/collections/handbook", "/api/batch/jobs", "/v1/files"],
)
def test_nginx_proxies_every_api_route_without_redirecting(site: Site, path: str) -> None:
    response = httpx.get(f"{site.url}{path}")
    assert response.status_code != 301
    assert "x-request-id" in response.headers  # the app answered
    direct = httpx.get(f"{site.app_url}{path}")
    assert (response.status_code, response.json()) == (direct.status_code, direct.json())


def test_nginx_passes_the_request_id_or_makes_one(site: Site) -> None:
    given = httpx.get(f"{site.url}/api/version", headers={"X-Request-ID": "trace-42"})
    assert given.headers["x-request-id"] == "trace-42"
    made = httpx.get(f"{site.url}/api/version").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)  # nginx's $request_id, passed to the app


def test_nginx_streams_chat_tokens_as_they_are_made(site: Site, script: ScriptedModels) -> None:
    script.pieces, script.delay = [f"piece{n} " for n in range(6)], 0.3
    arrivals: list[float] = []
    started = time.monotonic()
    with httpx.stream(
        "POST", f"{site.url}/api/chat", json=chat_body("Stream through nginx"), timeout=10
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/x-ndjson"
        for line in response.iter_lines():
            if line.strip():
                arrivals.append(time.monotonic() - started)
                assert "error" not in json.loads(line)
    content_lines = arrivals[:-1]  # the last line is the `done` summary
    assert len(content_lines) == 6
    assert content_lines[0] < 1.0
    assert arrivals[-1] > 1.7
    # Each token arrived about when it was made (0.3 s apart), not all together at the end.
    gaps = sorted(later - earlier for earlier, later in itertools.pairwise(content_lines))
    assert gaps[len(gaps) // 2] > 0.2, arrivals
    assert content_lines[-1] - content_lines[0] > 1.0, arrivals


def test_nginx_stops_the_generation_when_the_client_leaves(
    site: Site, script: ScriptedModels
) -> None:
    script.pieces, script.delay = [f"w{n} " for n in range(50)], 0.1
    with httpx.stream(
        "POST", f"{site.url}/api/chat", json=chat_body("Leave early"), timeout=10
    ) as response:
        lines = response.iter_lines()
        next(lines)
        next(lines)
    deadline = time.monotonic() + 5
    while script.closed == 0:
        assert time.monotonic() < deadline, "the app kept generating after the client left"
        time.sleep(0.05)
    assert script.closed == 1


def test_nginx_gzips_static_files_but_never_the_api(site: Site, script: ScriptedModels) -> None:
    gzip = {"Accept-Encoding": "gzip"}
    for path in ("/", "/assets/app.css", "/assets/js/chat.js"):
        response = httpx.get(f"{site.url}{path}", headers=gzip)
        assert response.headers.get("content-encoding") == "gzip", path
        assert "Accept-Encoding" in response.headers.get("vary", "")
    tags = httpx.get(f"{site.url}/api/tags", headers=gzip)
    assert "content-encoding" not in tags.headers
    streamed = httpx.post(f"{site.url}/api/chat", json=chat_body("gzip?"), headers=gzip)
    assert streamed.status_code == 200
    assert "content-encoding" not in streamed.headers


def nginx_body_limits(template: str) -> dict[str, int]:
    """`client_max_body_size` in bytes by location prefix; "" for the server's own."""
    units = {"": 1, "k": 1024, "m": MiB, "g": 1024 * MiB}
    limits: dict[str, int] = {}
    location = ""
    for line in template.splitlines():
        if opened := re.match(r"\s*location\s+(\S+)\s*\{", line):
            location = opened.group(1)
        elif re.fullmatch(r"    \}", line):
            location = ""
        elif size := re.match(r"\s*client_max_body_size\s+(\d+)([kmg]?);", line):
            limits[location] = int(size.group(1)) * units[size.group(2)]
    return limits


def app_body_limits() -> dict[str, int]:
    """The app's body limits by path prefix (BodyLimitMiddleware); "" for the default."""
    app = create_app(Settings(_env_file=None))
    for middleware in app.user_middleware:
        factory = middleware.cls
        if isinstance(factory, type) and issubclass(factory, BodyLimitMiddleware):
            options: dict[str, Any] = dict(middleware.kwargs)
            return {"": options["max_bytes"], **options["overrides"]}
    raise AssertionError("the app has no BodyLimitMiddleware")


def test_nginx_body_limits_match_the_apps_route_by_route() -> None:
    assert nginx_body_limits(TEMPLATE.read_text()) == app_body_limits()


@pytest.mark.parametrize(
    "path", ["/api/chat", "/api/rag/collections/handbook/documents"], ids=["json", "upload"]
)
def test_body_over_the_limit_is_refused_by_nginx_and_by_the_app(site: Site, path: str) -> None:
    limit = max(size for prefix, size in app_body_limits().items() if path.startswith(prefix))
    # A declared type the routes take: any other is refused (415) before the size is looked at.
    headers = {"Content-Type": "application/json"}
    at_limit = httpx.post(f"{site.url}{path}", content=b"x" * limit, headers=headers, timeout=30)
    assert at_limit.status_code != 413
    assert "x-request-id" in at_limit.headers  # nginx let it through to the app
    too_big = b"x" * (limit + 1)
    by_nginx = httpx.post(f"{site.url}{path}", content=too_big, headers=headers, timeout=30)
    assert by_nginx.status_code == 413
    assert by_nginx.json()["error"]["type"] == "payload_too_large"
    assert "x-request-id" not in by_nginx.headers  # refused before the app saw it
    by_app = httpx.post(f"{site.app_url}{path}", content=too_big, headers=headers, timeout=30)
    assert by_app.status_code == 413
    assert by_app.json()["error"]["type"] == "payload_too_large"


def test_nginx_template_is_long_lived_for_streams() -> None:
    text = TEMPLATE.read_text()
    for directive in (
        "proxy_buffering off;",
        "proxy_read_timeout 300s;",
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
    ):
        assert directive in text


def test_nginx_template_renders_only_the_given_variables() -> None:
    rendered = render_template(TEMPLATE.read_text(), {"API_UPSTREAM": "api:8000"})
    assert "server api:8000;" in rendered
    assert "${" not in rendered
    # nginx's own variables are left for nginx.
    for variable in ("$host", "$remote_addr", "$request_id", "$http_x_request_id"):
        assert variable in rendered


class _ConnectionNumber(BaseHTTPRequestHandler):
    """Answers each request with the number of the TCP connection it came on."""

    protocol_version = "HTTP/1.1"  # keeps connections open unless told to close
    server: _CountingServer

    def setup(self) -> None:
        super().setup()
        self.number = next(self.server.connections)

    def do_GET(self) -> None:
        body = json.dumps({"connection": self.number}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


class _CountingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ConnectionNumber)
        self.connections = itertools.count(1)


def test_nginx_reuses_upstream_connections(tmp_path: Path) -> None:
    upstream = _CountingServer()
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    try:
        with run_nginx(f"127.0.0.1:{upstream.server_port}", tmp_path) as nginx:
            numbers = [httpx.get(f"{nginx.url}/api/peer").json()["connection"] for _ in range(5)]
    finally:
        upstream.shutdown()
        upstream.server_close()
    assert numbers == [1] * 5  # one kept-alive connection carried every request


@pytest.mark.parametrize("path", ["/api/tags", "/v1/models"])
def test_nginx_answers_json_when_the_app_is_down(tmp_path: Path, path: str) -> None:
    with run_nginx(f"127.0.0.1:{free_port()}", tmp_path) as nginx:
        response = httpx.get(f"{nginx.url}{path}")
    assert response.status_code == 502
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["type"] == "upstream_unavailable"


def test_nginx_drops_idle_api_connections_before_the_api_does() -> None:
    # Otherwise nginx can send a request on a connection uvicorn has just closed, and a POST
    # that fails so is not retried: the client gets a 502 for a request nobody refused.
    found = re.search(r"keepalive_timeout\s+(\d+)s;", TEMPLATE.read_text(encoding="utf-8"))
    assert found is not None
    assert int(found.group(1)) < Settings(_env_file=None).server.keep_alive_timeout
