"""Agent mode in the browser: each tool step shows as it happens, then the answer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from app.core.config import Settings
from app.main import create_app
from tests.agent.scripted import AgentScript, tool_call
from tests.e2e.browser import DESKTOP, Scheme, screenshot
from tests.e2e.nginx import run_nginx
from tests.e2e.ui import ChatPage
from tests.servers import serve_in_thread


@pytest.fixture(scope="module")
def agent_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, AgentScript]]:
    """nginx in front of a Llamarada whose model asks for the calculator, then answers."""
    workdir = tmp_path_factory.mktemp("agent")
    script = AgentScript(
        [[tool_call("calculator", expression="6*7")], "Six times seven is **42**."], delay=0.8
    )
    settings = Settings(_env_file=None, data_dir=workdir / "data", default_model=script.model)
    with (
        serve_in_thread(create_app(settings, backend=script)) as app_url,
        run_nginx(app_url.removeprefix("http://"), workdir / "nginx") as nginx,
    ):
        yield nginx.url, script


@pytest.fixture
def agent_url(agent_site: tuple[str, AgentScript]) -> str:
    """The site, its script back at the first reply."""
    url, script = agent_site
    script.requests.clear()  # the script answers by the number of requests seen
    return url


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_agent_mode_shows_each_tool_step(browser: Browser, agent_url: str, scheme: Scheme) -> None:
    context = browser.new_context(viewport=DESKTOP, color_scheme=scheme, locale="en-US")
    chat = ChatPage.open(context.new_page(), agent_url)
    try:
        chat.page.get_by_role("checkbox", name="Agent (tools)").check()
        chat.send(f"What is 6 times 7? ({scheme})")
        answer = chat.last_answer
        step = answer.locator("details.step")
        expect(step).to_have_count(1)
        expect(answer).to_have_attribute("aria-busy", "true")  # the step came before the answer
        chat.wait_answer()
        expect(step.locator("summary")).to_contain_text("calculator")
        step.locator("summary").click()
        expect(step.locator("dd").first).to_contain_text('"expression": "6*7"')
        expect(step.locator("dd").last).to_have_text("42")
        expect(chat.body_of(answer)).to_have_text("Six times seven is 42.")
        expect(answer.locator("strong")).to_have_text("42")
        expect(answer.locator(".stat-steps")).to_have_text("1 tool step")
        expect(chat.page.get_by_role("heading", name="Agent", level=2)).to_be_attached()
        screenshot(chat.page, f"agent-desktop-{scheme}")
        chat.check_clean()
    finally:
        context.close()
