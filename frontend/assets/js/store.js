// Conversations, kept in this browser's localStorage.
//
// A conversation: { id, title, titleSet, model, createdAt, updatedAt, messages: [message] }.
// A message: { role: "user" | "assistant", content, mode?: "agent", meta?: { ... } }, where an
// answer's meta holds its stats, cache status, agent steps, and `stopped` or `error`.

const KEY = "llamarada.conversations.v1";
const TITLE_LENGTH = 60;

/** Lowercase, without accents: "Canción" matches a search for "cancion". */
function fold(text) {
  return text
    .normalize("NFD")
    .replace(/\p{Diacritic}/gu, "")
    .toLowerCase();
}

function newId() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

export class ConversationStore extends EventTarget {
  constructor(storage = window.localStorage) {
    super();
    this.storage = storage;
    this.conversations = this.#load();
  }

  #load() {
    try {
      const data = JSON.parse(this.storage.getItem(KEY) ?? "[]");
      return Array.isArray(data) ? data.filter((item) => item && typeof item.id === "string") : [];
    } catch {
      return [];
    }
  }

  /** Write everything; tells listeners ("change"), or "error" when storage refuses. */
  save() {
    try {
      this.storage.setItem(KEY, JSON.stringify(this.conversations));
    } catch (error) {
      this.dispatchEvent(new CustomEvent("error", { detail: error }));
    }
    this.dispatchEvent(new Event("change"));
  }

  get(id) {
    return this.conversations.find((conversation) => conversation.id === id) ?? null;
  }

  /** Most recent first; with a query, those whose title or messages contain it. */
  list(query = "") {
    const wanted = fold(query.trim());
    const sorted = [...this.conversations].sort((a, b) => b.updatedAt - a.updatedAt);
    if (!wanted) return sorted;
    return sorted.filter(
      (conversation) =>
        fold(conversation.title).includes(wanted) ||
        conversation.messages.some((message) => fold(message.content).includes(wanted)),
    );
  }

  create(model) {
    const now = Date.now();
    const conversation = {
      id: newId(),
      title: "",
      titleSet: false,
      model,
      createdAt: now,
      updatedAt: now,
      messages: [],
    };
    this.conversations.push(conversation);
    return conversation;
  }

  /** Give a conversation its first user message as title, unless the user named it. */
  autoTitle(conversation) {
    if (conversation.titleSet || conversation.title) return;
    const first = conversation.messages.find((message) => message.role === "user");
    if (!first) return;
    const line = first.content.trim().split("\n")[0];
    conversation.title = line.length > TITLE_LENGTH ? `${line.slice(0, TITLE_LENGTH - 1)}…` : line;
  }

  rename(id, title) {
    const conversation = this.get(id);
    if (!conversation) return;
    conversation.title = title.trim();
    conversation.titleSet = Boolean(conversation.title);
    this.save();
  }

  remove(id) {
    this.conversations = this.conversations.filter((conversation) => conversation.id !== id);
    this.save();
  }

  touch(conversation) {
    conversation.updatedAt = Date.now();
    this.save();
  }
}
