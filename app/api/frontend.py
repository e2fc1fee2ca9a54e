"""The browser app at `/` in embedded mode; in compose, nginx serves the same files."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

FRONTEND_DIR = Path(__file__).resolve().parents[2] / "frontend"

# What nginx adds to every response (nginx/nginx.conf.template); tests/e2e checks they agree.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
# The files have no hashed names: browsers revalidate them (ETag) on every load.
_HEADERS = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}


class _Assets(StaticFiles):
    """Static files with the security headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(_HEADERS)
        return response


def mount_frontend(app: FastAPI, directory: Path = FRONTEND_DIR) -> bool:
    """Serve `index.html` at `/` and `assets/` below it, after the API's routes.

    Only `/` and `/assets/` are claimed, so unknown `/api`, `/v1`, `/health` and `/metrics`
    paths keep the API's JSON 404 and 405 answers. False when there is no frontend to serve
    (an installed package without the source tree, as in the Docker image).
    """
    index = directory / "index.html"
    if not index.is_file():
        return False

    @app.get("/", include_in_schema=False)
    async def frontend_index() -> FileResponse:
        return FileResponse(index, headers=_HEADERS)

    app.mount("/assets", _Assets(directory=directory / "assets"), name="assets")
    return True
