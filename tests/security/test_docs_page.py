"""`/docs`: Swagger UI from the installed package, no outside URL, no inline script, no framing."""

from __future__ import annotations

import re

from app.api.docs import DOCS_HEADERS
from app.core.config import Settings
from app.main import create_app
from tests.conftest import app_client
from tests.fakes import ScriptedBackend


async def test_docs_page_loads_nothing_from_outside_and_cannot_be_framed(
    settings: Settings,
) -> None:
    async with app_client(create_app(settings, backend=ScriptedBackend())) as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy
        assert "script-src 'self';" in policy
        assert page.headers["x-frame-options"] == "DENY"
        assert "//" not in page.text  # no absolute URL, no CDN
        scripts = re.findall(r"<script([^>]*)>(.*?)</script>", page.text, re.S)
        assert scripts
        assert all('src="' in attributes and not body.strip() for attributes, body in scripts)
        linked = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert len(linked) == 4  # the bundle, the start script, the stylesheet, the icon
        for path in linked:
            asset = await client.get(f"/{path}")
            assert asset.status_code == 200, path
            assert len(asset.content) > 100
            assert (
                asset.headers["content-security-policy"] == DOCS_HEADERS["Content-Security-Policy"]
            )
            if path.endswith(".js"):
                assert "javascript" in asset.headers["content-type"]
        start = await client.get("/docs/start.js")
        assert '"openapi.json"' in start.text
        assert "validatorUrl: null" in start.text
        schema = await client.get("/openapi.json")
        assert schema.status_code == 200
        assert "/docs" not in schema.json()["paths"]


async def test_redoc_from_a_cdn_is_gone(settings: Settings) -> None:
    async with app_client(create_app(settings, backend=ScriptedBackend())) as client:
        response = await client.get("/redoc")
    assert response.status_code == 404
