// The "record release" dialog of the declarations page (supervisors): the electronic
// release record (number and time, typed in the officer's time zone) or a request for
// inspection → POST /declarations/{id}/release. The API's refusal is shown in place.
import { api } from "./api.js";
import { configuredZone, t } from "./i18n.js";
import { el } from "./shell.js";
import { localToRfc3339, toLocalInput } from "./zonetime.js";

// The request body from the dialog's form.
export function releaseBody(form, zone) {
  if (form.kind.value === "inspect") return { inspect: true };
  return { release_id: form.release_id.value.trim(), released_at: localToRfc3339(form.released_at.value, zone) };
}

// Resolves to the API's answer once recorded, or null when cancelled.
export function releaseDialog(trip) {
  document.getElementById("release-dialog")?.remove();
  const zone = configuredZone();
  const radio = (value, key, checked) => el("label", { class: "inline" },
    el("input", { type: "radio", name: "kind", value, checked }), " ", el("span", { text: t(key) }));
  const releaseId = el("input", { name: "release_id", id: "release-id", required: true, maxlength: 128, autocomplete: "off" });
  const releasedAt = el("input", { name: "released_at", id: "released-at", type: "datetime-local", step: 1, required: true,
    value: toLocalInput(new Date(), zone) });
  const fields = el("fieldset", { id: "release-fields" },
    el("label", {}, el("span", { text: t("release.release_id") }), releaseId),
    el("label", {}, el("span", { text: t("release.released_at", { zone }) }), releasedAt));
  const ok = el("button", { type: "submit", id: "release-submit", text: t("release.submit") });
  const cancel = el("button", { type: "button", id: "release-cancel", text: t("action.cancel") });
  const message = el("p", { class: "bad", id: "release-error", role: "alert" });
  const form = el("form", { method: "dialog", novalidate: true },
    el("h2", { text: t("release.title", { id: trip.declaration_id ?? trip.trip_id }) }),
    radio("release", "release.kind_release", true), radio("inspect", "release.kind_inspect", false),
    fields, el("div", { class: "buttons" }, ok, cancel), message);
  const dialog = el("dialog", { id: "release-dialog", class: "action" }, form);
  document.body.append(dialog);
  const update = () => {
    const inspect = form.kind.value === "inspect";
    fields.disabled = inspect;
    ok.disabled = !inspect && (!releaseId.value.trim() || !releasedAt.value);
  };
  form.addEventListener("input", update);
  update();
  return new Promise((resolve) => {
    const close = (value) => { dialog.close(); dialog.remove(); resolve(value); };
    cancel.addEventListener("click", () => close(null));
    dialog.addEventListener("cancel", () => { dialog.remove(); resolve(null); });
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      update();
      if (ok.disabled) return;
      ok.disabled = true;
      message.textContent = "";
      try {
        const id = encodeURIComponent(trip.declaration_id ?? trip.trip_id);
        close(await api(`/declarations/${id}/release`, { method: "POST", body: releaseBody(form, zone) }));
      } catch (err) {
        message.textContent = err.message ?? String(err);
        message.dataset.code = err.code ?? "error";
        ok.disabled = false;
      }
    });
    dialog.showModal();
    releaseId.focus();
  });
}
