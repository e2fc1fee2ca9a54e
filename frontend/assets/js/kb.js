// Knowledge bases: create and delete them, upload documents with progress, list and delete
// documents, and ask questions (kb-answer.js draws the cited answers).

import { ApiError, request, uploadDocuments } from "./api.js";
import { openDialog } from "./dialog.js";
import { byId, h } from "./dom.js";
import { formatNumber, language, plural, t } from "./i18n.js";
import { askCollection, errorText } from "./kb-answer.js";

const NAME_PATTERN = "[A-Za-z0-9][A-Za-z0-9._\\-]{1,510}[A-Za-z0-9]";
const ACCEPT = ".txt,.md,.markdown,.html,.htm,.pdf,.docx";

// generative: the chat model writes the answer; extractive: the sources' best sentences, quoted.
const ANSWER_MODES = ["generative", "extractive"];

function collectionPath(name, rest = "") {
  return `api/rag/collections/${encodeURIComponent(name)}${rest}`;
}

function size(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${formatNumber(bytes / 1024)} KB`;
  return `${formatNumber(bytes / 1024 / 1024)} MB`;
}

function day(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime())
    ? iso
    : new Intl.DateTimeFormat(language(), { dateStyle: "medium" }).format(date);
}

export class KnowledgeView {
  #selected = null;
  #asking = null;
  #answerMode = "generative";

  /**
   * `announce(text)` speaks; `model()` is the chat's model (used unless it is a kb: one);
   * `onCollectionsChange()` runs when one is created or deleted (the kb: models change).
   */
  constructor({ announce, model, onCollectionsChange }) {
    this.announce = announce;
    this.model = model;
    this.onCollectionsChange = onCollectionsChange;
    this.root = byId("kb-view");
    this.collections = [];
  }

  /** Whether the server has knowledge bases at all (the routes answer). */
  async available() {
    try {
      await this.load();
      return true;
    } catch (error) {
      return !(error instanceof ApiError && error.status === 404);
    }
  }

  async load() {
    const response = await request("api/rag/collections");
    this.collections = (await response.json()).collections ?? [];
    if (this.#selected && !this.collections.some((c) => c.name === this.#selected)) this.#selected = null;
  }

  async show() {
    try {
      await this.load();
      this.error = "";
    } catch (error) {
      this.error = errorText(error);
    }
    this.render();
  }

  render() {
    this.side = h("div", { class: "kb-side" });
    this.detail = h("div", { class: "kb-detail", id: "kb-detail" });
    this.root.replaceChildren(h("div", { class: "kb" }, this.side, this.detail));
    this.#renderSide();
    this.#renderDetail();
  }

  #renderSide() {
    const create = h(
      "form",
      { class: "kb-create", onsubmit: (event) => this.#create(event) },
      h("label", { for: "kb-name" }, t("kbNew")),
      h(
        "div",
        { class: "row" },
        h("input", {
          id: "kb-name",
          name: "name",
          required: true,
          pattern: NAME_PATTERN,
          maxlength: "512",
          autocomplete: "off",
          "aria-describedby": "kb-name-hint",
        }),
        h("button", { type: "submit", class: "button button-primary" }, t("create")),
      ),
      h("p", { class: "hint", id: "kb-name-hint" }, t("kbNameHint")),
    );
    const list = h(
      "ul",
      { class: "kb-collections", "aria-label": t("kbView") },
      this.collections.map((collection) =>
        h(
          "li",
          {},
          h(
            "button",
            {
              type: "button",
              class: "kb-collection",
              "aria-current": collection.name === this.#selected ? "true" : null,
              onclick: () => this.#select(collection.name),
            },
            h("span", { class: "kb-collection-name" }, collection.name),
            h("span", { class: "kb-collection-counts" }, this.#counts(collection)),
          ),
        ),
      ),
    );
    this.side.replaceChildren(
      create,
      this.error ? h("p", { class: "message-error", role: "alert" }, this.error) : "",
      this.collections.length ? list : h("p", { class: "hint" }, t("kbEmpty")),
    );
  }

  #counts(collection) {
    return `${plural("documents", collection.documents)} · ${plural("passages", collection.chunks)}`;
  }

  /** After documents change: fresh counts and document list, the rest left as it is. */
  async #refresh(name) {
    await this.load();
    this.#renderSide();
    const collection = this.collections.find((c) => c.name === name);
    const counts = document.getElementById("kb-counts");
    if (collection && counts) counts.textContent = this.#counts(collection);
    await this.#loadDocuments(name);
  }

  async #create(event) {
    event.preventDefault();
    const input = event.target.elements.name;
    const name = input.value.trim();
    try {
      await request("api/rag/collections", { method: "POST", body: { name } });
    } catch (error) {
      this.announce(errorText(error));
      input.setCustomValidity(errorText(error));
      input.reportValidity();
      input.addEventListener("input", () => input.setCustomValidity(""), { once: true });
      return;
    }
    this.#selected = name;
    await this.show();
    this.onCollectionsChange();
    this.announce(t("kbCreated", { name }));
    byId("kb-files").focus();
  }

  #select(name) {
    this.#selected = name;
    this.#asking?.abort();
    this.render();
    byId("kb-detail").querySelector("h2").focus();
  }

  #renderDetail() {
    const detail = byId("kb-detail");
    const collection = this.collections.find((c) => c.name === this.#selected);
    if (!collection) {
      detail.replaceChildren(h("p", { class: "kb-pick" }, t(this.collections.length ? "kbPick" : "kbStart")));
      return;
    }
    const header = h(
      "div",
      { class: "kb-head" },
      h("h2", { tabindex: "-1" }, collection.name),
      h("span", { class: "hint", id: "kb-counts" }, this.#counts(collection)),
      h(
        "button",
        {
          type: "button",
          class: "button button-quiet",
          onclick: () => this.#deleteCollection(collection.name),
        },
        t("kbDelete"),
      ),
    );
    const upload = h(
      "section",
      { class: "kb-section", "aria-labelledby": "kb-upload-title" },
      h("h3", { id: "kb-upload-title" }, t("addDocuments")),
      h(
        "form",
        { class: "row", onsubmit: (event) => this.#upload(event, collection.name) },
        h("label", { for: "kb-files", class: "visually-hidden" }, t("chooseFiles")),
        h("input", {
          type: "file",
          id: "kb-files",
          name: "files",
          multiple: true,
          required: true,
          accept: ACCEPT,
          "aria-describedby": "kb-files-hint",
        }),
        h("button", { type: "submit", class: "button button-primary" }, t("upload")),
      ),
      h("p", { class: "hint", id: "kb-files-hint" }, t("uploadHint")),
      h("progress", {
        id: "kb-progress",
        max: "100",
        value: "0",
        hidden: true,
        "aria-label": t("uploadProgress"),
      }),
      h("p", { id: "kb-progress-text", class: "hint", role: "status" }),
    );
    const documents = h(
      "section",
      { class: "kb-section", "aria-labelledby": "kb-documents-title" },
      h("h3", { id: "kb-documents-title" }, t("documents")),
      h("div", { id: "kb-documents" }, h("p", { class: "hint" }, t("loading"))),
    );
    const ask = h(
      "section",
      { class: "kb-section", "aria-labelledby": "kb-ask-title" },
      h("h3", { id: "kb-ask-title" }, t("ask")),
      h(
        "form",
        { class: "row", onsubmit: (event) => this.#ask(event, collection.name) },
        h("label", { for: "kb-question", class: "visually-hidden" }, t("questionLabel")),
        h("input", {
          type: "text",
          id: "kb-question",
          name: "question",
          required: true,
          maxlength: "4000",
          autocomplete: "off",
          placeholder: t("questionPlaceholder"),
        }),
        h("label", { for: "kb-answer-mode", class: "visually-hidden" }, t("answerModeLabel")),
        h(
          "select",
          {
            id: "kb-answer-mode",
            name: "answerMode",
            onchange: (event) => {
              this.#answerMode = event.target.value;
            },
          },
          ...ANSWER_MODES.map((mode) =>
            h(
              "option",
              { value: mode, selected: mode === this.#answerMode },
              t(`answerMode_${mode}`),
            ),
          ),
        ),
        h("button", { type: "submit", class: "button button-primary" }, t("askButton")),
      ),
      h("div", { id: "kb-answer", class: "kb-answer", "aria-live": "polite" }),
    );
    detail.replaceChildren(header, upload, documents, ask);
    this.#loadDocuments(collection.name);
  }

  async #loadDocuments(name) {
    let documents;
    try {
      const response = await request(collectionPath(name, "/documents"));
      documents = (await response.json()).documents ?? [];
    } catch (error) {
      byId("kb-documents").replaceChildren(h("p", { class: "message-error" }, errorText(error)));
      return;
    }
    const place = document.getElementById("kb-documents");
    if (!place || this.#selected !== name) return;
    if (!documents.length) {
      place.replaceChildren(h("p", { class: "hint" }, t("noDocuments")));
      return;
    }
    const head = h(
      "tr",
      {},
      ["docSource", "docType", "docChunks", "docSize", "docAdded"].map((key) =>
        h("th", { scope: "col" }, t(key)),
      ),
      h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, t("actions"))),
    );
    const rows = documents.map((doc) =>
      h(
        "tr",
        {},
        h("th", { scope: "row", class: "kb-doc-source" }, doc.source),
        h("td", {}, doc.type),
        h("td", { class: "align-right" }, String(doc.chunks)),
        h("td", { class: "align-right" }, size(doc.bytes)),
        h("td", {}, day(doc.created_at)),
        h(
          "td",
          {},
          h(
            "button",
            {
              type: "button",
              class: "button button-small button-quiet",
              "aria-label": t("deleteDocument", { source: doc.source }),
              onclick: () => this.#deleteDocument(name, doc),
            },
            t("delete"),
          ),
        ),
      ),
    );
    place.replaceChildren(
      h(
        "div",
        { class: "table-wrap" },
        h("table", { class: "kb-documents" }, h("thead", {}, head), h("tbody", {}, rows)),
      ),
    );
  }

  async #upload(event, name) {
    event.preventDefault();
    const form = event.target;
    const files = [...form.elements.files.files];
    if (!files.length) return;
    const bar = byId("kb-progress");
    const status = byId("kb-progress-text");
    const button = form.querySelector("button");
    bar.hidden = false;
    bar.value = 0;
    button.disabled = true;
    const show = (percent, text) => {
      bar.value = percent;
      status.textContent = text;
    };
    try {
      const result = await uploadDocuments(collectionPath(name, "/documents?stream=true"), files, {
        // Sending is the first half of the bar, indexing the second.
        onUpload: (loaded, total) => {
          const percent = total ? (loaded / total) * 100 : 0;
          show(percent / 2, t("uploading", { percent: Math.round(percent) }));
        },
        onEvent: (progress) => {
          if (progress.event === "embedding" && progress.total) {
            const percent = 50 + (progress.done / progress.total) * 50;
            show(percent, t("indexing", { file: progress.file, done: progress.done, total: progress.total }));
          } else if (progress.event === "parsed") {
            show(Math.max(bar.value, 50), t("parsed", { file: progress.file }));
          }
        },
      });
      const added = result.documents.filter((doc) => doc.status !== "duplicate").length;
      const duplicates = result.documents.length - added;
      const documents = plural("documents", added);
      show(
        100,
        duplicates
          ? t("uploadedWithDuplicates", { documents, duplicates: plural("documents", duplicates) })
          : t("uploaded", { documents }),
      );
      form.reset();
      await this.#refresh(name);
    } catch (error) {
      status.textContent = t("errorPrefix", { message: errorText(error) });
      bar.hidden = true;
    } finally {
      button.disabled = false;
    }
  }

  async #ask(event, name) {
    event.preventDefault();
    const question = event.target.elements.question.value.trim();
    if (!question) return;
    this.#asking?.abort();
    const controller = new AbortController();
    this.#asking = controller;
    const chatModel = this.model();
    const model = chatModel && !chatModel.startsWith("kb:") ? chatModel : null;
    try {
      await askCollection(byId("kb-answer"), {
        collection: name,
        question,
        model,
        answerMode: event.target.elements.answerMode.value,
        signal: controller.signal,
        announce: this.announce,
      });
    } finally {
      if (this.#asking === controller) this.#asking = null;
    }
  }

  async #deleteCollection(name) {
    const confirmed = await openDialog({
      title: t("kbDeleteTitle"),
      body: [h("p", {}, t("kbDeleteBody", { name }))],
      confirm: t("delete"),
      danger: true,
    });
    if (!confirmed) return;
    try {
      await request(collectionPath(name), { method: "DELETE" });
    } catch (error) {
      this.announce(errorText(error));
      return;
    }
    this.#selected = null;
    await this.show();
    this.onCollectionsChange();
    this.announce(t("kbDeleted", { name }));
    byId("kb-name").focus();
  }

  async #deleteDocument(name, doc) {
    const confirmed = await openDialog({
      title: t("docDeleteTitle"),
      body: [h("p", {}, t("docDeleteBody", { source: doc.source }))],
      confirm: t("delete"),
      danger: true,
    });
    if (!confirmed) return;
    try {
      await request(collectionPath(name, `/documents/${encodeURIComponent(doc.id)}`), { method: "DELETE" });
    } catch (error) {
      this.announce(errorText(error));
      return;
    }
    await this.#refresh(name);
    this.announce(t("docDeleted", { source: doc.source }));
    byId("kb-files").focus();
  }
}
