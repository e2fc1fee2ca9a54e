// A question to a knowledge base: the answer streams in as Markdown, each `[n]` it cites
// becomes a button that opens passage n in the numbered list of sources below it.

import { ApiError, ndjson, request } from "./api.js";
import { h } from "./dom.js";
import { formatNumber, t } from "./i18n.js";
import { renderMarkdown } from "./markdown.js";

const CITATION = /\[(\d{1,2})\]/g;

/** The words for a failed request. */
export function errorText(error) {
  if (error instanceof ApiError && error.status === 401) return t("unauthorized");
  if (error instanceof ApiError && error.status === 0) return t("networkError");
  return error.message;
}

/** Turn each `[n]` of the text under `root` (outside code and links) into a button for source n. */
function linkCitations(root, count, open) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const nodes = [];
  while (walker.nextNode()) {
    if (!walker.currentNode.parentElement.closest("code, pre, a")) nodes.push(walker.currentNode);
  }
  for (const node of nodes) {
    const text = node.textContent;
    const parts = [];
    let last = 0;
    for (const match of text.matchAll(CITATION)) {
      const n = Number(match[1]);
      if (n < 1 || n > count) continue;
      parts.push(text.slice(last, match.index));
      parts.push(
        h(
          "button",
          { type: "button", class: "citation", "aria-label": t("citation", { n }), onclick: () => open(n) },
          `[${n}]`,
        ),
      );
      last = match.index + match[0].length;
    }
    if (parts.length) node.replaceWith(...parts, text.slice(last));
  }
}

function sourceView(source) {
  const where = [source.source];
  if (source.page !== null && source.page !== undefined) where.push(t("page", { n: source.page }));
  if (source.heading) where.push(source.heading);
  return h(
    "li",
    {},
    h(
      "details",
      { id: `kb-source-${source.n}`, class: "kb-source" },
      h(
        "summary",
        {},
        h("span", { class: "kb-source-n" }, `[${source.n}]`),
        " ",
        where.join(" · "),
        h("span", { class: "hint" }, ` · ${t("score", { value: formatNumber(source.score, 2) })}`),
      ),
      h("blockquote", {}, source.snippet),
    ),
  );
}

/** Ask `collection` (`POST /api/rag/query`, streamed) and draw the answer into `place`. */
export async function askCollection(
  place,
  { collection, question, model, answerMode, signal, announce },
) {
  const body = h(
    "div",
    { class: "markdown kb-answer-text", "aria-busy": "true" },
    h("span", { class: "typing", "aria-hidden": "true" }, h("span"), h("span"), h("span")),
  );
  const sources = h("ol", { class: "kb-sources", "aria-label": t("sources") });
  place.replaceChildren(body, sources);
  let text = "";
  let count = 0;
  const open = (n) => {
    const item = document.getElementById(`kb-source-${n}`);
    if (!item) return;
    item.open = true;
    item.querySelector("summary").focus();
  };
  const draw = () => {
    body.replaceChildren(renderMarkdown(text));
    linkCitations(body, count, open);
  };
  const payload = {
    collection,
    question,
    stream: true,
    answer_mode: answerMode ?? "generative",
    ...(model && answerMode !== "extractive" ? { model } : {}),
  };
  try {
    const response = await request("api/rag/query", { method: "POST", body: payload, signal });
    for await (const item of ndjson(response.body)) {
      if (item.event === "sources") {
        count = item.found ? item.sources.length : 0;
        sources.replaceChildren(...(item.found ? item.sources.map(sourceView) : []));
      } else if (item.event === "token") {
        text += item.content;
        draw();
      } else if (item.event === "done") {
        text = item.answer ?? text;
        draw();
      }
    }
    announce(t("answerDone"));
  } catch (error) {
    if (error.name === "AbortError") return;
    const message = t("errorPrefix", { message: errorText(error) });
    body.append(h("p", { class: "message-error" }, message));
    announce(message);
  } finally {
    body.setAttribute("aria-busy", "false");
  }
}
