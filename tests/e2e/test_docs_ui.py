"""`/docs` renders in a browser that can reach nothing but the app, under the page's own CSP."""

from __future__ import annotations

from playwright.sync_api import Browser, ConsoleMessage, Request, expect

from tests.e2e.conftest import Site


def test_docs_render_offline_under_their_policy(site: Site, browser: Browser) -> None:
    page = browser.new_page()
    errors: list[str] = []
    elsewhere: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    def request(sent: Request) -> None:
        if not sent.url.startswith((site.app_url, "data:")):
            elsewhere.append(sent.url)

    page.on("console", console)
    page.on("request", request)
    try:
        page.goto(f"{site.app_url}/docs")
        expect(page.locator(".opblock").first).to_be_visible()
        assert page.locator(".opblock").count() >= 30  # every documented operation
        expect(page.locator(".information-container .title")).to_contain_text("Llamarada")
        page.locator(".opblock-summary-path", has_text="/api/chat").first.click()
        expect(page.locator(".opblock-body").first).to_be_visible()
    finally:
        page.close()
    assert errors == []  # no CSP violation, no failed load
    assert elsewhere == []
