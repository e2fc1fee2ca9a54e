// The conversation on screen: its messages, the composer, and answers streamed into the page.
//
// An answer is read line by line from the NDJSON stream and drawn at most once a frame; the
// log is aria-busy meanwhile, so a screen reader reads the answer once, when it is complete.

import { ApiError, ndjson, streamAgent, streamChat } from "./api.js";
import { byId, copyText, h } from "./dom.js";
import { formatDuration, formatNumber, plural, t } from "./i18n.js";
import { icon } from "./icons.js";
import { renderMarkdown } from "./markdown.js";

const STICK_TO_END = 96; // px from the bottom within which new text keeps the view scrolled down

/** The words for a failed request. */
function describe(error) {
  if (!(error instanceof ApiError)) return error.message || String(error);
  if (error.status === 401) return t("unauthorized");
  if (error.status === 0) return t("networkError");
  if (error.retryAfter) return t("retryAfter", { message: error.message, seconds: error.retryAfter });
  return error.message;
}

function stepView(step) {
  const failed = step.error !== undefined && step.error !== null;
  return h(
    "details",
    { class: failed ? "step step-failed" : "step" },
    h(
      "summary",
      {},
      icon("tool"),
      h("span", { class: "step-tool" }, step.tool),
      h("span", { class: "step-duration" }, formatDuration(step.duration_ms ?? 0)),
    ),
    h(
      "dl",
      {},
      h("dt", {}, t("stepArguments")),
      h("dd", {}, h("pre", {}, JSON.stringify(step.arguments, null, 2))),
      h("dt", {}, failed ? t("stepError") : t("stepResult")),
      h("dd", {}, h("pre", {}, String(failed ? step.error : (step.result ?? "")))),
    ),
  );
}

function actionButton(action, label) {
  return h(
    "button",
    { type: "button", class: "button button-small button-quiet", dataset: { action } },
    icon(action),
    h("span", {}, label),
  );
}

/** Tokens per second from the final line's counters, else from the arrival times. */
function tokensPerSecond(line, first, last) {
  const count = line.eval_count ?? 0;
  if (count > 0 && line.eval_duration > 0) return count / (line.eval_duration / 1e9);
  if (count > 1 && first !== null && last > first) return count / ((last - first) / 1000);
  return null;
}

export class ChatView {
  #controller = null;
  #conversation = null;
  #streaming = -1; // the index of the answer being written

  /**
   * `store`: the ConversationStore; `model()` and `agentMode()` read the pickers;
   * `announce(text)` speaks through the status region; `onOpen(conversation)` runs when a
   * new conversation starts (to select it in the list).
   */
  constructor({ store, model, agentMode, announce, onOpen }) {
    Object.assign(this, { store, model, agentMode, announce, onOpen });
    this.log = byId("messages");
    this.scroller = byId("scroller");
    this.input = byId("composer-input");
    this.sendButton = byId("send");
    this.stopButton = byId("stop");
    byId("composer").addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.input.addEventListener("keydown", (event) => {
      const plainEnter =
        event.key === "Enter" && !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey;
      if (plainEnter && !event.isComposing) {
        event.preventDefault();
        this.submit();
      }
    });
    this.input.addEventListener("input", () => this.#autosize());
    this.stopButton.addEventListener("click", () => this.stop());
    this.log.addEventListener("click", (event) => this.#onClick(event));
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.busy && !document.querySelector("dialog[open]")) this.stop();
    });
  }

  get busy() {
    return this.#controller !== null;
  }

  get conversation() {
    return this.#conversation;
  }

  /** Show a conversation (null: a new, empty one), stopping any answer in progress. */
  open(conversation) {
    this.stop();
    this.#conversation = conversation;
    this.render();
  }

  render() {
    const messages = this.#conversation?.messages ?? [];
    byId("empty").hidden = messages.length > 0;
    byId("title").textContent = this.#conversation?.title || t("untitled");
    // Redrawing a whole conversation is not news: keep the live region quiet meanwhile.
    this.log.setAttribute("aria-live", "off");
    this.log.replaceChildren(...messages.map((message, index) => this.#article(message, index)));
    requestAnimationFrame(() => this.log.setAttribute("aria-live", "polite"));
    this.#scrollToEnd();
  }

  async submit() {
    const text = this.input.value.trim();
    const model = this.model();
    if (!text || this.busy) return;
    if (!model) {
      this.announce(t("noModels"));
      return;
    }
    const agent = this.agentMode();
    let conversation = this.#conversation;
    const fresh = conversation === null;
    conversation ??= this.store.create(model);
    conversation.model = model;
    const mode = agent ? { mode: "agent" } : {};
    conversation.messages.push({ role: "user", content: text, ...mode });
    conversation.messages.push({ role: "assistant", content: "", ...mode, meta: { model } });
    this.store.autoTitle(conversation);
    this.input.value = "";
    this.#autosize();
    this.#conversation = conversation;
    this.store.touch(conversation);
    if (fresh) this.onOpen(conversation);
    this.#streaming = conversation.messages.length - 1;
    this.render();
    await this.#answer(this.#streaming, { fresh: false });
  }

  /** Ask again for the last answer, skipping the cache. */
  async retry() {
    const messages = this.#conversation?.messages ?? [];
    const last = messages.length - 1;
    if (this.busy || messages[last]?.role !== "assistant") return;
    const model = this.model() || messages[last].meta?.model;
    messages[last] = {
      role: "assistant",
      content: "",
      ...(messages[last].mode ? { mode: messages[last].mode } : {}),
      meta: { model },
    };
    this.#streaming = last;
    this.render();
    await this.#answer(last, { fresh: true });
  }

  stop() {
    this.#controller?.abort();
  }

  async #answer(index, { fresh }) {
    const conversation = this.#conversation;
    const message = conversation.messages[index];
    // The answer's element now: a redraw (a language switch) may have replaced it.
    const element = () => (this.#conversation === conversation ? (this.log.children[index] ?? null) : null);
    const controller = new AbortController();
    this.#controller = controller;
    this.#setBusy(true);
    this.announce(t("answering"));
    const started = performance.now();
    let first = null;
    let last = null;
    let frame = 0;
    const draw = () => {
      frame = 0;
      const article = element();
      if (!article) return;
      const stick = this.#nearEnd();
      this.#fill(article, message, { streaming: true });
      if (stick) this.#scrollToEnd();
    };
    const schedule = () => {
      frame ||= requestAnimationFrame(draw);
    };
    const options = { signal: controller.signal, fresh };
    try {
      if (message.mode === "agent") {
        const input = conversation.messages[index - 1].content;
        const response = await streamAgent(message.meta.model, input, options);
        for await (const event of ndjson(response.body)) {
          if (event.type === "step") {
            (message.meta.steps ??= []).push(event);
          } else if (event.type === "answer") {
            message.content = event.output ?? "";
            message.meta.steps = event.steps ?? message.meta.steps;
          }
          schedule();
        }
      } else {
        const history = conversation.messages
          .slice(0, index)
          .filter((item) => item.content)
          .map(({ role, content }) => ({ role, content }));
        const response = await streamChat(message.meta.model, history, options);
        message.meta.cache = response.headers.get("X-Cache");
        for await (const line of ndjson(response.body)) {
          const piece = line.message?.content ?? "";
          if (piece) {
            last = performance.now();
            if (first === null) {
              first = last;
              message.meta.ttftMs = first - started;
            }
            message.content += piece;
            schedule();
          }
          if (line.done) {
            message.meta.tokens = line.eval_count ?? null;
            message.meta.tokensPerSecond = tokensPerSecond(line, first, last);
          }
        }
      }
      this.announce(t("answerDone"));
    } catch (error) {
      if (error.name === "AbortError") {
        message.meta.stopped = true;
        this.announce(t("answerStopped"));
      } else {
        message.meta.error = describe(error);
        this.announce(t("errorPrefix", { message: message.meta.error }));
      }
    } finally {
      cancelAnimationFrame(frame);
      if (this.#controller === controller) {
        this.#controller = null;
        this.#streaming = -1;
        this.#setBusy(false);
      }
      this.store.touch(conversation);
      const article = element();
      if (article) {
        const stick = this.#nearEnd();
        this.#fill(article, message, { streaming: false });
        if (stick) this.#scrollToEnd();
      }
    }
  }

  #article(message, index) {
    const user = message.role === "user";
    const who = user ? t("you") : message.mode === "agent" ? t("agent") : t("assistant");
    const article = h(
      "article",
      { class: `message message-${user ? "user" : "assistant"}`, dataset: { index } },
      h("h2", { class: "visually-hidden" }, who),
    );
    if (user) {
      article.append(h("div", { class: "message-body message-text" }, message.content));
    } else {
      article.append(
        h("div", { class: "message-steps" }),
        h("div", { class: "message-body markdown" }),
        h("p", { class: "message-status" }),
        h("div", { class: "message-meta" }),
      );
      this.#fill(article, message, { streaming: index === this.#streaming });
    }
    return article;
  }

  /** Draw an answer's parts: tool steps, text, status, and (once done) stats and actions. */
  #fill(article, message, { streaming }) {
    const [, steps, body, status, meta] = article.children;
    const stepList = message.meta?.steps ?? [];
    if (steps.childElementCount !== stepList.length) steps.replaceChildren(...stepList.map(stepView));
    body.replaceChildren(renderMarkdown(message.content));
    if (streaming && !message.content) {
      body.append(h("span", { class: "typing", "aria-hidden": "true" }, h("span"), h("span"), h("span")));
    }
    const info = message.meta ?? {};
    status.className = info.error ? "message-status message-error" : "message-status";
    status.textContent = info.error
      ? t("errorPrefix", { message: info.error })
      : info.stopped
        ? t("stopped")
        : "";
    status.hidden = !status.textContent;
    article.setAttribute("aria-busy", String(streaming));
    if (streaming) {
      meta.replaceChildren();
      return;
    }
    const facts = [];
    if (info.cache === "HIT") {
      facts.push(h("span", { class: "badge badge-cache", title: t("cacheHitTitle") }, t("cacheHit")));
    }
    // A cached answer is replayed, not generated: its speed says nothing about the model.
    if (info.tokensPerSecond && info.cache !== "HIT") {
      facts.push(
        h(
          "span",
          { class: "stat stat-speed" },
          t("tokensPerSecond", { value: formatNumber(info.tokensPerSecond) }),
        ),
      );
    }
    if (info.ttftMs !== undefined && info.ttftMs !== null) {
      facts.push(
        h("span", { class: "stat stat-ttft" }, t("firstToken", { value: formatDuration(info.ttftMs) })),
      );
    }
    if (stepList.length) {
      facts.push(h("span", { class: "stat stat-steps" }, plural("steps", stepList.length)));
    }
    const messages = this.#conversation?.messages ?? [];
    const isLast = Number(article.dataset.index) === messages.length - 1;
    const actions = [];
    if (message.content) actions.push(actionButton("copy", t("copy")));
    if (isLast) actions.push(actionButton("retry", t("retry")));
    meta.replaceChildren(...facts, h("span", { class: "message-actions" }, actions));
  }

  async #onClick(event) {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const action = button.dataset.action;
    if (action === "retry") {
      this.retry();
      return;
    }
    let text;
    if (action === "copy") {
      const index = Number(button.closest("article").dataset.index);
      text = this.#conversation.messages[index].content;
    } else if (action === "copy-code") {
      text = button.closest(".code-block").querySelector("code").textContent;
    } else {
      return;
    }
    const label = button.querySelector("span") ?? button;
    const before = label.textContent;
    try {
      await copyText(text);
      label.textContent = t("copied");
    } catch {
      label.textContent = t("copyFailed");
    }
    this.announce(label.textContent);
    setTimeout(() => {
      label.textContent = before;
    }, 1500);
  }

  #setBusy(busy) {
    const hadFocus = document.activeElement === this.sendButton || document.activeElement === this.stopButton;
    this.sendButton.hidden = busy;
    this.stopButton.hidden = !busy;
    this.log.setAttribute("aria-busy", String(busy));
    if (hadFocus) (busy ? this.stopButton : this.input).focus();
  }

  #autosize() {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight, 240)}px`;
  }

  #nearEnd() {
    const { scrollHeight, scrollTop, clientHeight } = this.scroller;
    return scrollHeight - scrollTop - clientHeight < STICK_TO_END;
  }

  #scrollToEnd() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }
}
