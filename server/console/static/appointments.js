// Appointments (网上预约): booked vehicles at the gates with their window and status —
// active, used (the passage it released, linked), cancelled, or expired; cancelling one
// (supervisors and integration accounts, with a comment); booking one
// (POST /appointments), the API's refusal shown next to the field it names.
import { api } from "./api.js";
import { commentDialog } from "./dialog.js";
import { clearErrors, list, showFieldError } from "./forms.js";
import { configuredZone, formatTime, t, translatePage } from "./i18n.js";
import { applyRoles, el, runPage, setStatus, showError, startPage } from "./shell.js";
import { localToRfc3339, toLocalInput } from "./zonetime.js";

const STATUSES = ["active", "used", "cancelled", "expired"];
const state = { appointments: [], role: null };

// What the officer sees as the appointment's status: an active one past its window is expired.
export const statusOf = (a) => (a.status === "active" && a.expired ? "expired" : a.status);

// The booking form as the API's AppointmentIn (times read in the officer's zone).
export function bookingBody(form, zone) {
  const text = (name) => form.elements[name].value.trim();
  return {
    plate: text("plate"),
    containers: list(text("containers")).map((c) => c.toUpperCase()),
    gate_id: text("gate_id"),
    direction: text("direction"),
    window_start: localToRfc3339(text("window_start"), zone),
    window_end: localToRfc3339(text("window_end"), zone),
    purpose: text("purpose"),
    enterprise: { code: text("enterprise.code"), name: text("enterprise.name") },
  };
}

function row(a) {
  const status = statusOf(a);
  return el("tr", { "data-id": a.appointment_id, "data-status": status },
    el("td", { text: a.appointment_id }),
    el("td", { "data-raw": "", text: a.plate }),
    el("td", { text: (a.containers ?? []).join(", ") || "—" }),
    el("td", { text: a.gate_id }),
    el("td", { text: t("gates.direction." + a.direction) }),
    el("td", { class: "window" }, formatTime(a.window_start), " – ", formatTime(a.window_end)),
    el("td", { "data-raw": "", text: a.purpose }),
    el("td", {}, el("span", { "data-raw": "", text: a.enterprise?.name ?? "" }), " ",
      el("span", { class: "muted", text: a.enterprise?.code ?? "" })),
    el("td", { class: "status st-appt-" + status }, t("appt.status." + status),
      a.status === "cancelled" ? el("small", { class: "muted" }, " ", t("appt.cancelled_by", { who: a.cancelled_by ?? "?" }), " ",
        el("q", { "data-raw": "", text: a.cancel_comment ?? "" })) : null),
    el("td", {}, a.used_by_passage ? el("a", { href: "/gates", class: "used-by", text: a.used_by_passage }) : "—"),
    el("td", { class: "row-actions" }, a.status === "active"
      ? el("button", { type: "button", class: "appt-cancel", "data-roles": "supervisor integration",
        text: t("appt.cancel"), onclick: () => cancel(a).catch(showError) }) : null));
}

function render() {
  const wanted = document.getElementById("appt-status").value;
  const shown = state.appointments.filter((a) => !wanted || statusOf(a) === wanted);
  document.getElementById("appt-count").textContent = String(shown.length);
  document.getElementById("appt-state").textContent = shown.length ? "" : t("appt.none");
  const zone = configuredZone();
  document.getElementById("appt-start-label").textContent = t("appt.window_start", { zone });
  document.getElementById("appt-end-label").textContent = t("appt.window_end", { zone });
  const body = document.querySelector("#appt-table tbody");
  body.replaceChildren(...shown.map(row));
  applyRoles(state.role, body);
  const wantedId = new URLSearchParams(location.search).get("id");
  if (wantedId) body.querySelector(`tr[data-id="${CSS.escape(wantedId)}"]`)?.classList.add("selected");
}

async function cancel(a) {
  const done = await commentDialog({
    title: t("appt.cancel_title", { id: a.appointment_id }),
    submit: (comment) => api(`/appointments/${encodeURIComponent(a.appointment_id)}/cancel`, {
      method: "POST", body: { comment },
    }),
  });
  if (done) await load();
}

async function submit(event) {
  event.preventDefault();
  const form = event.target;
  const message = document.getElementById("appt-message");
  clearErrors(form);
  message.textContent = ""; message.className = "";
  try {
    const booked = await api("/appointments", { method: "POST", body: bookingBody(form, configuredZone()) });
    message.textContent = t("appt.booked", { id: booked.appointment_id });
    message.className = "ok";
    await load();
  } catch (err) {
    message.textContent = showFieldError(form, err) ? t("decl.fix_fields") : err.message;
    message.className = "bad";
    message.dataset.code = err.code ?? "error";
  }
}

async function load() {
  state.appointments = await api("/appointments?limit=1000");
  render();
  setStatus("status.live", true);
}

async function start() {
  const ctx = await startPage();
  if (!ctx) return;
  state.role = ctx.account.role;
  const select = document.getElementById("appt-status");
  select.append(...STATUSES.map((s) => el("option", { value: s, "data-i18n": "appt.status." + s, text: t("appt.status." + s) })));
  const form = document.getElementById("appt-form");
  const gates = await api("/gates");
  form.gate_id.append(...gates.features.map((f) => el("option", { value: f.properties.gate_id, text: `${f.properties.gate_id} ${f.properties.name ?? ""}` })));
  const zone = configuredZone();
  const now = Date.now();
  form.window_start.value = toLocalInput(new Date(now), zone);
  form.window_end.value = toLocalInput(new Date(now + 4 * 3600_000), zone);
  form.addEventListener("submit", (event) => submit(event).catch(showError));
  select.addEventListener("change", render);
  document.addEventListener("languagechange", render);
  translatePage();
  applyRoles(state.role);
  await load();
  document.getElementById("appt-table").dataset.loaded = "1";
}

runPage(start);
