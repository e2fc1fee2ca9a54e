"""One chat through nginx with the real SmolLM2 model, in the browser."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from app.core.config import LimitSettings, Settings
from app.main import create_app
from tests.e2e.browser import DESKTOP
from tests.e2e.nginx import run_nginx
from tests.e2e.test_chat_ui import RECORD_ANSWER_TEXT
from tests.e2e.ui import ChatPage
from tests.servers import serve_in_thread


@pytest.fixture(scope="module")
def real_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """nginx in front of a Llamarada on the embedded model, answers kept short."""
    workdir = tmp_path_factory.mktemp("real")
    settings = Settings(
        _env_file=None, data_dir=workdir / "data", limits=LimitSettings(max_num_predict=32)
    )
    with (
        serve_in_thread(create_app(settings)) as app_url,
        run_nginx(app_url.removeprefix("http://"), workdir / "nginx") as nginx,
    ):
        yield nginx.url


def test_chat_with_the_real_model_streams_an_answer(browser: Browser, real_site: str) -> None:
    context = browser.new_context(viewport=DESKTOP, locale="en-US")
    chat = ChatPage.open(context.new_page(), real_site)
    try:
        expect(chat.page.get_by_role("combobox", name="Model")).to_have_value("smollm2:135m")
        chat.page.evaluate(RECORD_ANSWER_TEXT)
        chat.send("What is the capital of France?")
        answer = chat.wait_answer(timeout=60_000)
        text = chat.body_of(answer).inner_text().strip()
        assert text
        texts: list[dict[str, Any]] = chat.page.evaluate("window.answerTexts")
        assert len([t for t in texts if t["busy"] and t["text"]]) >= 2, texts
        expect(answer.locator(".stat-speed")).to_contain_text("tokens/s")
        expect(answer.locator(".stat-ttft")).to_contain_text("first token")
        expect(answer.locator(".message-error")).to_have_count(0)
        chat.check_clean()
    finally:
        context.close()
