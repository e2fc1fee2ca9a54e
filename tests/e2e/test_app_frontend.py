"""The app serves the browser app itself in embedded mode, without shadowing the API."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.api.frontend import FRONTEND_DIR, SECURITY_HEADERS, mount_frontend
from tests.e2e.conftest import Site


def test_app_serves_the_frontend_at_the_root(site: Site) -> None:
    page = httpx.get(f"{site.app_url}/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.text == (FRONTEND_DIR / "index.html").read_text(encoding="utf-8")
    for name, value in SECURITY_HEADERS.items():
        assert page.headers[name] == value
    script = httpx.get(f"{site.app_url}/assets/js/main.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert script.headers["x-content-type-options"] == "nosniff"
    assert script.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/no-such-route", 404),
        ("GET", "/v1/no-such-route", 404),
        ("GET", "/health/no-such-route", 404),
        ("GET", "/assets/no-such-file.js", 404),
        ("GET", "/assets/%2e%2e/%2e%2e/pyproject.toml", 404),
        ("GET", "/api/chat", 405),
        ("POST", "/", 405),
    ],
)
def test_app_frontend_leaves_the_api_alone(site: Site, method: str, path: str, status: int) -> None:
    response = httpx.request(method, f"{site.app_url}{path}")
    assert response.status_code == status
    assert "error" in response.json()


def test_app_api_routes_still_answer_beside_the_frontend(site: Site) -> None:
    assert httpx.get(f"{site.app_url}/health/live").json() == {"status": "ok"}
    assert httpx.get(f"{site.app_url}/metrics").status_code == 200
    assert httpx.get(f"{site.app_url}/api/version").status_code == 200
    assert httpx.get(f"{site.app_url}/openapi.json").json()["paths"].get("/") is None


def test_app_without_a_frontend_serves_only_the_api(tmp_path: Path) -> None:
    app = FastAPI()
    assert mount_frontend(app, tmp_path) is False
    assert not any(getattr(route, "path", None) == "/" for route in app.routes)
