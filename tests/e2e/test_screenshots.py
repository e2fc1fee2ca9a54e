"""Screenshots of the main screens, desktop and phone, light and dark, saved as artifacts."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.browser import DESKTOP, PHONE, Scheme, screenshot
from tests.e2e.conftest import ScriptedModels, Site
from tests.e2e.ui import ChatPage

ANSWER = """Here is a **quick** comparison of the two `asyncio` calls:

| call | waits for |
|---|---|
| `gather` | every task |
| `wait` | what you ask |

1. Start the tasks.
2. Await them:

```python
results = await asyncio.gather(fetch(a), fetch(b))
```

> Tip: set a timeout on every network call."""


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("device", ["desktop", "phone"])
def test_screenshots_of_the_chat(
    browser: Browser, site: Site, script: ScriptedModels, device: str, scheme: Scheme
) -> None:
    viewport = DESKTOP if device == "desktop" else PHONE
    context = browser.new_context(viewport=viewport, color_scheme=scheme, locale="en-US")
    chat = ChatPage.open(context.new_page(), site.url)
    try:
        screenshot(chat.page, f"empty-{device}-{scheme}")
        script.pieces = [ANSWER[i : i + 12] for i in range(0, len(ANSWER), 12)]
        chat.ask(f"How do gather and wait differ? ({device}, {scheme})")
        screenshot(chat.page, f"answer-{device}-{scheme}")
        script.pieces = ["Yes: the same question gets the same answer, from the cache."]
        chat.ask("Is a repeated question cached?")
        chat.new_chat()
        chat.ask("Is a repeated question cached?")
        chat.page.get_by_role("button", name="Retry").focus()  # a focus ring in the shot
        path = screenshot(chat.page, f"chat-{device}-{scheme}")
        assert path.stat().st_size > 10_000
        if device == "phone":
            chat.page.get_by_role("button", name="Menu").click()
            expect(chat.page.get_by_role("button", name="New chat")).to_be_in_viewport()
            screenshot(chat.page, f"conversations-{device}-{scheme}")
        chat.check_clean()
    finally:
        context.close()
