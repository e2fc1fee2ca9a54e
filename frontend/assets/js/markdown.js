// A Markdown subset rendered straight to DOM nodes, for model output, which is untrusted.
//
// Nothing here parses HTML: the text only ever becomes text nodes inside a fixed set of
// elements this module creates (p, br, h3-h6, ul/ol/li, blockquote, hr, pre/code, table,
// strong, em, del, a). The one attribute taken from the text is a link's href, and only for
// http(s) and mailto URLs; anything else (javascript:, data:, relative) stays plain text.
// Images are never loaded: they become links the reader may choose to follow.
//
// Supported: paragraphs, line breaks, ATX headings, fenced code blocks (open ones too, as
// they stream), bullet and numbered lists (nested), block quotes, rules, pipe tables, and
// inline code, bold, italics, strikethrough, links and bare URLs. Input is bounded in nesting
// and every scan is linear, so no text can make rendering slow.

import { h } from "./dom.js";
import { t } from "./i18n.js";

const SAFE_PROTOCOLS = new Set(["http:", "https:", "mailto:"]);
const MAX_BLOCK_DEPTH = 8; // quotes and lists inside each other
const MAX_INLINE_DEPTH = 8; // emphasis inside emphasis
const MAX_LABEL = 300; // characters in a link's text
const MAX_URL = 2048;
const PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

const FENCE = /^ {0,3}(`{3,}|~{3,})[ \t]*([^`\s]*)/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const LIST_ITEM = /^( {0,3})([-*+]|\d{1,9}[.)])(?:[ \t]+(.*)|$)/;
const TABLE_DIVIDER = /^ {0,3}\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$/;
const LANGUAGE = /^[\w+#.-]{1,24}$/;
const WORD = /[\p{L}\p{N}]/u;
const BARE_URL = /https?:\/\/[^\s<>"'`]+/y;
const AUTOLINK = /<((?:https?:\/\/|mailto:)[^\s<>]+)>/y;

/** The href for a URL if it is safe to link to (http, https, mailto), else null. */
export function safeUrl(raw) {
  let url;
  try {
    url = new URL(raw.trim());
  } catch {
    return null; // relative or malformed
  }
  return SAFE_PROTOCOLS.has(url.protocol) ? url.href : null;
}

/** Markdown text as a fragment of DOM nodes. */
export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  renderBlocks(String(text).replace(/\r\n?/g, "\n").split("\n"), fragment, 0);
  return fragment;
}

function leadingSpaces(line) {
  return line.length - line.trimStart().length;
}

function startsBlock(line) {
  return (
    FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || LIST_ITEM.test(line)
  );
}

function renderBlocks(lines, parent, depth) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (!line.trim()) {
      i += 1;
      continue;
    }
    let match;
    if ((match = FENCE.exec(line))) {
      i = codeBlock(lines, i, match, parent);
    } else if ((match = HEADING.exec(line))) {
      const heading = h(`h${Math.min(match[1].length + 2, 6)}`);
      renderInline(match[2] ?? "", heading);
      parent.append(heading);
      i += 1;
    } else if (RULE.test(line)) {
      parent.append(h("hr"));
      i += 1;
    } else if (QUOTE.test(line) && depth < MAX_BLOCK_DEPTH) {
      const inner = [];
      while (i < lines.length && (match = QUOTE.exec(lines[i]))) {
        inner.push(match[1]);
        i += 1;
      }
      const quote = h("blockquote");
      renderBlocks(inner, quote, depth + 1);
      parent.append(quote);
    } else if (LIST_ITEM.test(line) && depth < MAX_BLOCK_DEPTH) {
      i = list(lines, i, parent, depth);
    } else if (line.includes("|") && TABLE_DIVIDER.test(lines[i + 1] ?? "") && lines[i + 1].includes("-")) {
      i = table(lines, i, parent);
    } else {
      const paragraph = [line.trim()];
      i += 1;
      while (i < lines.length && lines[i].trim() && !startsBlock(lines[i])) {
        paragraph.push(lines[i].trim());
        i += 1;
      }
      const element = h("p");
      renderInline(paragraph.join("\n"), element);
      parent.append(element);
    }
  }
}

function codeBlock(lines, start, match, parent) {
  const [, fence, info] = match;
  const body = [];
  let i = start + 1;
  const closing = new RegExp(`^ {0,3}${fence[0] === "`" ? "`" : "~"}{${fence.length},}[ \\t]*$`);
  while (i < lines.length && !closing.test(lines[i])) {
    body.push(lines[i]);
    i += 1;
  }
  const language = LANGUAGE.test(info) ? info : "";
  parent.append(
    h(
      "div",
      { class: "code-block" },
      h(
        "div",
        { class: "code-head" },
        h("span", { class: "code-language" }, language || "text"),
        h(
          "button",
          {
            type: "button",
            class: "button button-small",
            dataset: { action: "copy-code", i18n: "copyCode" },
          },
          t("copyCode"),
        ),
      ),
      h(
        "pre",
        { tabindex: "0" },
        h("code", { class: language ? `language-${language}` : null }, body.join("\n")),
      ),
    ),
  );
  return i + 1; // past the closing fence (or the end, while it streams)
}

function list(lines, start, parent, depth) {
  const first = LIST_ITEM.exec(lines[start]);
  const ordered = /\d/.test(first[2]);
  const element = h(ordered ? "ol" : "ul");
  if (ordered && Number.parseInt(first[2], 10) !== 1) element.start = Number.parseInt(first[2], 10);
  let i = start;
  let match;
  while (i < lines.length && (match = LIST_ITEM.exec(lines[i])) && /\d/.test(match[2]) === ordered) {
    const indent = match[1].length;
    const item = [match[3] ?? ""];
    i += 1;
    while (i < lines.length) {
      const next = lines[i];
      if (!next.trim()) {
        // A blank line continues the item only if an indented line follows it.
        let j = i;
        while (j < lines.length && !lines[j].trim()) j += 1;
        if (j >= lines.length || leadingSpaces(lines[j]) <= indent) break;
        item.push(...lines.slice(i, j).map(() => ""));
        i = j;
      } else if (leadingSpaces(next) > indent) {
        item.push(next.slice(Math.min(leadingSpaces(next), indent + (match[2].length + 1))));
        i += 1;
      } else if (startsBlock(next)) {
        break;
      } else {
        item.push(next.trim()); // a lazy continuation of the item's text
        i += 1;
      }
    }
    const entry = h("li");
    renderBlocks(item, entry, depth + 1);
    element.append(entry);
    // Blank lines between items keep the list going.
    let j = i;
    while (j < lines.length && !lines[j].trim()) j += 1;
    if (j > i && j < lines.length && LIST_ITEM.test(lines[j])) i = j;
  }
  parent.append(element);
  return i;
}

function splitRow(line) {
  let row = line.trim();
  if (row.startsWith("|")) row = row.slice(1);
  if (row.endsWith("|") && !row.endsWith("\\|")) row = row.slice(0, -1);
  const cells = [];
  let cell = "";
  for (let i = 0; i < row.length; i += 1) {
    if (row[i] === "\\" && row[i + 1] === "|") {
      cell += "|";
      i += 1;
    } else if (row[i] === "|") {
      cells.push(cell.trim());
      cell = "";
    } else {
      cell += row[i];
    }
  }
  cells.push(cell.trim());
  return cells;
}

function table(lines, start, parent) {
  const header = splitRow(lines[start]);
  const aligns = splitRow(lines[start + 1]).map((cell) => {
    if (cell.startsWith(":") && cell.endsWith(":")) return "align-center";
    if (cell.endsWith(":")) return "align-right";
    return null;
  });
  const row = (cells, tag) =>
    h(
      "tr",
      {},
      header.map((_, column) => {
        const element = h(tag, { class: aligns[column] ?? null });
        renderInline(cells[column] ?? "", element);
        return element;
      }),
    );
  const body = h("tbody");
  let i = start + 2;
  while (i < lines.length && lines[i].trim() && lines[i].includes("|")) {
    body.append(row(splitRow(lines[i]), "td"));
    i += 1;
  }
  parent.append(
    h("div", { class: "table-wrap", tabindex: "0" }, h("table", {}, h("thead", {}, row(header, "th")), body)),
  );
  return i;
}

function anchor(href) {
  return h("a", { href, target: "_blank", rel: "noopener noreferrer nofollow" });
}

/**
 * Inline Markdown of `text` appended to `parent`. `misses` remembers, per delimiter, the
 * earliest position from which no closing delimiter exists, so text full of unmatched `*` or
 * backticks is still scanned in linear time.
 */
function renderInline(text, parent, depth = 0, inLink = false) {
  const misses = new Map();
  let buffer = "";
  const flush = () => {
    if (buffer) parent.append(buffer); // a string appended is a text node
    buffer = "";
  };
  let i = 0;
  while (i < text.length) {
    const char = text[i];
    if (char === "\\" && PUNCTUATION.includes(text[i + 1] ?? "\n")) {
      buffer += text[i + 1];
      i += 2;
      continue;
    }
    if (char === "\n") {
      flush();
      parent.append(h("br"));
      i += 1;
      continue;
    }
    if (char === "`") {
      const run = runLength(text, i, "`");
      const close = closingRun(text, i + run, "`", run, misses);
      if (close >= 0) {
        flush();
        parent.append(h("code", {}, text.slice(i + run, close).replace(/\n/g, " ")));
        i = close + run;
      } else {
        buffer += text.slice(i, i + run);
        i += run;
      }
      continue;
    }
    if ((char === "*" || char === "_" || char === "~") && depth < MAX_INLINE_DEPTH) {
      const span = emphasis(text, i, misses);
      if (span) {
        flush();
        const element = h(span.tag);
        renderInline(span.inner, element, depth + 1, inLink);
        parent.append(element);
        i = span.end;
        continue;
      }
    }
    if (!inLink && char === "!" && text[i + 1] === "[") {
      const link = linkAt(text, i + 1);
      const href = link && safeUrl(link.url);
      if (href) {
        flush();
        const element = anchor(href);
        element.classList.add("image-link");
        element.append(`🖼 ${link.label || href}`);
        parent.append(element);
        i = link.end;
        continue;
      }
    }
    if (!inLink && char === "[") {
      const link = linkAt(text, i);
      const href = link && safeUrl(link.url);
      if (href) {
        flush();
        const element = anchor(href);
        renderInline(link.label, element, depth + 1, true);
        parent.append(element);
        i = link.end;
        continue;
      }
    }
    if (!inLink && char === "<") {
      AUTOLINK.lastIndex = i;
      const match = AUTOLINK.exec(text);
      const href = match && safeUrl(match[1]);
      if (href) {
        flush();
        const element = anchor(href);
        element.append(match[1]);
        parent.append(element);
        i += match[0].length;
        continue;
      }
    }
    if (!inLink && char === "h" && !WORD.test(text[i - 1] ?? " ")) {
      BARE_URL.lastIndex = i;
      const match = BARE_URL.exec(text);
      if (match) {
        const url = trimUrl(match[0]);
        const href = safeUrl(url);
        if (href) {
          flush();
          const element = anchor(href);
          element.append(url);
          parent.append(element);
          i += url.length;
          continue;
        }
      }
    }
    buffer += char;
    i += 1;
  }
  flush();
}

function runLength(text, start, char) {
  let end = start;
  while (text[end] === char) end += 1;
  return end - start;
}

/** Where the next run of exactly `length` `char`s starts at or after `from`, or -1. */
function closingRun(text, from, char, length, misses) {
  const key = `${char}${length}`;
  if (from >= (misses.get(key) ?? Infinity)) return -1;
  let at = text.indexOf(char, from);
  while (at >= 0) {
    const run = runLength(text, at, char);
    if (run === length) return at;
    at = text.indexOf(char, at + run);
  }
  misses.set(key, Math.min(from, misses.get(key) ?? Infinity));
  return -1;
}

/** `**strong**`, `*em*`, `_em_`, `__strong__` or `~~del~~` starting at `start`, or null. */
function emphasis(text, start, misses) {
  const char = text[start];
  const run = runLength(text, start, char);
  let delimiter;
  let tag;
  if (char === "~") {
    if (run !== 2) return null;
    [delimiter, tag] = ["~~", "del"];
  } else if (run >= 2) {
    [delimiter, tag] = [char + char, "strong"];
  } else {
    [delimiter, tag] = [char, "em"];
  }
  const from = start + delimiter.length;
  if (from >= text.length || /\s/.test(text[from])) return null;
  if (char === "_" && WORD.test(text[start - 1] ?? " ")) return null; // snake_case stays text
  const key = delimiter;
  if (from >= (misses.get(key) ?? Infinity)) return null;
  let close = text.indexOf(delimiter, from);
  while (close >= 0) {
    const before = text[close - 1];
    const after = text[close + delimiter.length];
    const single = delimiter.length === 1;
    const fits =
      close > from &&
      !/\s/.test(before) &&
      (!single || (before !== char && after !== char)) &&
      (char !== "_" || !WORD.test(after ?? " "));
    if (fits) return { tag, inner: text.slice(from, close), end: close + delimiter.length };
    close = text.indexOf(delimiter, close + 1);
  }
  misses.set(key, from);
  return null;
}

/** `[label](url)` or `[label](url "title")` starting at `start`, or null. */
function linkAt(text, start) {
  let depth = 0;
  let end = -1;
  const limit = Math.min(text.length, start + MAX_LABEL);
  for (let i = start; i < limit; i += 1) {
    if (text[i] === "\\") i += 1;
    else if (text[i] === "[") depth += 1;
    else if (text[i] === "]" && --depth === 0) {
      end = i;
      break;
    }
  }
  if (end < 0 || text[end + 1] !== "(") return null;
  const length = text.slice(end + 2, end + 2 + MAX_URL).indexOf(")");
  if (length < 0) return null;
  const close = end + 2 + length;
  const target = text.slice(end + 2, close).trim();
  const url = target.split(/\s+/)[0];
  return { label: text.slice(start + 1, end), url, end: close + 1 };
}

/** A bare URL without the punctuation that ends the sentence around it. */
function trimUrl(url) {
  let result = url.replace(/[.,;:!?*_~]+$/, "");
  while (result.endsWith(")") && (result.match(/\(/g) ?? []).length < (result.match(/\)/g) ?? []).length) {
    result = result.slice(0, -1).replace(/[.,;:!?*_~]+$/, "");
  }
  return result;
}
