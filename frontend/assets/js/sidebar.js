// The list of conversations: search, open, rename, delete.

import { openDialog } from "./dialog.js";
import { byId, h } from "./dom.js";
import { language, t } from "./i18n.js";
import { icon } from "./icons.js";

function when(timestamp) {
  const date = new Date(timestamp);
  const today = new Date().toDateString() === date.toDateString();
  return new Intl.DateTimeFormat(language(), today ? { timeStyle: "short" } : { dateStyle: "medium" }).format(
    date,
  );
}

export class Sidebar {
  /** `onOpen(conversation)` shows one; `current()` is the conversation on screen. */
  constructor({ store, onOpen, onDelete, current }) {
    Object.assign(this, { store, onOpen, onDelete, current });
    this.list = byId("conversations");
    this.search = byId("search");
    this.emptyNote = byId("conversations-empty");
    this.search.addEventListener("input", () => this.render());
    this.search.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.search.value) {
        event.stopPropagation();
        this.search.value = "";
        this.render();
      }
    });
    store.addEventListener("change", () => this.render());
  }

  render() {
    const query = this.search.value;
    const conversations = this.store.list(query);
    const currentId = this.current()?.id;
    this.list.replaceChildren(
      ...conversations.map((conversation) => this.#item(conversation, conversation.id === currentId)),
    );
    this.emptyNote.hidden = conversations.length > 0;
    this.emptyNote.textContent = query.trim()
      ? t("noMatches", { query: query.trim() })
      : t("noConversations");
  }

  #item(conversation, selected) {
    const title = conversation.title || t("untitled");
    return h(
      "li",
      { class: "conversation", dataset: { id: conversation.id } },
      h(
        "button",
        {
          type: "button",
          class: "conversation-open",
          "aria-current": selected ? "true" : null,
          onclick: () => this.onOpen(conversation),
        },
        h("span", { class: "conversation-title" }, title),
        h("span", { class: "conversation-when" }, when(conversation.updatedAt)),
      ),
      h(
        "button",
        {
          type: "button",
          class: "button icon-button button-quiet",
          "aria-label": `${t("rename")}: ${title}`,
          title: t("rename"),
          dataset: { action: "rename" },
          onclick: () => this.rename(conversation),
        },
        icon("pencil"),
      ),
      h(
        "button",
        {
          type: "button",
          class: "button icon-button button-quiet",
          "aria-label": `${t("delete")}: ${title}`,
          title: t("delete"),
          dataset: { action: "delete" },
          onclick: () => this.remove(conversation),
        },
        icon("trash"),
      ),
    );
  }

  async rename(conversation) {
    const input = h("input", { type: "text", id: "rename-input", maxlength: "120", autocomplete: "off" });
    input.value = conversation.title;
    const label = h("label", { for: "rename-input" }, t("titleLabel"));
    const confirmed = await openDialog({
      title: t("renameTitle"),
      body: [label, input],
      confirm: t("save"),
      focus: input,
    });
    if (confirmed) this.store.rename(conversation.id, input.value);
  }

  async remove(conversation) {
    const body = [h("p", {}, t("deleteBody", { title: conversation.title || t("untitled") }))];
    const confirmed = await openDialog({ title: t("deleteTitle"), body, confirm: t("delete"), danger: true });
    if (!confirmed) return;
    this.store.remove(conversation.id);
    this.onDelete(conversation);
  }
}
