"""The browser app through nginx: a Llamarada on a scripted model, nginx, Debian's chromium."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass, field

import pytest
from playwright.sync_api import Browser, expect

from app.core.config import Settings
from app.llm.base import ChatRequest, Chunk, ModelInfo
from app.main import create_app
from tests.e2e.browser import DESKTOP, launch_chromium
from tests.e2e.nginx import Nginx, run_nginx
from tests.e2e.ui import ChatPage
from tests.fakes import ScriptedBackend
from tests.servers import serve_in_thread

expect.set_options(timeout=10_000)


@dataclass
class ScriptedModels(ScriptedBackend):
    """The scripted answer under several model names, remembering which one each chat asked."""

    models: tuple[str, ...] = ("scripted:1b", "scripted:7b", "kb:handbook")
    asked: list[str] = field(default_factory=list)

    def chat(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        """The script, whichever served model was asked."""
        if request.model in self.models:
            self.asked.append(request.model)
            request = request.model_copy(update={"model": self.model})
        return super().chat(request)

    async def list_models(self) -> list[ModelInfo]:
        """Every scripted name."""
        return [ModelInfo(name=name) for name in self.models]

    def reset(self) -> None:
        """Back to the default script, with no calls counted."""
        self.pieces = ScriptedBackend.pieces
        self.delay = 0.0
        self.calls = self.closed = 0
        self.requests.clear()
        self.asked.clear()


@dataclass
class Site:
    """nginx in front of a Llamarada on the scripted model."""

    url: str
    app_url: str
    backend: ScriptedModels
    nginx: Nginx


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium for the tests of one module."""
    with launch_chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A Llamarada on ScriptedModels, and nginx with the project's config in front of it."""
    workdir = tmp_path_factory.mktemp("site")
    backend = ScriptedModels()
    settings = Settings(_env_file=None, data_dir=workdir / "data", default_model=backend.model)
    with (
        serve_in_thread(create_app(settings, backend=backend)) as app_url,
        run_nginx(app_url.removeprefix("http://"), workdir / "nginx") as nginx,
    ):
        yield Site(nginx.url, app_url, backend, nginx)


@pytest.fixture
def script(site: Site) -> ScriptedModels:
    """The site's scripted model, reset for this test."""
    site.backend.reset()
    return site.backend


@pytest.fixture
def chat(browser: Browser, site: Site, script: ScriptedModels) -> Iterator[ChatPage]:
    """The app through nginx in a fresh browser context; fails on any dialog or page error."""
    context = browser.new_context(
        viewport=DESKTOP, locale="en-US", permissions=["clipboard-read", "clipboard-write"]
    )
    page = ChatPage.open(context.new_page(), site.url)
    yield page
    context.close()
    page.check_clean()
