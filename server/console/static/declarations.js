// Declarations: the list (from /trips, with each one's newest release record), search,
// registering one (POST /declarations) with the API's refusal shown next to the field it
// names, and recording a release (supervisors; POST /declarations/{id}/release).
import { api } from "./api.js";
import { formatTime, t, translatePage } from "./i18n.js";
import { clearErrors, list, showFieldError } from "./forms.js";
import { releaseDialog } from "./release.js";
import { applyRoles, el, setStatus, showError, runPage, startPage } from "./shell.js";

const TRIP_STATUSES = ["declared", "in_transit", "arrived", "released", "held", "closed"];
const state = { trips: [], releases: new Map(), role: null, lastRelease: null };

export function matches(trip, text, status) {
  if (status && trip.status !== status) return false;
  if (!text) return true;
  const needle = text.trim().toLowerCase();
  return [trip.trip_id, trip.declaration_id, trip.vehicle_id, trip.route_id]
    .some((v) => String(v ?? "").toLowerCase().includes(needle));
}

function render() {
  const text = document.getElementById("decl-search").value;
  const status = document.getElementById("decl-status").value;
  const shown = state.trips.filter((trip) => matches(trip, text, status));
  document.getElementById("decl-count").textContent = String(shown.length);
  document.querySelector("#decl-table tbody").replaceChildren(...shown.map((trip) => el("tr", { "data-id": trip.trip_id },
    el("td", {}, el("a", { href: "/trip?id=" + encodeURIComponent(trip.trip_id), text: trip.trip_id })),
    el("td", { text: trip.vehicle_id }), el("td", { text: trip.route_id }),
    el("td", { class: "st-trip-" + trip.status, text: t("trip.status." + trip.status) }),
    el("td", { text: formatTime(trip.created_at) }), el("td", { text: formatTime(trip.started_at) }),
    el("td", { text: String(trip.time_limit_min) }),
    releaseCell(state.releases.get(trip.declaration_id)),
    el("td", { class: "row-actions" }, el("button", { type: "button", class: "release-open", "data-roles": "supervisor",
      text: t("release.open"), onclick: () => recordRelease(trip).catch(showError) })))));
  applyRoles(state.role, document.querySelector("#decl-table tbody"));
  renderReleaseMessage();
}

function releaseCell(record) {
  if (!record) return el("td", { class: "release", text: "—" });
  const what = record.inspect ? t("release.inspect") : record.release_id;
  return el("td", { class: "release", "data-release": record.release_id ?? "", "data-inspect": record.inspect ? "1" : "0" },
    el("span", { class: "what", text: what }), " ",
    el("span", { class: "muted", text: t("release.by", { who: record.recorded_by, at: formatTime(record.recorded_at) }) }));
}

function renderReleaseMessage() {
  const line = document.getElementById("release-message");
  const done = state.lastRelease;
  if (!done) { line.textContent = ""; return; }
  line.className = "ok";
  line.textContent = t(done.inspect ? "release.recorded_inspect" : "release.recorded", {
    id: done.declaration_id, release: done.release_id ?? "",
    status: done.trip_status ? t("trip.status." + done.trip_status) : "—",
  });
}

async function recordRelease(trip) {
  const done = await releaseDialog(trip);
  if (!done) return;
  state.lastRelease = done;
  await load();
}

async function load() {
  const [trips, releases] = await Promise.all([api("/trips"), api("/console/releases")]);
  state.trips = trips;
  state.releases = new Map(releases.map((r) => [r.declaration_id, r]));
  render();
  setStatus("status.live", true);
}

// The form as the API's DeclarationIn (dotted names nest: enterprise.code → {enterprise: {code}}).
export function formBody(form) {
  const body = { enterprise: {} };
  for (const control of form.elements) {
    if (!control.name) continue;
    let value = control.value.trim();
    if (control.name === "lock_ids" || control.name === "containers") value = list(value);
    if (control.name === "containers") value = value.map((c) => c.toUpperCase());
    if (control.name === "time_limit_min") value = value === "" ? null : Number(value);
    const [head, tail] = control.name.split(".");
    if (tail) body[head][tail] = value; else body[head] = value;
  }
  return body;
}

async function submit(event) {
  event.preventDefault();
  const form = event.target;
  const message = document.getElementById("decl-message");
  clearErrors(form);
  message.textContent = ""; message.className = "";
  try {
    const trip = await api("/declarations", { method: "POST", body: formBody(form) });
    message.textContent = t("decl.created", { id: trip.trip_id });
    message.className = "ok";
    form.declaration_id.value = "";
    await load();
  } catch (err) {
    const shown = showFieldError(form, err);
    message.textContent = shown ? t("decl.fix_fields") : err.message;
    message.className = "bad";
    message.dataset.code = err.code ?? "error";
  }
}

async function start() {
  const ctx = await startPage();
  if (!ctx) return;
  state.role = ctx.account.role;
  const statusSelect = document.getElementById("decl-status");
  statusSelect.append(...TRIP_STATUSES.map((s) => el("option", { value: s, "data-i18n": "trip.status." + s, text: t("trip.status." + s) })));
  const [routes, gates] = await Promise.all([api("/routes"), api("/gates")]);
  const form = document.getElementById("decl-form");
  const gateOptions = () => gates.features.map((f) => el("option", { value: f.properties.gate_id, text: `${f.properties.gate_id} ${f.properties.name ?? ""}` }));
  form.origin_gate.append(...gateOptions());
  form.destination_gate.append(...gateOptions());
  if (form.destination_gate.options.length > 1) form.destination_gate.selectedIndex = 1;
  form.route_id.append(...routes.features.filter((f) => f.properties.kind === "route")
    .map((f) => el("option", { value: f.properties.route_id, text: f.properties.route_id })));
  form.addEventListener("submit", (event) => submit(event).catch(showError));
  document.getElementById("decl-search").addEventListener("input", render);
  statusSelect.addEventListener("change", render);
  document.addEventListener("languagechange", render);
  translatePage();
  await load();
  document.getElementById("decl-table").dataset.loaded = "1";
}

runPage(start);
