// The alarm queue: severity then age, filters, a tone and a highlight for new critical
// alarms, escalation of unacknowledged critical ones, and the officer actions.
import { api } from "./api.js";
import { commentDialog } from "./dialog.js";
import { formatTime, t, translatePage } from "./i18n.js";
import { alarmTone, unlockSound } from "./sound.js";
import { applyRoles, el, setStatus, showError, startPage } from "./shell.js";

export const SEVERITY_RANK = { critical: 0, major: 1, minor: 2, warning: 3 };
export const ALARM_TYPES = [
  "ROUTE_DEVIATION", "FORBIDDEN_ZONE", "UNPLANNED_STOP", "LOCK_OPENED", "LOCK_TAMPER",
  "LOCK_LOW_BATTERY", "LOCK_WRONG_PASSWORD", "GNSS_LOST", "DEVICE_OFFLINE", "TRANSIT_OVERDUE",
  "OVERSPEED", "POSITION_IMPLAUSIBLE", "GATE_MISMATCH",
];

const state = {
  ctx: null, alarms: [], tripRoutes: new Map(), seen: null, fresh: new Set(),
  selected: null, detail: null, soundOn: true, timer: null,
};

// Severity first (critical on top), then the oldest first.
export function sortAlarms(alarms) {
  return [...alarms].sort((a, b) =>
    (SEVERITY_RANK[a.severity] ?? 9) - (SEVERITY_RANK[b.severity] ?? 9)
    || Date.parse(a.first_at) - Date.parse(b.first_at) || a.id - b.id);
}

// A critical alarm nobody acknowledged within the configured delay is escalated.
export function escalated(alarm, nowMs, afterMin) {
  return alarm.severity === "critical" && alarm.status === "active_unack"
    && nowMs - Date.parse(alarm.first_at) >= afterMin * 60_000;
}

function age(iso, nowMs) {
  const min = Math.max(0, Math.floor((nowMs - Date.parse(iso)) / 60_000));
  return min < 60 ? t("age.min", { n: min }) : t("age.hour", { h: Math.floor(min / 60), m: min % 60 });
}

function filters() {
  const form = document.getElementById("alarm-filters");
  return {
    state: form.state.value, type: form.type.value, route: form.route.value,
    status: form.status.value, assignee: form.assignee.value,
  };
}

async function load() {
  const f = filters();
  const query = new URLSearchParams({ state: f.state, limit: "1000" });
  for (const key of ["type", "status", "assignee"]) if (f[key]) query.set(key, f[key]);
  const [alarms, trips] = await Promise.all([api("/alarms?" + query), api("/trips")]);
  state.tripRoutes = new Map(trips.map((trip) => [trip.trip_id, trip.route_id]));
  const shown = f.route ? alarms.filter((a) => state.tripRoutes.get(a.trip_id) === f.route) : alarms;
  // New critical alarms since the last look (none on the first load: nothing is "new" then).
  const fresh = shown.filter((a) => a.severity === "critical" && a.status.startsWith("active") && state.seen && !state.seen.has(a.id));
  state.seen ??= new Set();
  for (const a of alarms) state.seen.add(a.id);
  if (fresh.length) {
    for (const a of fresh) state.fresh.add(a.id);
    if (state.soundOn && state.ctx.settings.alarm_sound !== false) alarmTone();
  }
  state.alarms = sortAlarms(shown);
  render();
  if (state.selected !== null) await loadDetail(state.selected, false);
  setStatus("status.live", true);
}

function render() {
  const now = Date.now();
  const after = state.ctx.settings.escalate_after_min ?? 5;
  document.getElementById("alarm-count").textContent = String(state.alarms.length);
  const body = document.querySelector("#alarm-queue tbody");
  body.replaceChildren(...state.alarms.map((a) => {
    const up = escalated(a, now, after);
    const classes = ["sev-" + a.severity, a.status.startsWith("active") ? "is-active" : "is-cleared"];
    if (up) classes.push("escalated");
    if (state.fresh.has(a.id)) classes.push("new");
    if (a.id === state.selected) classes.push("selected");
    const severity = el("td", { class: "sev" }, el("span", { class: "badge sev-" + a.severity, text: t("severity." + a.severity) }));
    if (up) severity.append(" ", el("span", { class: "badge escalated-badge", text: t("alarms.escalated") }));
    if (state.fresh.has(a.id)) severity.append(" ", el("span", { class: "badge new-badge", text: t("alarms.new") }));
    const tr = el("tr", {
      class: classes.join(" "), "data-id": a.id, "data-status": a.status, "data-severity": a.severity,
      "data-escalated": up ? "1" : "0", "data-new": state.fresh.has(a.id) ? "1" : "0",
      onclick: () => { state.fresh.delete(a.id); state.selected = a.id; render(); loadDetail(a.id, true).catch(showError); },
    },
    severity,
    el("td", { text: t("alarm.type." + a.type) }),
    el("td", { text: a.vehicle_id }),
    el("td", {}, el("a", { href: "/trip?id=" + encodeURIComponent(a.trip_id), text: a.trip_id })),
    el("td", { class: "status-cell", text: t("alarm.status." + a.status) }),
    el("td", { class: "assignee-cell", text: a.assignee ?? "—" }),
    el("td", { text: formatTime(a.first_at) }),
    el("td", { text: age(a.first_at, now) }),
    el("td", { text: String(a.count) }));
    return tr;
  }));
}

async function loadDetail(id, scroll) {
  const alarm = await api(`/alarms/${id}`);
  if (state.selected !== id) return;
  state.detail = alarm;
  renderDetail();
  if (scroll) document.getElementById("alarm-detail").scrollTop = 0;
}

function renderDetail() {
  const a = state.detail;
  const aside = document.getElementById("alarm-detail");
  if (!a) return;
  const up = escalated(a, Date.now(), state.ctx.settings.escalate_after_min ?? 5);
  const rows = [
    ["alarms.id", String(a.id)], ["alarms.type", t("alarm.type." + a.type)],
    ["alarms.severity", t("severity." + a.severity)], ["alarms.status", t("alarm.status." + a.status)],
    ["col.vehicle", a.vehicle_id], ["trip.id", a.trip_id], ["alarms.assignee", a.assignee ?? "—"],
    ["alarms.first_at", formatTime(a.first_at)], ["alarms.last_at", formatTime(a.last_at)],
    ["alarms.count_col", String(a.count)], ["alarms.detail", a.detail || "—"],
    ["alarms.position", a.position ? a.position.coordinates.map((c) => c.toFixed(5)).join(", ") : "—"],
  ];
  const dl = el("dl", { id: "alarm-fields" });
  for (const [key, value] of rows) dl.append(el("dt", { text: t(key) }), el("dd", { text: value, class: "v-" + key.replace(".", "-") }));
  const actions = el("div", { class: "actions" },
    a.status.endsWith("_unack") ? el("button", { type: "button", id: "do-ack", text: t("action.ack"), onclick: () => act("ack") }) : null,
    a.status.startsWith("active") ? el("button", { type: "button", id: "do-clear", text: t("action.clear"), onclick: () => act("clear") }) : null,
    el("button", { type: "button", id: "do-comment", text: t("action.comment_add"), onclick: () => act("comment") }),
    a.status !== "cleared_ack" ? el("button", { type: "button", id: "do-assign", "data-roles": "supervisor", text: t("action.assign"), onclick: () => act("assign") }) : null,
  );
  const history = el("table", { id: "alarm-history" },
    el("thead", {}, el("tr", {}, ...["audit.at", "audit.actor", "audit.action", "alarms.status", "action.comment"].map((k) => el("th", { text: t(k) })))),
    el("tbody", {}, ...(a.history ?? []).map((h) => el("tr", { "data-action": h.action },
      el("td", { text: formatTime(h.at) }), el("td", { text: h.actor === "system" ? t("actor.system") : h.actor }),
      el("td", { text: t("event." + h.action) }),
      el("td", { text: (h.from_status ? t("alarm.status." + h.from_status) + " → " : "") + t("alarm.status." + h.to_status) }),
      el("td", { text: [h.comment, h.detail].filter(Boolean).join(" · ") || "—" })))));
  aside.replaceChildren(
    el("h2", {}, el("span", { text: t("alarms.detail_heading") + " #" + a.id }), up ? el("span", { class: "badge escalated-badge", text: t("alarms.escalated") }) : null),
    dl, actions, el("h3", { text: t("alarms.history") }), history);
  applyRoles(state.ctx.account.role, aside);
}

async function act(action) {
  const a = state.detail;
  const fields = [];
  if (action === "assign") {
    const people = await api("/console/assignees");
    const select = el("select", { name: "assignee", id: "action-assignee" },
      el("option", { value: "", text: t("alarms.unassigned") }),
      ...people.map((p) => el("option", { value: p.username, text: `${p.display_name} (${p.username})`, selected: p.username === a.assignee })));
    fields.push(el("label", {}, el("span", { text: t("alarms.assignee") }), select));
  }
  const done = await commentDialog({
    title: `${t("action." + (action === "comment" ? "comment_add" : action))} · #${a.id} ${t("alarm.type." + a.type)}`,
    fields,
    submit: (comment, form) => api(`/alarms/${a.id}/${action}`, {
      method: "POST",
      body: action === "assign" ? { comment, assignee: form.assignee.value || null } : { comment },
    }),
  });
  if (done) await load();
}

function fillFilters(routes, people) {
  const form = document.getElementById("alarm-filters");
  form.type.append(...ALARM_TYPES.map((type) => el("option", { value: type, "data-i18n": "alarm.type." + type, text: t("alarm.type." + type) })));
  form.route.append(...routes.features.filter((f) => f.properties.kind === "route")
    .map((f) => el("option", { value: f.properties.route_id, text: f.properties.route_id })));
  form.assignee.append(...people.map((p) => el("option", { value: p.username, text: `${p.display_name} (${p.username})` })));
  const params = new URLSearchParams(location.search);
  for (const key of ["state", "type", "route", "status", "assignee"]) if (params.get(key)) form[key].value = params.get(key);
  // Another filter starts a new baseline: alarms it reveals are not "new".
  form.addEventListener("change", () => { state.selected = null; state.seen = null; state.fresh.clear(); load().catch(showError); });
}

function soundButton() {
  const button = document.getElementById("sound");
  const show = () => { button.textContent = t(state.soundOn ? "alarms.sound_on" : "alarms.sound_off"); button.dataset.on = state.soundOn ? "1" : "0"; };
  button.addEventListener("click", () => { state.soundOn = !state.soundOn; if (state.soundOn) unlockSound(); show(); });
  document.addEventListener("languagechange", show);
  show();
}

async function start() {
  state.ctx = await startPage();
  if (!state.ctx) return;
  state.soundOn = state.ctx.settings.alarm_sound !== false;
  const showDelay = () => { document.getElementById("escalate-min").textContent = t("age.min", { n: state.ctx.settings.escalate_after_min ?? 5 }); };
  showDelay();
  document.addEventListener("languagechange", showDelay);
  const [routes, people] = await Promise.all([api("/routes"), api("/console/assignees")]);
  fillFilters(routes, people);
  soundButton();
  translatePage();
  document.addEventListener("languagechange", () => { render(); renderDetail(); });
  const wanted = Number(new URLSearchParams(location.search).get("id"));
  if (wanted) { state.selected = wanted; }
  document.body.addEventListener("pointerdown", () => { if (state.soundOn) unlockSound(); }, { once: true });
  const loop = async () => {
    await load().catch(showError);
    document.getElementById("alarm-queue").dataset.loaded = "1";
    state.timer = setTimeout(loop, state.ctx.settings.poll_interval_ms);
  };
  loop();
}

start().catch(showError);
