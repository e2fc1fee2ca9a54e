// Small preferences kept in localStorage: language, theme, last model, API key.

const PREFIX = "llamarada.";

function read(name, fallback = "") {
  try {
    return localStorage.getItem(PREFIX + name) ?? fallback;
  } catch {
    return fallback;
  }
}

function write(name, value) {
  try {
    if (value) localStorage.setItem(PREFIX + name, value);
    else localStorage.removeItem(PREFIX + name);
  } catch {
    // Storage off or full: the preference lasts for this page only.
  }
}

export const prefs = {
  get language() {
    return read("language");
  },
  set language(value) {
    write("language", value);
  },
  get theme() {
    return read("theme", "system");
  },
  set theme(value) {
    write("theme", value === "system" ? "" : value);
  },
  get model() {
    return read("model");
  },
  set model(value) {
    write("model", value);
  },
  get apiKey() {
    return read("apiKey");
  },
  set apiKey(value) {
    write("apiKey", value.trim());
  },
};

/** Apply a theme: "light", "dark", or "system" (follow the operating system). */
export function applyTheme(theme) {
  if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
}
