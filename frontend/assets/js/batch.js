// Batch jobs: queue prompts (pasted one per line) or a JSONL file as a job, follow each job's
// progress while it runs, cancel it, read its results and download them as JSONL.
//
// Jobs that have not ended are polled while this page is on screen and the tab is visible;
// the list itself comes from the server, so it is the same after a reload.

import { ApiError, ndjson, request } from "./api.js";
import { openDialog } from "./dialog.js";
import { byId, h, saveFile } from "./dom.js";
import { formatNumber, language, plural, t } from "./i18n.js";
import { errorText } from "./kb-answer.js";

const JOBS = "api/batch/jobs";
const PAGE = 20; // jobs listed at once
const POLL_MS = 1000; // between two looks at running jobs
const SLOW_POLL_MS = 4000; // after a failed look, or two minutes after the last thing the user did
const FAST_FOR_MS = 120_000;
const SHOWN_RESULTS = 200; // result lines drawn on the page; the download has every one
const SHOWN_CHARS = 2000; // of one output
const FINAL = new Set(["completed", "failed", "cancelled"]);
const ACCEPT = ".jsonl,.ndjson,.txt,application/x-ndjson,application/jsonl";
const STATUS_KEYS = {
  queued: "statusQueued",
  running: "statusRunning",
  completed: "statusCompleted",
  failed: "statusFailed",
  cancelled: "statusCancelled",
  succeeded: "statusSucceeded",
};

function jobPath(id, rest = "") {
  return `${JOBS}/${encodeURIComponent(id)}${rest}`;
}

/** Whether a job is over: a final status, and every item's result written. */
function ended(job) {
  return FINAL.has(job.status) && Boolean(job.finished_at);
}

/** Whether a job can still be cancelled. */
function cancellable(job) {
  return job.status === "queued" || job.status === "running";
}

/** The id as people read it: `job_5f0c…` becomes `5f0c1a2b`. */
function shortId(id) {
  return String(id).replace(/^job_/, "").slice(0, 8);
}

function statusText(status) {
  return STATUS_KEYS[status] ? t(STATUS_KEYS[status]) : String(status);
}

function when(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime())
    ? String(iso ?? "")
    : new Intl.DateTimeFormat(language(), { dateStyle: "medium", timeStyle: "short" }).format(date);
}

function percentOf(job) {
  return Math.round(Math.min(Math.max(Number(job.progress) || 0, 0), 1) * 100);
}

function doneOf(job) {
  return job.counts.total - job.counts.pending;
}

/** "5 of 12 done · 4 succeeded · 1 failed": the counts that are not zero, succeeded always. */
function countsText(job) {
  const { total, succeeded, failed, cancelled } = job.counts;
  const parts = [
    t("jobDone", { done: formatNumber(doneOf(job), 0), total: formatNumber(total, 0) }),
    plural("succeeded", succeeded),
  ];
  if (failed) parts.push(plural("failedItems", failed));
  if (cancelled) parts.push(plural("cancelledItems", cancelled));
  return parts.join(" · ");
}

function clip(text) {
  const value = String(text ?? "");
  return value.length > SHOWN_CHARS ? `${value.slice(0, SHOWN_CHARS)}…` : value;
}

export class BatchView {
  #cards = new Map(); // job id -> { job, element, parts }
  #timer = 0;
  #polling = false;
  #fastUntil = 0;
  #visible = false;
  #draft = "";
  #mode = "paste";
  #model = "";

  /** `announce(text)` speaks through the page's status region. */
  constructor({ announce }) {
    this.announce = announce;
    this.root = byId("batch-view");
    this.jobs = [];
    this.hasMore = false;
    this.models = [];
    this.error = "";
    document.addEventListener("visibilitychange", () => {
      if (document.hidden) this.#stop();
      else if (this.#visible) this.#schedule(0);
    });
  }

  /** Whether the server has batch jobs at all (the routes answer). */
  async available() {
    try {
      await this.load();
      return true;
    } catch (error) {
      return !(error instanceof ApiError && error.status === 404);
    }
  }

  async load() {
    const response = await request(`${JOBS}?limit=${PAGE}`);
    const { jobs = [], has_more: hasMore = false } = await response.json();
    this.jobs = jobs;
    this.hasMore = hasMore;
  }

  /** The served models, knowledge bases (`kb:`) included: their items answer with sources. */
  setModels(names) {
    this.models = [...names];
    const select = document.getElementById("batch-model");
    if (select) this.#fillModels(select);
  }

  /** Come on screen: a fresh list, drawn, and the running jobs followed. */
  async show(preferredModel = "") {
    this.#visible = true;
    if (!this.#model) this.#model = preferredModel;
    this.#fastUntil = Date.now() + FAST_FOR_MS;
    try {
      await this.load();
      this.error = "";
    } catch (error) {
      this.error = errorText(error);
    }
    if (!this.#visible) return;
    this.render();
    this.#schedule();
  }

  /** Off screen: nothing polled until it shows again. */
  hide() {
    this.#visible = false;
    this.#stop();
  }

  render() {
    this.#cards.clear();
    this.list = h("ol", { class: "batch-jobs", id: "batch-jobs", "aria-labelledby": "batch-jobs-title" });
    this.more = h(
      "button",
      { type: "button", class: "button", hidden: !this.hasMore, onclick: () => this.#loadMore() },
      t("batchLoadMore"),
    );
    this.empty = h("p", { class: "hint batch-empty" }, t("batchNoJobs"));
    const jobs = h(
      "section",
      { class: "batch-list", "aria-labelledby": "batch-jobs-title" },
      h("h2", { id: "batch-jobs-title" }, t("batchJobs")),
      this.error ? h("p", { class: "message-error", role: "alert" }, this.error) : "",
      this.empty,
      this.list,
      this.more,
    );
    this.root.replaceChildren(h("div", { class: "batch" }, this.#form(), jobs));
    for (const job of this.jobs) this.list.append(this.#card(job));
    this.#updateEmpty();
  }

  // ---- a new job ----

  #form() {
    const paste = this.#mode === "paste";
    const prompts = h("textarea", {
      id: "batch-prompts",
      name: "prompts",
      rows: "8",
      required: true,
      spellcheck: "false",
      disabled: !paste,
      "aria-describedby": "batch-prompts-hint",
      oninput: (event) => {
        this.#draft = event.target.value;
        event.target.setCustomValidity("");
      },
    });
    prompts.value = this.#draft;
    const select = h("select", {
      id: "batch-model",
      name: "model",
      onchange: (event) => {
        this.#model = event.target.value;
      },
    });
    this.#fillModels(select);
    const choice = (value, key) =>
      h(
        "label",
        { class: "choice" },
        h("input", {
          type: "radio",
          name: "mode",
          value,
          checked: this.#mode === value,
          onchange: () => this.#setMode(value),
        }),
        h("span", {}, t(key)),
      );
    return h(
      "form",
      {
        class: "batch-section batch-form",
        id: "batch-form",
        "aria-labelledby": "batch-new-title",
        onsubmit: (event) => this.#submit(event),
      },
      h("h2", { id: "batch-new-title" }, t("batchNew")),
      h("div", { class: "field" }, h("label", { for: "batch-model" }, t("model")), select),
      h(
        "fieldset",
        { class: "choices" },
        h("legend", {}, t("batchInput")),
        choice("paste", "batchPaste"),
        choice("file", "batchUpload"),
      ),
      h(
        "div",
        { class: "field", id: "batch-paste", hidden: !paste },
        h("label", { for: "batch-prompts" }, t("batchPrompts")),
        prompts,
        h("p", { class: "hint", id: "batch-prompts-hint" }, t("batchPromptsHint")),
      ),
      h(
        "div",
        { class: "field", id: "batch-upload", hidden: paste },
        h("label", { for: "batch-file" }, t("batchFile")),
        h("input", {
          type: "file",
          id: "batch-file",
          name: "file",
          accept: ACCEPT,
          required: true,
          disabled: paste,
          "aria-describedby": "batch-file-hint",
        }),
        h("p", { class: "hint", id: "batch-file-hint" }, t("batchFileHint")),
      ),
      h(
        "div",
        { class: "row" },
        h("button", { type: "submit", class: "button button-primary", id: "batch-submit" }, t("batchStart")),
        h("span", { class: "hint", id: "batch-sending", role: "status" }),
      ),
      h("p", { class: "message-error", id: "batch-error", role: "alert", hidden: true }),
    );
  }

  #fillModels(select) {
    const options = this.models.length
      ? this.models.map((name) => h("option", { value: name }, name))
      : [h("option", { value: "" }, t("noModels"))];
    select.replaceChildren(...options);
    select.disabled = this.models.length === 0;
    if (this.models.includes(this.#model)) select.value = this.#model;
  }

  #setMode(mode) {
    this.#mode = mode;
    const paste = mode === "paste";
    byId("batch-paste").hidden = !paste;
    byId("batch-prompts").disabled = !paste;
    byId("batch-upload").hidden = paste;
    byId("batch-file").disabled = paste;
  }

  async #submit(event) {
    event.preventDefault();
    const form = event.target;
    const model = form.elements.model.value;
    const failure = byId("batch-error");
    failure.hidden = true;
    let path = JOBS;
    let body;
    let json = true;
    if (this.#mode === "paste") {
      const field = form.elements.prompts;
      const prompts = field.value.split(/\r?\n/).filter((line) => line.trim());
      if (!prompts.length) {
        field.setCustomValidity(t("batchNoPrompts"));
        field.reportValidity();
        return;
      }
      body = { model, prompts };
    } else {
      const [file] = form.elements.file.files;
      if (!file) {
        form.elements.file.reportValidity();
        return;
      }
      body = new FormData();
      body.append("file", file, file.name);
      path = `${JOBS}?model=${encodeURIComponent(model)}`;
      json = false;
    }
    const button = byId("batch-submit");
    const sending = byId("batch-sending");
    button.disabled = true;
    sending.textContent = t("batchSending");
    let job;
    try {
      job = await (await request(path, { method: "POST", body, json })).json();
    } catch (error) {
      failure.textContent = t("errorPrefix", { message: errorText(error) });
      failure.hidden = false;
      return;
    } finally {
      button.disabled = false;
      sending.textContent = "";
    }
    if (this.#mode === "paste") {
      this.#draft = "";
      form.elements.prompts.value = "";
    } else {
      form.elements.file.value = "";
    }
    this.jobs = [job, ...this.jobs.filter((other) => other.id !== job.id)];
    this.#cards.get(job.id)?.element.remove();
    const element = this.#card(job);
    this.list.prepend(element);
    this.#updateEmpty();
    // On a phone the list is below the form: bring the new job into view.
    const still = window.matchMedia("(prefers-reduced-motion: reduce)").matches;
    element.scrollIntoView({ block: "nearest", behavior: still ? "auto" : "smooth" });
    // A file whose every line is broken makes a job that has failed already.
    this.announce(
      ended(job)
        ? t("jobStatus", { id: shortId(job.id), status: statusText(job.status), counts: countsText(job) })
        : t("jobQueued", { id: shortId(job.id), items: plural("items", job.counts.total) }),
    );
    this.#fastUntil = Date.now() + FAST_FOR_MS;
    this.#schedule();
  }

  // ---- the list ----

  async #loadMore() {
    const last = this.jobs.at(-1);
    if (!last) return;
    let page;
    try {
      const response = await request(`${JOBS}?limit=${PAGE}&after=${encodeURIComponent(last.id)}`);
      page = await response.json();
    } catch (error) {
      this.announce(t("errorPrefix", { message: errorText(error) }));
      return;
    }
    const fresh = (page.jobs ?? []).filter((job) => !this.#cards.has(job.id));
    this.jobs.push(...fresh);
    this.hasMore = Boolean(page.has_more);
    this.more.hidden = !this.hasMore;
    for (const job of fresh) this.list.append(this.#card(job));
    this.#cards.get(fresh[0]?.id)?.title.focus();
    this.#schedule();
  }

  #updateEmpty() {
    this.empty.hidden = this.jobs.length > 0;
  }

  /** A job's entry: built once, then updated in place so focus and open results stay put. */
  #card(job) {
    const id = shortId(job.id);
    const titleId = `batch-job-${job.id}`;
    const resultsId = `batch-results-${job.id}`;
    const parts = {
      title: h("h3", { id: titleId, tabindex: "-1" }, t("jobTitle", { id })),
      status: h("span", { class: "badge batch-status" }),
      meta: h("p", { class: "hint batch-meta" }),
      fill: h("span", { class: "meter-fill" }),
      counts: h("p", { class: "batch-counts" }),
      cancel: h(
        "button",
        {
          type: "button",
          class: "button button-small button-quiet button-cancel",
          "aria-label": t("cancelJobNamed", { id }),
          onclick: () => this.#cancel(job.id),
        },
        t("cancelJob"),
      ),
      toggle: h(
        "button",
        {
          type: "button",
          class: "button button-small",
          "aria-expanded": "false",
          "aria-controls": resultsId,
          "aria-label": t("resultsNamed", { id }),
          onclick: () => this.#toggleResults(job.id),
        },
        t("results"),
      ),
      download: h(
        "button",
        {
          type: "button",
          class: "button button-small",
          "aria-label": t("downloadNamed", { id }),
          onclick: (event) => this.#download(job.id, event.currentTarget),
        },
        t("download"),
      ),
      results: h("div", { class: "batch-results", id: resultsId, hidden: true }),
      shownDone: -1,
      loading: 0,
    };
    parts.meter = h(
      "div",
      {
        class: "meter",
        role: "progressbar",
        "aria-label": t("jobProgress", { id }),
        "aria-valuemin": "0",
        "aria-valuemax": "100",
      },
      parts.fill,
    );
    const element = h(
      "li",
      { class: "batch-job batch-section", "aria-labelledby": titleId },
      h("div", { class: "batch-job-head" }, parts.title, parts.status, parts.meta),
      parts.meter,
      parts.counts,
      h("div", { class: "batch-actions" }, parts.toggle, parts.download, parts.cancel),
      parts.results,
    );
    const card = { job, element, ...parts };
    this.#cards.set(job.id, card);
    this.#draw(card);
    return element;
  }

  #draw(card) {
    const { job } = card;
    const percent = percentOf(job);
    card.element.dataset.status = job.status;
    card.status.textContent = statusText(job.status);
    card.meta.textContent = [plural("items", job.counts.total), job.model, when(job.created_at)]
      .filter(Boolean)
      .join(" · ");
    card.fill.style.width = `${percent}%`;
    card.meter.setAttribute("aria-valuenow", String(percent));
    card.meter.setAttribute(
      "aria-valuetext",
      t("jobProgressText", {
        percent: formatNumber(percent, 0),
        done: formatNumber(doneOf(job), 0),
        total: formatNumber(job.counts.total, 0),
      }),
    );
    card.counts.textContent = countsText(job);
    if (!cancellable(job) && card.cancel.contains(document.activeElement)) card.title.focus();
    card.cancel.hidden = !cancellable(job);
    card.download.disabled = doneOf(job) === 0;
  }

  /** A fresher copy of a job: drawn, announced when it ended or was cancelled, results kept current. */
  #apply(job) {
    const card = this.#cards.get(job.id);
    if (!card) return;
    const before = card.job;
    card.job = job;
    this.jobs = this.jobs.map((other) => (other.id === job.id ? job : other));
    this.#draw(card);
    // Queued to running is left unsaid: the words come when there is something to act on.
    if (before.status !== job.status && FINAL.has(job.status)) {
      this.announce(
        t("jobStatus", { id: shortId(job.id), status: statusText(job.status), counts: countsText(job) }),
      );
    }
    if (!card.results.hidden && card.shownDone !== doneOf(job)) this.#loadResults(card);
  }

  // ---- following running jobs ----

  #stop() {
    clearTimeout(this.#timer);
    this.#timer = 0;
  }

  #schedule(delay = Date.now() < this.#fastUntil ? POLL_MS : SLOW_POLL_MS) {
    this.#stop();
    if (!this.#visible || document.hidden || this.#polling) return;
    if (!this.jobs.some((job) => !ended(job))) return;
    this.#timer = setTimeout(() => this.#poll(), delay);
  }

  async #poll() {
    this.#timer = 0;
    this.#polling = true;
    let failed = false;
    try {
      const running = this.jobs.filter((job) => !ended(job));
      await Promise.all(
        running.map(async (job) => {
          try {
            this.#apply(await (await request(jobPath(job.id))).json());
          } catch (error) {
            if (error instanceof ApiError && error.status === 404) this.#forget(job.id);
            else failed = true;
          }
        }),
      );
    } finally {
      this.#polling = false;
    }
    this.#schedule(failed ? SLOW_POLL_MS : undefined);
  }

  /** A job the server no longer has (its retention ended). */
  #forget(id) {
    this.#cards.get(id)?.element.remove();
    this.#cards.delete(id);
    this.jobs = this.jobs.filter((job) => job.id !== id);
    this.#updateEmpty();
    this.announce(t("jobGone", { id: shortId(id) }));
  }

  // ---- cancel, results, download ----

  async #cancel(id) {
    const confirmed = await openDialog({
      title: t("cancelJobTitle"),
      body: [h("p", {}, t("cancelJobBody", { id: shortId(id) }))],
      confirm: t("cancelJob"),
      dismiss: t("keepRunning"),
      danger: true,
    });
    if (!confirmed) return;
    try {
      this.#apply(await (await request(jobPath(id), { method: "DELETE" })).json());
    } catch (error) {
      this.announce(t("errorPrefix", { message: errorText(error) }));
      // 409: it ended meanwhile; the next look shows how.
      if (error instanceof ApiError && error.status === 409) this.#schedule(0);
      return;
    }
    this.#schedule();
  }

  #toggleResults(id) {
    const card = this.#cards.get(id);
    const open = card.results.hidden;
    card.results.hidden = !open;
    card.toggle.setAttribute("aria-expanded", String(open));
    if (open) this.#loadResults(card);
  }

  async #loadResults(card) {
    const token = ++card.loading;
    const done = doneOf(card.job);
    if (card.shownDone < 0) card.results.replaceChildren(h("p", { class: "hint" }, t("loading")));
    const lines = [];
    try {
      const response = await request(jobPath(card.job.id, "/results"));
      for await (const line of ndjson(response.body)) {
        lines.push(line);
        if (lines.length >= SHOWN_RESULTS) break;
      }
    } catch (error) {
      if (token !== card.loading) return;
      card.results.replaceChildren(
        h("p", { class: "message-error" }, t("errorPrefix", { message: errorText(error) })),
      );
      return;
    }
    if (token !== card.loading) return;
    card.shownDone = done;
    card.results.replaceChildren(...this.#resultsList(lines, done));
  }

  /** The results as a numbered list: number, custom_id, status, then the output or the error. */
  #resultsList(lines, done) {
    if (!lines.length) return [h("p", { class: "hint" }, t("resultsEmpty"))];
    const withIds = lines.some((line) => line.custom_id);
    const items = lines.map((line) => {
      const status = String(line.status);
      const text =
        status === "succeeded"
          ? h("div", { class: "batch-output" }, clip(line.output))
          : h("div", { class: "batch-item-error" }, clip(line.error?.message ?? line.error?.type ?? ""));
      return h(
        "li",
        { class: "batch-item", dataset: { status } },
        h("span", { class: "batch-item-n" }, t("resultNumber", { n: formatNumber(Number(line.index) + 1, 0) })),
        withIds ? h("span", { class: "batch-custom-id" }, line.custom_id ?? "") : "",
        h("span", { class: "badge batch-status", dataset: { status } }, statusText(status)),
        text,
      );
    });
    const list = h(
      "ol",
      { class: withIds ? "batch-items with-ids" : "batch-items", "aria-label": t("results") },
      items,
    );
    const note =
      done > lines.length
        ? h(
            "p",
            { class: "hint" },
            t("resultsTruncated", { shown: formatNumber(lines.length, 0), total: formatNumber(done, 0) }),
          )
        : "";
    return [list, note];
  }

  async #download(id, button) {
    button.disabled = true;
    try {
      const response = await request(jobPath(id, "/results"));
      const blob = await response.blob();
      saveFile(new Blob([blob], { type: "application/x-ndjson" }), `${id}.results.jsonl`);
      this.announce(t("downloaded", { id: shortId(id) }));
    } catch (error) {
      this.announce(t("errorPrefix", { message: errorText(error) }));
    } finally {
      const card = this.#cards.get(id);
      button.disabled = card ? doneOf(card.job) === 0 : false;
    }
  }
}
