"""The API reference at `/docs`: Swagger UI from a package's files, under a strict CSP.

FastAPI's own page loads Swagger UI from a CDN (a blank page on a machine offline) through an
inline script, which a strict Content-Security-Policy forbids. Here the files come from the
`fastapi-offline` wheel (Swagger UI 5, which reads OpenAPI 3.1), the page's script is a file
of its own, and the page may not be framed.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from app.api.frontend import SECURITY_HEADERS

SWAGGER_DIR = Path(str(files("fastapi_offline") / "static"))
# Swagger UI sets style attributes and draws its icons from data: URLs; nothing else is loosened.
DOCS_HEADERS = {
    **SECURITY_HEADERS,
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
}
# Relative URLs, so the page works under a path prefix too.
_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} API</title>
<link rel="stylesheet" href="docs/assets/swagger-ui.css">
<link rel="icon" href="docs/assets/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/assets/swagger-ui-bundle.js"></script>
<script src="docs/start.js"></script>
</body>
</html>
"""
# FastAPI's settings for Swagger UI, without the validator badge (a call to another site).
_START = """window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
});
"""


class _Assets(StaticFiles):
    """Swagger UI's files with the page's security headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(DOCS_HEADERS)
        return response


def mount_docs(app: FastAPI, path: str = "/docs") -> None:
    """Serve the reference at `path` (create the app with `docs_url=None`)."""
    page = _PAGE.format(title=app.title)

    @app.get(path, include_in_schema=False)
    async def docs_page() -> HTMLResponse:
        return HTMLResponse(page, headers=DOCS_HEADERS)

    @app.get(f"{path}/start.js", include_in_schema=False)
    async def docs_script() -> Response:
        return Response(_START, media_type="text/javascript", headers=DOCS_HEADERS)

    app.mount(f"{path}/assets", _Assets(directory=SWAGGER_DIR), name="docs-assets")
