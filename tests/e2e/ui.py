"""The chat page as a test sees it: what a user does, found by role and label."""

from __future__ import annotations

from dataclasses import dataclass

from playwright.sync_api import Locator, Page, expect

from tests.e2e.browser import PageWatch


@dataclass
class ChatPage:
    """The browser app on one page, and what the page did."""

    page: Page
    watch: PageWatch

    @classmethod
    def open(cls, page: Page, url: str) -> ChatPage:
        """Load the app at `url` and wait until its models are in."""
        page.set_default_timeout(10_000)
        watch = PageWatch(url)
        watch.attach(page)
        chat = cls(page, watch)
        page.goto(url)
        chat.wait_ready()
        return chat

    def wait_ready(self) -> None:
        """Wait for the app to finish starting (the models listed)."""
        expect(self.page.locator("body")).to_have_attribute("data-ready", "true")

    def reload(self) -> None:
        """Reload the page and wait for the app."""
        self.page.reload()
        self.wait_ready()

    @property
    def composer(self) -> Locator:
        """The message box."""
        return self.page.get_by_role("textbox", name="Message")

    @property
    def answers(self) -> Locator:
        """Every answer on screen."""
        return self.page.locator("article.message-assistant")

    @property
    def last_answer(self) -> Locator:
        """The newest answer."""
        return self.answers.last

    def send(self, text: str) -> None:
        """Type a message and press Enter."""
        self.composer.fill(text)
        self.composer.press("Enter")

    def wait_answer(self, timeout: float = 10_000) -> Locator:
        """Wait until the newest answer is complete; the answer's element."""
        answer = self.last_answer
        expect(answer).to_have_attribute("aria-busy", "false", timeout=timeout)
        expect(self.page.get_by_role("button", name="Send")).to_be_visible()
        return answer

    def ask(self, text: str) -> Locator:
        """Send a message and wait for its whole answer."""
        self.send(text)
        return self.wait_answer()

    def body_of(self, answer: Locator) -> Locator:
        """An answer's rendered text."""
        return answer.locator(".message-body")

    def new_chat(self) -> None:
        """Start a new conversation (on a phone, from the menu)."""
        menu = self.page.get_by_role("button", name="Menu")
        if menu.is_visible():
            menu.click()
        self.page.get_by_role("button", name="New chat").click()

    def conversation(self, title: str) -> Locator:
        """The list entry of the conversation titled `title`."""
        return (
            self.page.get_by_role("list", name="Conversations")
            .get_by_role("listitem")
            .filter(has=self.page.get_by_text(title, exact=True))
        )

    def check_clean(self) -> None:
        """Fail if the page opened a dialog or logged an error."""
        assert not self.watch.dialogs, f"dialogs opened: {self.watch.dialogs}"
        assert not self.watch.errors, f"page errors: {self.watch.errors}"
