// The comment dialog of every officer action that changes state: it will not submit
// without a comment (the API refuses one anyway), and shows the API's refusal in place.
import { t } from "./i18n.js";
import { el } from "./shell.js";

// fields: extra form controls (elements) shown above the comment.
// submit(comment, form): the action; throwing keeps the dialog open with the message.
// Resolves to true once the action succeeded, false when cancelled.
export function commentDialog({ title, fields = [], submit, id = "action-dialog" }) {
  document.getElementById(id)?.remove();
  const comment = el("textarea", { name: "comment", rows: 3, required: true, maxlength: 2000, id: "action-comment" });
  const ok = el("button", { type: "submit", id: "action-submit", text: t("action.submit"), disabled: true });
  const cancel = el("button", { type: "button", id: "action-cancel", text: t("action.cancel") });
  const message = el("p", { class: "bad", id: "action-error", role: "alert" });
  const hint = el("p", { class: "muted", id: "action-hint", text: t("action.comment_required") });
  const form = el("form", { method: "dialog" },
    el("h2", { text: title }), ...fields,
    el("label", {}, el("span", { text: t("action.comment") }), comment),
    hint, el("div", { class: "buttons" }, ok, cancel), message);
  const dialog = el("dialog", { id, class: "action" }, form);
  document.body.append(dialog);
  const update = () => { const empty = comment.value.trim() === ""; ok.disabled = empty; hint.hidden = !empty; };
  comment.addEventListener("input", update);
  update();
  return new Promise((resolve) => {
    cancel.addEventListener("click", () => { dialog.close(); dialog.remove(); resolve(false); });
    dialog.addEventListener("cancel", () => { dialog.remove(); resolve(false); });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const text = comment.value.trim();
      if (!text) { update(); comment.focus(); return; } // never without a comment
      ok.disabled = true;
      message.textContent = "";
      try {
        await submit(text, form);
        dialog.close(); dialog.remove(); resolve(true);
      } catch (err) {
        message.textContent = err.message ?? String(err);
        message.dataset.code = err.code ?? "error";
        ok.disabled = false;
      }
    });
    dialog.showModal();
    comment.focus();
  });
}
