// Llamarada in the browser: wires the page's parts together.

import { listModels } from "./api.js";
import { BatchView } from "./batch.js";
import { ChatView } from "./chat.js";
import { openDialog } from "./dialog.js";
import { byId, h } from "./dom.js";
import { initialLanguage, setLanguage, t, translate } from "./i18n.js";
import { KnowledgeView } from "./kb.js";
import { applyTheme, prefs } from "./prefs.js";
import { Sidebar } from "./sidebar.js";
import { ConversationStore } from "./store.js";

const KB_PREFIX = "kb:";
const NARROW = window.matchMedia("(max-width: 760px)");

const store = new ConversationStore();
const modelSelect = byId("model");
const agentToggle = byId("agent-mode");
const announcer = byId("announcer");

function announce(text) {
  // Clear first so the same words twice are still spoken twice.
  announcer.textContent = "";
  setTimeout(() => {
    announcer.textContent = text;
  }, 50);
}

let toastTimer = 0;
function toast(text) {
  const element = byId("toast");
  element.textContent = text;
  element.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    element.hidden = true;
  }, 6000);
}

// ---- the conversation on screen, kept in the address (#c=ID) so a reload returns to it ----

function conversationFromHash() {
  const id = new URLSearchParams(location.hash.slice(1)).get("c");
  return id ? store.get(id) : null;
}

// ---- views: the chat, and knowledge bases and batch jobs (when the server has them) ----

const VIEW_TITLES = { kb: "kbView", batch: "batchView" };
let view = "chat";

function viewTitle() {
  return VIEW_TITLES[view] ? t(VIEW_TITLES[view]) : chat.conversation?.title || t("untitled");
}

function showView(name) {
  view = name;
  for (const tab of document.querySelectorAll(".view-tab")) {
    if (tab.dataset.view === name) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  byId("chat-view").hidden = name !== "chat";
  byId("kb-view").hidden = name !== "kb";
  byId("batch-view").hidden = name !== "batch";
  byId("chat-controls").hidden = name !== "chat";
  byId("title").textContent = viewTitle();
  if (name === "batch") batch.show(modelSelect.value);
  else batch.hide();
  if (name !== "chat") history.replaceState(null, "", `#${name}`);
  if (name === "kb") knowledge.show();
  closeSidebar();
}

function show(conversation, { focus = true } = {}) {
  if (view !== "chat") showView("chat");
  chat.open(conversation);
  const address = conversation
    ? `#c=${encodeURIComponent(conversation.id)}`
    : location.pathname + location.search;
  history.replaceState(null, "", address);
  if (conversation?.model && [...modelSelect.options].some((option) => option.value === conversation.model)) {
    modelSelect.value = conversation.model;
  }
  sidebar.render();
  closeSidebar();
  if (focus) byId("composer-input").focus();
}

const chat = new ChatView({
  store,
  model: () => modelSelect.value,
  agentMode: () => agentToggle.checked,
  announce,
  onOpen: (conversation) => {
    history.replaceState(null, "", `#c=${encodeURIComponent(conversation.id)}`);
    sidebar.render();
  },
});

const sidebar = new Sidebar({
  store,
  current: () => chat.conversation,
  onOpen: (conversation) => show(conversation),
  onDelete: (conversation) => {
    if (chat.conversation?.id === conversation.id) show(null);
    else byId("composer-input").focus();
  },
});

store.addEventListener("change", () => {
  if (view === "chat") byId("title").textContent = chat.conversation?.title || t("untitled");
});

const knowledge = new KnowledgeView({
  announce,
  model: () => modelSelect.value,
  onCollectionsChange: () => loadModels(),
});
const batch = new BatchView({ announce });
for (const tab of document.querySelectorAll(".view-tab")) {
  tab.addEventListener("click", () => {
    if (tab.dataset.view === "chat") show(chat.conversation);
    else showView(tab.dataset.view);
  });
}
store.addEventListener("error", () => toast(t("storageFull")));

// ---- models ----

async function loadModels() {
  // A reload keeps the current list usable until the new one is in.
  if (!modelSelect.value) {
    modelSelect.replaceChildren(h("option", { value: "" }, t("loadingModels")));
    modelSelect.disabled = true;
  }
  const current = modelSelect.value;
  let names;
  try {
    names = await listModels();
  } catch (error) {
    modelSelect.replaceChildren(h("option", { value: "" }, t("noModels")));
    batch.setModels([]);
    toast(t("modelsFailed", { message: error.message }));
    return;
  }
  batch.setModels(names);
  const plain = names.filter((name) => !name.startsWith(KB_PREFIX));
  const bases = names.filter((name) => name.startsWith(KB_PREFIX));
  const options = plain.map((name) => h("option", { value: name }, name));
  if (bases.length) {
    options.push(
      h(
        "optgroup",
        { label: t("kbView") },
        bases.map((name) => h("option", { value: name }, name)),
      ),
    );
  }
  modelSelect.replaceChildren(...(options.length ? options : [h("option", { value: "" }, t("noModels"))]));
  modelSelect.disabled = names.length === 0;
  const wanted = [current, chat.conversation?.model, prefs.model].find(
    (name) => name && names.includes(name),
  );
  if (wanted) modelSelect.value = wanted;
}

modelSelect.addEventListener("change", () => {
  prefs.model = modelSelect.value;
});

// ---- the narrow-screen drawer ----

const app = byId("app");
const menuButton = byId("menu-button");

function openSidebar() {
  app.classList.add("sidebar-open");
  menuButton.setAttribute("aria-expanded", "true");
  byId("main").inert = true;
  byId("new-chat").focus();
}

function closeSidebar() {
  if (!app.classList.contains("sidebar-open")) return;
  app.classList.remove("sidebar-open");
  menuButton.setAttribute("aria-expanded", "false");
  byId("main").inert = false;
  menuButton.focus();
}

menuButton.addEventListener("click", openSidebar);
byId("backdrop").addEventListener("click", closeSidebar);
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && app.classList.contains("sidebar-open")) closeSidebar();
});
NARROW.addEventListener("change", () => {
  if (!NARROW.matches) closeSidebar();
});

// ---- settings, language, theme ----

byId("new-chat").addEventListener("click", () => show(null));

byId("open-settings").addEventListener("click", async () => {
  const input = h("input", { type: "password", id: "api-key", autocomplete: "off", spellcheck: "false" });
  input.value = prefs.apiKey;
  const body = [
    h("label", { for: "api-key" }, t("apiKey")),
    input,
    h("p", { class: "hint", id: "api-key-hint" }, t("apiKeyHint")),
  ];
  input.setAttribute("aria-describedby", "api-key-hint");
  if (await openDialog({ title: t("settingsTitle"), body, confirm: t("save"), focus: input })) {
    prefs.apiKey = input.value;
    loadModels();
  }
});

const languageSelect = byId("language");
languageSelect.addEventListener("change", () => {
  prefs.language = languageSelect.value;
  setLanguage(languageSelect.value);
});
document.addEventListener("llamarada:language", () => {
  chat.render();
  sidebar.render();
  if (view !== "chat") byId("title").textContent = viewTitle();
  if (view === "kb") knowledge.render();
  if (view === "batch") batch.render();
});

const themeSelect = byId("theme");
themeSelect.value = prefs.theme;
themeSelect.addEventListener("change", () => {
  prefs.theme = themeSelect.value;
  applyTheme(themeSelect.value);
});

agentToggle.addEventListener("change", () => {
  if (agentToggle.checked) announce(t("agentHint"));
});

// ---- start ----

languageSelect.value = initialLanguage(prefs.language);
setLanguage(languageSelect.value);
translate(document);
const startedAt = location.hash;
show(conversationFromHash(), { focus: false });
const [, hasKnowledge, hasBatch] = await Promise.all([
  loadModels(),
  knowledge.available(),
  batch.available(),
]);
byId("kb-tab").hidden = !hasKnowledge;
byId("batch-tab").hidden = !hasBatch;
if (hasKnowledge && startedAt === "#kb") showView("kb");
if (hasBatch && startedAt === "#batch") showView("batch");
document.body.dataset.ready = "true";
