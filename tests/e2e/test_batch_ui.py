"""Batch jobs in the browser through nginx: submit, progress, cancel, results and their download.

The app runs jobs in-process (no Redis) on the scripted model, with the response cache off so
every item reaches the model and takes the script's time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Locator, Page, Request, expect

from app.core.config import BatchSettings, Settings
from app.llm.base import ChatRequest
from app.main import create_app
from tests.e2e.browser import DESKTOP, PHONE, screenshot
from tests.e2e.conftest import ScriptedModels
from tests.e2e.nginx import run_nginx
from tests.e2e.ui import ChatPage
from tests.servers import serve_in_thread

# Each distinct value the progress bar of job `window.watchedJob` shows, in order.
RECORD_PROGRESS = """(label) => {
  window.progress = [];
  const look = () => {
    const bar = [...document.querySelectorAll("#batch-view [role=progressbar]")]
      .find((element) => element.getAttribute("aria-label") === label);
    const value = bar?.getAttribute("aria-valuenow");
    if (value !== undefined && value !== null && window.progress.at(-1) !== Number(value)) {
      window.progress.push(Number(value));
    }
  };
  new MutationObserver(look).observe(document.getElementById("batch-view"), {
    subtree: true, childList: true, attributes: true, attributeFilter: ["aria-valuenow"],
  });
  look();
}"""
# What the browser says when the tab goes to the background, and back.
SET_HIDDEN = """(hidden) => {
  Object.defineProperty(document, "hidden", { configurable: true, get: () => hidden });
  Object.defineProperty(document, "visibilityState", {
    configurable: true, get: () => (hidden ? "hidden" : "visible"),
  });
  document.dispatchEvent(new Event("visibilitychange"));
}"""
XSS_OUTPUT = ['<img src=x onerror="alert(1)">', "<script>alert(2)</script>"]
XSS_ID = "<img src=y onerror=alert(3)>"
XSS_KEY = "<svg onload=alert(4)>"


@dataclass
class Site:
    """nginx in front of a Llamarada running batch jobs in-process on the scripted model."""

    url: str
    backend: ScriptedModels


@pytest.fixture(scope="module")
def batch_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The app with two items at once and no response cache, behind the project's nginx."""
    workdir = tmp_path_factory.mktemp("batch")
    backend = ScriptedModels()
    settings = Settings(
        _env_file=None,
        data_dir=workdir / "data",
        default_model=backend.model,
        cache_ttl=0,
        batch=BatchSettings(worker_concurrency=2),
    )
    with (
        serve_in_thread(create_app(settings, backend=backend)) as app_url,
        run_nginx(app_url.removeprefix("http://"), workdir / "nginx") as nginx,
    ):
        yield Site(nginx.url, backend)


@pytest.fixture
def script(batch_site: Site) -> Iterator[ScriptedModels]:
    """The scripted model, reset; fast again afterwards so a slow item left running ends."""
    batch_site.backend.reset()
    yield batch_site.backend
    batch_site.backend.delay = 0.0


@dataclass
class BatchPage:
    """The batch page of the app, and the job requests the page made."""

    ui: ChatPage
    polls: list[str] = field(default_factory=list)

    @property
    def page(self) -> Page:
        """The browser page."""
        return self.ui.page

    @classmethod
    def open(cls, browser: Browser, url: str, **context: Any) -> BatchPage:
        """The app in a new context, on the batch page."""
        page = browser.new_context(**context).new_page()
        batch = cls(ChatPage.open(page, url))
        page.on("request", batch._on_request)
        batch.go()
        return batch

    def _on_request(self, request: Request) -> None:
        path = urlsplit(request.url).path
        if request.method == "GET" and path.startswith("/api/batch/jobs/"):
            self.polls.append(path)

    def go(self) -> None:
        """Open the batch page from the sidebar (through the menu on a phone)."""
        menu = self.page.get_by_role("button", name="Menu")
        if menu.is_visible():
            menu.click()
        self.page.locator("#batch-tab").click()
        expect(self.page.locator("#batch-form")).to_be_visible()

    def submit(self) -> dict[str, Any]:
        """Press the start button; the job the server queued."""
        with self.page.expect_response(
            lambda r: urlsplit(r.url).path == "/api/batch/jobs" and r.request.method == "POST"
        ) as answer:
            self.page.locator("#batch-submit").click()
        assert answer.value.status == 202, answer.value.text()
        job: dict[str, Any] = answer.value.json()
        return job

    def card(self, job: dict[str, Any]) -> Locator:
        """A job's entry in the list."""
        return self.page.locator(f"li.batch-job:has(h3#batch-job-{job['id']})")

    def polls_of(self, job: dict[str, Any]) -> int:
        """How many times the page asked for the job's status."""
        return self.polls.count(f"/api/batch/jobs/{job['id']}")

    def close(self) -> None:
        """Fail on a dialog, a page error or a foreign request; close the context."""
        try:
            self.ui.check_clean()
            assert not self.ui.watch.foreign_requests, self.ui.watch.foreign_requests
        finally:
            self.page.context.close()


def short(job: dict[str, Any]) -> str:
    """The id as the page shows it."""
    return str(job["id"]).removeprefix("job_")[:8]


def asked_prompts(script: ScriptedModels) -> list[str]:
    """The user message of each chat the model was asked."""
    return [r.messages[-1].content for r in script.requests if isinstance(r, ChatRequest)]


def result_rows(card: Locator) -> Locator:
    """The rows of a job's results table."""
    return card.get_by_role("list", name="Results").get_by_role("listitem")


def test_pasted_prompts_progress_to_completed_and_download(
    browser: Browser, batch_site: Site, script: ScriptedModels
) -> None:
    batch = BatchPage.open(browser, batch_site.url, viewport=DESKTOP, locale="en-US")
    page = batch.page
    try:
        expect(page.get_by_role("heading", level=1)).to_have_text("Batch jobs")
        prompts = [f"Question {n}: what is {n} squared?" for n in range(1, 9)]
        # Two at once, a second each: about four seconds, polled once a second.
        script.pieces, script.delay = ["Hello", ",", " world", "."], 0.25
        page.get_by_role("combobox", name="Model").select_option("scripted:7b")
        # Knowledge bases answer batch items too (with their sources), so they are offered.
        expect(page.locator("#batch-model option")).to_have_text(
            ["scripted:1b", "scripted:7b", "kb:handbook"]
        )
        page.get_by_role("textbox", name="Prompts, one per line").fill(
            "\n".join(prompts[:4]) + "\n\n" + "\n".join(prompts[4:]) + "\n"
        )
        job = batch.submit()
        assert job["counts"]["total"] == 8
        bar = page.get_by_role("progressbar", name=f"Progress of job {short(job)}")
        page.evaluate(RECORD_PROGRESS, f"Progress of job {short(job)}")
        card = batch.card(job)
        expect(card.locator(".batch-status")).to_have_text("Running")
        expect(page.locator("#announcer")).to_have_text(f"Job {short(job)} queued: 8 items.")
        expect(page.get_by_role("textbox", name="Prompts, one per line")).to_have_value("")
        expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^[1-9][0-9]?$"))
        screenshot(page, "batch-desktop-light-running")

        expect(card.locator(".batch-job-head .batch-status")).to_have_text("Completed")
        expect(bar).to_have_attribute("aria-valuenow", "100")
        expect(bar).to_have_attribute("aria-valuetext", "100 %: 8 of 8 done")
        expect(card.locator(".batch-counts")).to_have_text("8 of 8 done · 8 succeeded")
        expect(page.locator("#announcer")).to_have_text(
            f"Job {short(job)}: Completed. 8 of 8 done · 8 succeeded."
        )
        seen = page.evaluate("window.progress")
        between = [value for value in seen if 0 < value < 100]
        assert len(set(between)) >= 2, f"the bar went {seen}"
        assert seen == sorted(seen), seen
        assert seen[-1] == 100, seen
        assert sorted(asked_prompts(script)) == sorted(prompts)
        assert set(script.asked) == {"scripted:7b"}
        expect(card.get_by_role("button", name=f"Cancel job {short(job)}")).to_be_hidden()

        # Polling stopped with the job.
        polls = batch.polls_of(job)
        page.wait_for_timeout(2500)
        assert batch.polls_of(job) == polls

        toggle = card.get_by_role("button", name=f"Results of job {short(job)}", exact=True)
        toggle.click()
        expect(toggle).to_have_attribute("aria-expanded", "true")
        rows = result_rows(card)
        expect(rows).to_have_count(8)
        expect(rows.locator(".batch-item-n")).to_have_text([f"#{n}" for n in range(1, 9)])
        expect(rows.locator(".batch-output")).to_have_text(["Hello, world."] * 8)
        toggle.focus()
        screenshot(page, "batch-desktop-light")

        with page.expect_download() as info:
            card.get_by_role("button", name=f"Download the results of job {short(job)}").click()
        download = info.value
        assert download.failure() is None
        assert download.suggested_filename == f"{job['id']}.results.jsonl"
        lines = [json.loads(line) for line in download.path().read_text().splitlines()]
        assert [line["index"] for line in lines] == list(range(8))
        assert {line["status"] for line in lines} == {"succeeded"}
        assert {line["output"] for line in lines} == {"Hello, world."}
        expect(page.locator("#announcer")).to_have_text(f"Results of job {short(job)} downloaded.")
    finally:
        batch.close()


def test_cancel_a_running_job_and_no_polling_while_hidden(
    browser: Browser, batch_site: Site, script: ScriptedModels
) -> None:
    batch = BatchPage.open(
        browser, batch_site.url, viewport=PHONE, color_scheme="dark", locale="en-US"
    )
    page = batch.page
    try:
        script.pieces, script.delay = ["slow "] * 40, 0.25  # ten seconds an item
        page.get_by_role("textbox", name="Prompts, one per line").fill("one\ntwo\nthree\nfour")
        job = batch.submit()
        card = batch.card(job)
        expect(card.locator(".batch-status")).to_have_text("Running")
        expect(card.locator(".batch-counts")).to_have_text("0 of 4 done · 0 succeeded")
        screenshot(page, "batch-phone-dark-running")

        # A hidden tab asks nothing; back on screen, it asks at once.
        page.evaluate(SET_HIDDEN, True)
        polls = batch.polls_of(job)
        page.wait_for_timeout(2500)
        assert batch.polls_of(job) == polls
        with page.expect_request(lambda r: urlsplit(r.url).path == f"/api/batch/jobs/{job['id']}"):
            page.evaluate(SET_HIDDEN, False)

        card.get_by_role("button", name=f"Cancel job {short(job)}").click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text("items not started yet are dropped")
        dialog.get_by_role("button", name="Keep running").click()
        expect(dialog).to_be_hidden()
        expect(card.locator(".batch-status")).to_have_text("Running")

        card.get_by_role("button", name=f"Cancel job {short(job)}").click()
        dialog.get_by_role("button", name="Cancel job").click()
        expect(card.locator(".batch-job-head .batch-status")).to_have_text("Cancelled")
        expect(card.get_by_role("button", name=f"Cancel job {short(job)}")).to_be_hidden()
        expect(card.locator("h3")).to_be_focused()
        expect(page.locator("#announcer")).to_contain_text(f"Job {short(job)}: Cancelled.")
        expect(card.locator(".batch-counts")).to_contain_text("2 cancelled")
        screenshot(page, "batch-phone-dark-cancelled")
        assert script.calls == 2  # the two items not started never reached the model
    finally:
        batch.close()


def test_jsonl_upload_with_a_malformed_line(
    browser: Browser, batch_site: Site, script: ScriptedModels
) -> None:
    batch = BatchPage.open(
        browser, batch_site.url, viewport=PHONE, color_scheme="dark", locale="en-US"
    )
    page = batch.page
    try:
        jsonl = "\n".join(
            [
                '{"custom_id": "first", "prompt": "Upload one"}',
                '{"custom_id": "second", "prompt": "Upload two"',
                '{"custom_id": "third", "messages": [{"role": "user", "content": "Upload 3"}]}',
            ]
        )
        page.get_by_role("radio", name="Upload a JSONL file").check()
        expect(page.get_by_role("textbox", name="Prompts, one per line")).to_be_hidden()
        page.get_by_label("JSONL file", exact=True).set_input_files(
            {"name": "items.jsonl", "mimeType": "application/x-ndjson", "buffer": jsonl.encode()}
        )
        job = batch.submit()
        card = batch.card(job)
        expect(card.locator(".batch-job-head .batch-status")).to_have_text("Completed")
        expect(card.locator(".batch-counts")).to_have_text("3 of 3 done · 2 succeeded · 1 failed")
        card.get_by_role("button", name=f"Results of job {short(job)}", exact=True).click()
        rows = result_rows(card)
        expect(rows).to_have_count(3)
        expect(rows.locator(".batch-custom-id")).to_have_text(["first", "second", "third"])
        expect(rows.locator(".batch-status")).to_have_text(["Succeeded", "Failed", "Succeeded"])
        expect(rows.nth(1).locator(".batch-item-error")).to_contain_text("line 2: not valid JSON")
        expect(rows.locator(".batch-output")).to_have_text(["Hello, world.", "Hello, world."])
        assert sorted(asked_prompts(script)) == ["Upload 3", "Upload one"]
        rows.last.scroll_into_view_if_needed()
        screenshot(page, "batch-phone-dark")
    finally:
        batch.close()


def test_xss_in_results_and_errors_stays_text(
    browser: Browser, batch_site: Site, script: ScriptedModels
) -> None:
    batch = BatchPage.open(
        browser, batch_site.url, viewport=DESKTOP, color_scheme="dark", locale="en-US"
    )
    page = batch.page
    try:
        script.pieces = XSS_OUTPUT
        jsonl = "\n".join(
            [
                json.dumps({"custom_id": XSS_ID, "prompt": "<script>alert(5)</script>"}),
                json.dumps({"prompt": "extra key", XSS_KEY: 1}),
            ]
        )
        page.get_by_role("radio", name="Upload a JSONL file").check()
        page.get_by_label("JSONL file", exact=True).set_input_files(
            {"name": "xss.jsonl", "mimeType": "application/x-ndjson", "buffer": jsonl.encode()}
        )
        job = batch.submit()
        card = batch.card(job)
        expect(card.locator(".batch-job-head .batch-status")).to_have_text("Completed")
        card.get_by_role("button", name=f"Results of job {short(job)}", exact=True).click()
        rows = result_rows(card)
        expect(rows).to_have_count(2)
        expect(rows.first.locator(".batch-output")).to_have_text("".join(XSS_OUTPUT))
        expect(rows.first.locator(".batch-custom-id")).to_have_text(XSS_ID)
        expect(rows.nth(1).locator(".batch-item-error")).to_contain_text(XSS_KEY)
        view = page.locator("#batch-view")
        expect(view.locator("img, script, svg, iframe, [onerror], [onload]")).to_have_count(0)
        assert page.evaluate("document.scripts.length") == 2  # boot.js and main.js
        screenshot(page, "batch-desktop-dark-xss")
    finally:
        batch.close()


def test_job_list_survives_a_reload_in_spanish(
    browser: Browser, batch_site: Site, script: ScriptedModels
) -> None:
    context = browser.new_context(viewport=DESKTOP, color_scheme="light", locale="es-ES")
    page = context.new_page()
    ui = ChatPage.open(page, batch_site.url)
    batch = BatchPage(ui)
    try:
        page.get_by_role("button", name="Trabajos por lotes").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Trabajos por lotes")
        page.get_by_role("textbox", name="Prompts, uno por línea").fill("¿Hola?\n¿Qué tal?")
        job = batch.submit()
        card = batch.card(job)
        expect(card.locator(".batch-job-head .batch-status")).to_have_text("Completado")
        expect(card.locator(".batch-counts")).to_have_text("2 de 2 terminados · 2 correctos")

        ui.reload()
        expect(page.get_by_role("heading", level=1)).to_have_text("Trabajos por lotes")
        expect(page).to_have_url(f"{batch_site.url}/#batch")
        card = batch.card(job)
        expect(card.locator("h3")).to_have_text(f"Trabajo {short(job)}")
        expect(card.locator(".batch-job-head .batch-status")).to_have_text("Completado")
        expect(card.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
        expect(card.locator(".batch-counts")).to_have_text("2 de 2 terminados · 2 correctos")
        expect(page.locator("li.batch-job")).not_to_have_count(0)
        screenshot(page, "batch-desktop-light-es")
    finally:
        batch.close()
