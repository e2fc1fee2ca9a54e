"""The chat in Debian's chromium, through nginx, on a scripted model with exact tokens."""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.sync_api import expect

from app.llm.base import ChatRequest
from tests.e2e.browser import screenshot
from tests.e2e.conftest import ScriptedModels
from tests.e2e.ui import ChatPage

SLOW = ["Streaming", " one", " token", " at", " a", " time", " through", " nginx."]

# Records each distinct text of the newest answer, with when it appeared and whether the
# answer was still being written.
RECORD_ANSWER_TEXT = """() => {
  window.answerTexts = [];
  new MutationObserver(() => {
    const answers = document.querySelectorAll("article.message-assistant");
    const answer = answers[answers.length - 1];
    if (!answer) return;
    const text = answer.querySelector(".message-body").textContent;
    const seen = window.answerTexts;
    if (!seen.length || seen[seen.length - 1].text !== text) {
      seen.push({ at: performance.now(), text, busy: answer.getAttribute("aria-busy") === "true" });
    }
  }).observe(document.getElementById("messages"), {
    subtree: true, childList: true, characterData: true, attributes: true,
  });
}"""


def last_messages(script: ScriptedModels) -> list[str]:
    """The messages of the last chat the model was asked."""
    request = script.requests[-1]
    assert isinstance(request, ChatRequest)
    return [message.content for message in request.messages]


def wait_for(condition: Any, timeout: float = 5.0) -> None:
    """Poll until `condition()` is true."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_chat_streams_tokens_into_the_page(chat: ChatPage, script: ScriptedModels) -> None:
    script.pieces, script.delay = SLOW, 0.2
    chat.page.evaluate(RECORD_ANSWER_TEXT)
    sent = time.monotonic()
    answer = chat.ask("Stream me a sentence, please.")
    elapsed = time.monotonic() - sent

    final = "".join(SLOW)
    expect(chat.body_of(answer)).to_have_text(final)
    texts: list[dict[str, Any]] = chat.page.evaluate("window.answerTexts")
    partial = [t for t in texts if t["busy"] and t["text"] and t["text"] != final]
    assert len(partial) >= 4, texts  # the page grew several times before the end
    assert all(final.startswith(t["text"]) for t in partial)
    assert [len(t["text"]) for t in partial] == sorted(len(t["text"]) for t in partial)
    first_text_ms = partial[0]["at"] - texts[0]["at"]
    assert first_text_ms < elapsed * 1000 / 2, (first_text_ms, elapsed)
    expect(answer.locator(".stat-speed")).to_contain_text("tokens/s")
    expect(answer.locator(".stat-ttft")).to_contain_text("first token")
    expect(answer.locator(".badge-cache")).to_have_count(0)


def test_chat_stop_aborts_the_answer_and_the_upstream_request(
    chat: ChatPage, script: ScriptedModels
) -> None:
    script.pieces, script.delay = [f" word{n}" for n in range(60)], 0.1
    chat.send("Talk for a long time.")
    expect(chat.body_of(chat.last_answer)).to_contain_text("word2")
    chat.page.get_by_role("button", name="Stop").click()

    answer = chat.wait_answer()
    expect(answer.locator(".message-status")).to_have_text("Stopped.")
    partial = chat.body_of(answer).inner_text()
    assert "word2" in partial
    assert "word59" not in partial
    expect(chat.composer).to_be_focused()
    # nginx passed the disconnect on: the app stopped generating.
    wait_for(lambda: script.closed == 1)
    time.sleep(0.3)
    assert chat.body_of(answer).inner_text() == partial


def test_chat_retry_asks_again_past_the_cache(chat: ChatPage, script: ScriptedModels) -> None:
    chat.ask("What is retry for?")
    assert script.calls == 1
    script.pieces = ["A", " fresh", " answer."]
    chat.last_answer.get_by_role("button", name="Retry").click()

    answer = chat.wait_answer()
    expect(chat.body_of(answer)).to_have_text("A fresh answer.")
    expect(answer.locator(".badge-cache")).to_have_count(0)
    assert script.calls == 2
    expect(chat.answers).to_have_count(1)


def test_chat_retry_after_stop_finishes_the_answer(chat: ChatPage, script: ScriptedModels) -> None:
    script.pieces, script.delay = [f" part{n}" for n in range(40)], 0.1
    chat.send("Something I will stop.")
    expect(chat.body_of(chat.last_answer)).to_contain_text("part1")
    chat.composer.press("Escape")  # Esc stops too
    expect(chat.last_answer.locator(".message-status")).to_have_text("Stopped.")

    script.delay = 0.0
    chat.last_answer.get_by_role("button", name="Retry").click()
    answer = chat.wait_answer()
    expect(chat.body_of(answer)).to_contain_text("part39")
    expect(answer.locator(".message-status")).to_be_hidden()


def test_chat_copy_puts_the_answer_on_the_clipboard(chat: ChatPage, script: ScriptedModels) -> None:
    script.pieces = ["Copy", " **this**", " text."]
    answer = chat.ask("Something to copy.")
    answer.get_by_role("button", name="Copy").click()
    expect(answer.get_by_role("button", name="Copied")).to_be_visible()
    assert chat.page.evaluate("navigator.clipboard.readText()") == "Copy **this** text."


def test_chat_enter_sends_and_shift_enter_adds_a_line(
    chat: ChatPage, script: ScriptedModels
) -> None:
    chat.composer.fill("first line")
    chat.composer.press("Shift+Enter")
    chat.composer.press_sequentially("second line")
    expect(chat.composer).to_have_value("first line\nsecond line")
    assert script.calls == 0

    chat.composer.press("Enter")
    chat.wait_answer()
    expect(chat.composer).to_have_value("")
    sent = chat.page.locator("article.message-user .message-body")
    assert sent.inner_text() == "first line\nsecond line"
    assert last_messages(script)[-1] == "first line\nsecond line"


def test_chat_conversation_survives_a_reload(chat: ChatPage, script: ScriptedModels) -> None:
    chat.ask("Remember me after a reload")
    chat.reload()

    expect(chat.conversation("Remember me after a reload")).to_be_visible()
    expect(chat.page.get_by_role("heading", level=1)).to_have_text("Remember me after a reload")
    expect(chat.page.locator("article.message-user .message-body")).to_have_text(
        "Remember me after a reload"
    )
    expect(chat.body_of(chat.last_answer)).to_have_text("Hello, world.")
    # A second turn sends the first one along.
    chat.ask("And now?")
    assert last_messages(script) == [
        "Remember me after a reload",
        "Hello, world.",
        "And now?",
    ]


def test_chat_conversations_new_rename_search_delete(chat: ChatPage) -> None:
    chat.ask("Recipe for paella valenciana")
    chat.new_chat()
    expect(chat.answers).to_have_count(0)
    expect(chat.composer).to_be_focused()
    chat.ask("Weather on Mars")
    conversations = chat.page.get_by_role("list", name="Conversations").get_by_role("listitem")
    expect(conversations).to_have_count(2)

    chat.page.get_by_role("button", name="Rename: Weather on Mars").click()
    dialog = chat.page.get_by_role("dialog", name="Rename conversation")
    dialog.get_by_label("Title").fill("Mars forecast")
    dialog.get_by_label("Title").press("Enter")
    expect(dialog).to_be_hidden()
    expect(chat.conversation("Mars forecast")).to_be_visible()
    expect(chat.page.get_by_role("heading", level=1)).to_have_text("Mars forecast")

    search = chat.page.get_by_role("searchbox", name="Search conversations")
    search.fill("PAELLA")
    expect(conversations).to_have_count(1)
    expect(chat.conversation("Recipe for paella valenciana")).to_be_visible()
    search.fill("hello, world")  # the answers are searched too
    expect(conversations).to_have_count(2)
    search.fill("nothing like this")
    expect(conversations).to_have_count(0)
    expect(chat.page.get_by_text("No conversation matches")).to_be_visible()
    search.fill("")

    chat.page.get_by_role("button", name="Delete: Recipe for paella valenciana").click()
    chat.page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(conversations).to_have_count(1)
    chat.reload()
    expect(conversations).to_have_count(1)
    expect(chat.conversation("Mars forecast")).to_be_visible()


def test_chat_model_picker_lists_the_served_models(chat: ChatPage, script: ScriptedModels) -> None:
    picker = chat.page.get_by_role("combobox", name="Model")
    expect(picker.locator("option")).to_have_text(["scripted:1b", "scripted:7b", "kb:handbook"])
    expect(picker.locator("optgroup[label='Knowledge bases'] option")).to_have_text(["kb:handbook"])
    picker.select_option("scripted:7b")
    chat.ask("Which model are you?")
    assert script.asked == ["scripted:7b"]

    chat.reload()
    expect(picker).to_have_value("scripted:7b")


def test_chat_settings_api_key_is_sent_as_a_bearer_token(chat: ChatPage) -> None:
    chat.page.get_by_role("button", name="Settings").click()
    dialog = chat.page.get_by_role("dialog", name="Settings")
    dialog.get_by_label("API key").fill("sk-test-123")
    with chat.page.expect_response("**/api/tags") as listed:
        dialog.get_by_role("button", name="Save").click()
    assert listed.value.request.headers["authorization"] == "Bearer sk-test-123"
    expect(chat.page.get_by_role("button", name="Settings")).to_be_focused()
    with chat.page.expect_request("**/api/chat") as asked:
        chat.ask("Am I authorized?")
    assert asked.value.headers["authorization"] == "Bearer sk-test-123"


def test_chat_repeated_question_shows_the_cache_hit_badge(
    chat: ChatPage, script: ScriptedModels
) -> None:
    first = chat.ask("Is this answer cached?")
    expect(first.locator(".badge-cache")).to_have_count(0)
    chat.new_chat()
    second = chat.ask("Is this answer cached?")
    expect(second.locator(".badge-cache")).to_have_text("cache hit")
    expect(chat.body_of(second)).to_have_text("Hello, world.")
    assert script.calls == 1


def test_chat_shows_api_errors_in_the_answer(chat: ChatPage, script: ScriptedModels) -> None:
    chat.page.get_by_role("combobox", name="Model").evaluate(
        "select => { select.add(new Option('missing:1b')); select.value = 'missing:1b'; }"
    )
    answer = chat.ask("Anyone there?")
    expect(answer.locator(".message-error")).to_contain_text("missing:1b")
    expect(answer.get_by_role("button", name="Retry")).to_be_visible()
    chat.watch.errors.clear()  # the 404 of the failed request is logged by the browser


def test_chat_speaks_spanish_and_keeps_the_choice(chat: ChatPage) -> None:
    chat.page.get_by_role("combobox", name="Language").select_option("es")
    expect(chat.page.locator("html")).to_have_attribute("lang", "es")
    expect(chat.page.get_by_role("button", name="Enviar")).to_be_visible()
    expect(chat.page.get_by_role("button", name="Nuevo chat")).to_be_visible()
    chat.reload()
    composer = chat.page.get_by_role("textbox", name="Mensaje")
    composer.fill("¿Hablas español?")
    composer.press("Enter")
    expect(chat.last_answer.get_by_role("button", name="Reintentar")).to_be_visible()
    screenshot(chat.page, "chat-desktop-light-es")
    chat.page.get_by_role("combobox", name="Idioma").select_option("en")
    expect(chat.composer).to_be_visible()


def test_chat_dark_theme_is_kept_across_reloads(chat: ChatPage) -> None:
    html = chat.page.locator("html")
    expect(html).not_to_have_attribute("data-theme", "dark")
    chat.page.get_by_role("combobox", name="Theme").select_option("dark")
    expect(html).to_have_attribute("data-theme", "dark")
    background = chat.page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(20, 18, 16)"
    chat.reload()
    expect(html).to_have_attribute("data-theme", "dark")


def test_chat_keyboard_users_reach_everything(chat: ChatPage) -> None:
    chat.page.keyboard.press("Tab")
    skip = chat.page.get_by_role("link", name="Skip to the message box")
    expect(skip).to_be_focused()
    chat.page.keyboard.press("Enter")
    expect(chat.composer).to_be_focused()
    # Every control has a name a screen reader can say.
    unnamed = chat.page.evaluate(
        """() => [...document.querySelectorAll("button, input, select, textarea, a[href]")]
          .filter((el) => el.checkVisibility())
          .filter((el) => !(el.labels?.length || el.getAttribute("aria-label")
                            || el.textContent.trim()))
          .map((el) => el.outerHTML)"""
    )
    assert unnamed == []
    expect(chat.page.get_by_role("log", name="Messages")).to_be_attached()
    expect(chat.page.get_by_role("status")).to_be_attached()


@pytest.mark.parametrize("phone", [False, True], ids=["desktop", "phone"])
def test_chat_phone_layout_fits_the_screen(chat: ChatPage, phone: bool) -> None:
    width = 390 if phone else 1280
    chat.page.set_viewport_size({"width": width, "height": 844})
    chat.ask("Does it fit?")
    overflow = chat.page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= width
    menu = chat.page.get_by_role("button", name="Menu")
    if phone:
        expect(chat.page.get_by_role("button", name="New chat")).not_to_be_in_viewport()
        menu.click()
        expect(menu).to_have_attribute("aria-expanded", "true")
        expect(chat.page.get_by_role("button", name="New chat")).to_be_focused()
        chat.page.keyboard.press("Escape")
        expect(menu).to_have_attribute("aria-expanded", "false")
    else:
        expect(menu).to_be_hidden()
