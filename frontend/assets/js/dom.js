// Building DOM nodes. Text always goes in as text nodes, never as HTML.

/**
 * Make an element: `h("button", { class: "x", onclick: f }, "Label", child)`.
 * Props: `class`, `text`, `dataset`, `on<event>` listeners, anything else as an attribute
 * (true: present and empty, false or null: left out). Strings among the children become
 * text nodes.
 */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") element.className = value;
    else if (name === "text") element.textContent = value;
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  element.append(
    ...children.flat().filter((child) => child !== null && child !== undefined && child !== false),
  );
  return element;
}

/** The element with this id; throws if the page lacks it (a bug, not a runtime condition). */
export function byId(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing from the page`);
  return element;
}

/** Copy text to the clipboard, with a fallback for pages outside a secure context. */
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = h("textarea", { class: "offscreen", readonly: true, "aria-hidden": "true" });
  area.value = text;
  document.body.append(area);
  area.select();
  const copied = document.execCommand("copy");
  area.remove();
  if (!copied) throw new Error("copy refused");
}

/**
 * Offer `blob` as a file download named `name`: a link to a blob: URL, clicked. (No data:
 * URL or inline script: the page's CSP allows neither, and a blob: link needs no exception.)
 */
export function saveFile(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: name, class: "offscreen", tabindex: "-1" });
  document.body.append(link);
  link.click();
  link.remove();
  // The download has started from the URL by the time this runs; then it can go.
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}
