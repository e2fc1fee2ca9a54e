"""Knowledge bases in the browser through nginx: create, upload with progress, ask, cite, delete."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, expect

from app.core.config import Settings
from app.main import create_app
from tests.e2e.browser import DESKTOP, PHONE, Scheme, screenshot
from tests.e2e.nginx import run_nginx
from tests.e2e.ui import ChatPage
from tests.fakes import ScriptedBackend
from tests.servers import serve_in_thread

HANDBOOK = "\n\n".join(
    [
        "# Vacation\n\nEmployees get 25 days of paid vacation per year. "
        "Ask your manager two weeks ahead.",
        "# Remote work\n\nRemote work is allowed three days a week, "
        "with Tuesdays in the office for everyone.",
        *(
            f"## Note {n}\n\n" + f"Filler paragraph {n} about office plants. " * 12
            for n in range(30)
        ),
    ]
)
RECORD_PROGRESS = """() => {
  window.progress = [];
  new MutationObserver(() => {
    const bar = document.getElementById("kb-progress");
    const text = document.getElementById("kb-progress-text");
    if (bar && text) window.progress.push({ value: bar.value, text: text.textContent });
  }).observe(document.getElementById("kb-view"), {
    subtree: true, childList: true, characterData: true, attributes: true,
  });
}"""


@pytest.fixture(scope="module")
def kb_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """nginx in front of a Llamarada with real knowledge bases and a model that cites [1]."""
    workdir = tmp_path_factory.mktemp("kb")
    backend = ScriptedBackend(pieces=["Employees get ", "25 days of ", "paid vacation [1]."])
    settings = Settings(_env_file=None, data_dir=workdir / "data", default_model=backend.model)
    with (
        serve_in_thread(create_app(settings, backend=backend)) as app_url,
        run_nginx(app_url.removeprefix("http://"), workdir / "nginx") as nginx,
    ):
        yield nginx.url


@pytest.mark.parametrize(
    ("device", "scheme"), [("desktop", "light"), ("phone", "dark")], ids=["desktop", "phone"]
)
def test_kb_upload_ask_and_open_a_citation(
    browser: Browser, kb_site: str, device: str, scheme: Scheme
) -> None:
    viewport = DESKTOP if device == "desktop" else PHONE
    context = browser.new_context(viewport=viewport, color_scheme=scheme, locale="en-US")
    ui = ChatPage.open(context.new_page(), kb_site)
    page = ui.page
    name = f"handbook-{device}"
    try:
        if device == "phone":
            page.get_by_role("button", name="Menu").click()
        page.get_by_role("button", name="Knowledge bases").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Knowledge bases")
        page.get_by_role("textbox", name="New knowledge base").fill(name)
        page.get_by_role("button", name="Create").click()
        expect(page.get_by_role("heading", name=name, level=2)).to_be_visible()

        page.evaluate(RECORD_PROGRESS)
        page.get_by_label("Files to add").set_input_files(
            {"name": "handbook.md", "mimeType": "text/markdown", "buffer": HANDBOOK.encode()}
        )
        page.get_by_role("button", name="Upload").click()
        expect(page.get_by_role("status").filter(has_text="Added")).to_have_text(
            "Added: 1 document."
        )
        expect(page.locator("#kb-progress")).to_have_js_property("value", 100)
        texts = [entry["text"] for entry in page.evaluate("window.progress")]
        assert any(text.startswith("Uploading") for text in texts), texts
        assert any(text.startswith("Indexing handbook.md") for text in texts), texts
        documents = page.get_by_role("table")
        expect(documents.get_by_role("rowheader")).to_have_text(["handbook.md"])
        expect(page.get_by_role("list", name="Knowledge bases")).to_contain_text("1 document")

        page.get_by_role("textbox", name="Question").fill("How many vacation days do I get?")
        page.get_by_role("button", name="Ask", exact=True).click()
        answer = page.locator(".kb-answer-text")
        expect(answer).to_have_text("Employees get 25 days of paid vacation [1].")
        expect(answer).to_have_attribute("aria-busy", "false")
        source = page.locator("#kb-source-1")
        expect(source.locator("summary")).to_contain_text("handbook.md")
        expect(source).not_to_have_attribute("open", "")
        answer.get_by_role("button", name="Source 1").click()
        expect(source).to_have_attribute("open", "")
        expect(source.locator("blockquote")).to_contain_text("25 days of paid vacation")
        expect(source.locator("summary")).to_be_focused()
        screenshot(page, f"kb-{device}-{scheme}")

        # The knowledge base is a chat model too, in its own group of the picker.
        if device == "phone":
            page.get_by_role("button", name="Menu").click()
        page.get_by_role("button", name="Chat", exact=True).click()
        picker = page.get_by_role("combobox", name="Model")
        expect(picker.locator("optgroup[label='Knowledge bases'] option")).to_contain_text(
            [f"kb:{name}"]
        )
        picker.select_option(f"kb:{name}")
        reply = ui.ask("How many vacation days?")
        expect(ui.body_of(reply)).to_contain_text("25 days of paid vacation [1]")
        expect(ui.body_of(reply)).to_contain_text("[1] handbook.md")
        if device == "phone":
            page.get_by_role("button", name="Menu").click()
        page.get_by_role("button", name="Knowledge bases").click()
        page.locator(".kb-collection").filter(has_text=name).click()

        page.get_by_role("button", name="Delete handbook.md").click()
        page.get_by_role("dialog").get_by_role("button", name="Delete").click()
        expect(page.get_by_text("No documents yet.")).to_be_visible()
        page.get_by_role("button", name="Delete knowledge base").click()
        page.get_by_role("dialog").get_by_role("button", name="Delete").click()
        expect(page.get_by_role("heading", name=name, level=2)).to_have_count(0)
        expect(page.locator(".kb-collection").filter(has_text=name)).to_have_count(0)
        ui.check_clean()
    finally:
        context.close()


def test_kb_answer_mode_quotes_the_sources_without_the_model(
    browser: Browser, kb_site: str
) -> None:
    name = "handbook-quotes"
    with httpx.Client(base_url=kb_site, timeout=30) as api:
        assert api.post("/api/rag/collections", json={"name": name}).status_code == 201
        files = {"files": ("handbook.md", HANDBOOK.encode(), "text/markdown")}
        assert api.post(f"/api/rag/collections/{name}/documents", files=files).status_code == 201
    context = browser.new_context(viewport=DESKTOP, locale="en-US")
    ui = ChatPage.open(context.new_page(), kb_site)
    page = ui.page
    try:
        page.get_by_role("button", name="Knowledge bases").click()
        page.locator(".kb-collection").filter(has_text=name).click()
        mode = page.get_by_role("combobox", name="Answer mode")
        expect(mode.locator("option")).to_have_text(["Model's answer", "Quotes only (no model)"])
        expect(mode).to_have_value("generative")
        mode.select_option("extractive")

        page.get_by_role("textbox", name="Question").fill("How many vacation days do I get?")
        page.get_by_role("button", name="Ask", exact=True).click()
        answer = page.locator(".kb-answer-text")
        expect(answer).to_have_attribute("aria-busy", "false")
        # The documents' own sentence, not the scripted model's words.
        expect(answer).to_contain_text(
            "According to [1]: “Employees get 25 days of paid vacation per year.”"
        )
        expect(answer).not_to_contain_text("Employees get 25 days of paid vacation [1].")
        answer.get_by_role("button", name="Source 1").click()
        source = page.locator("#kb-source-1")
        expect(source).to_have_attribute("open", "")
        expect(source.locator("summary")).to_contain_text("handbook.md")

        # The choice holds for the next question, and switching back asks the model again.
        expect(mode).to_have_value("extractive")
        mode.select_option("generative")
        page.get_by_role("button", name="Ask", exact=True).click()
        expect(answer).to_have_text("Employees get 25 days of paid vacation [1].")
        ui.check_clean()
    finally:
        context.close()
