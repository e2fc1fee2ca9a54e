// One modal <dialog> for confirmations and small forms. showModal() keeps focus inside it and
// Escape cancels; focus goes back where it was when it closes.

import { byId } from "./dom.js";
import { t } from "./i18n.js";

/**
 * Show the dialog; resolves true when the user confirms. `body` is a list of nodes;
 * `focus` (optional) is the element to focus first, else the confirm button; `dismiss` names
 * the button that closes it without confirming (else "Cancel").
 */
export function openDialog({ title, body = [], confirm, dismiss = null, danger = false, focus = null }) {
  const dialog = byId("dialog");
  const ok = byId("dialog-ok");
  const previous = document.activeElement;
  byId("dialog-title").textContent = title;
  byId("dialog-body").replaceChildren(...body);
  ok.textContent = confirm;
  ok.classList.toggle("button-danger", danger);
  ok.classList.toggle("button-primary", !danger);
  byId("dialog-cancel").textContent = dismiss ?? t("cancel");
  dialog.returnValue = "";
  const cancel = () => dialog.close("cancel");
  byId("dialog-cancel").addEventListener("click", cancel);
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        byId("dialog-cancel").removeEventListener("click", cancel);
        resolve(dialog.returnValue === "ok");
        if (previous instanceof HTMLElement && previous.isConnected) previous.focus();
      },
      { once: true },
    );
    dialog.showModal();
    (focus ?? ok).focus();
  });
}
