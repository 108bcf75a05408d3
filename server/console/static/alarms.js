// The alarm queue: severity then age, filters, a tone and a highlight for new critical
// alarms, the server's escalation of unacknowledged ones, and the officer actions.
// The queue is read over REST (in pages of 1000, the first shown at once), then kept
// current from the live stream; only the rows in view are in the page (vtable.js).
import { api, apiPage } from "./api.js";
import { commentDialog } from "./dialog.js";
import { formatTime, t, translatePage } from "./i18n.js";
import { alarmTone, unlockSound } from "./sound.js";
import { applyRoles, el, setStatus, showError, runPage, startPage } from "./shell.js";
import { LiveSource, mark, timed } from "./datasource.js";
import { VirtualRows } from "./vtable.js";

export const SEVERITY_RANK = { critical: 0, major: 1, minor: 2, warning: 3 };
export const ALARM_TYPES = [
  "ROUTE_DEVIATION", "FORBIDDEN_ZONE", "UNPLANNED_STOP", "LOCK_OPENED", "LOCK_TAMPER",
  "LOCK_LOW_BATTERY", "LOCK_WRONG_PASSWORD", "GNSS_LOST", "DEVICE_OFFLINE", "TRANSIT_OVERDUE",
  "OVERSPEED", "POSITION_IMPLAUSIBLE", "GATE_MISMATCH", "DEVICE_CLOCK_AHEAD",
  "LOCK_REPORT_FORGED", "LOCK_REPORT_GAP",
];
//: Alarms read first (shown at once), then per request (the API's largest page), and
//: kept in the page at most.
const FIRST = 200;
const PAGE = 1000;
const MOST = 20_000;
const AGE_EVERY_MS = 30_000;

const state = {
  ctx: null, list: [], byId: new Map(), total: 0, tripRoutes: new Map(), seen: null,
  fresh: new Set(), selected: null, detail: null, soundOn: true, rows: null, source: null,
  shown: false, detailTimer: null, askedTrips: new Set(),
};

// Severity first (critical on top), then the oldest first.
export function compareAlarms(a, b) {
  return (SEVERITY_RANK[a.severity] ?? 9) - (SEVERITY_RANK[b.severity] ?? 9)
    || Date.parse(a.first_at) - Date.parse(b.first_at) || a.id - b.id;
}

export function sortAlarms(alarms) {
  return [...alarms].sort(compareAlarms);
}

// Escalated by the server (escalated_at) and still waiting for an acknowledgement.
export function escalated(alarm) {
  return Boolean(alarm.escalated_at) && alarm.status === "active_unack";
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

function matches(a, f) {
  if (f.state === "active" && !a.status.startsWith("active")) return false;
  if (f.state === "cleared" && !a.status.startsWith("cleared")) return false;
  if (f.type && a.type !== f.type) return false;
  if (f.status && a.status !== f.status) return false;
  if (f.assignee && a.assignee !== f.assignee) return false;
  if (f.route && state.tripRoutes.get(a.trip_id) !== f.route) return false;
  return true;
}

// ---- the model: a sorted list, kept sorted as changes arrive ---------------------------

function position(list, alarm) {
  let lo = 0, hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (compareAlarms(list[mid], alarm) < 0) lo = mid + 1; else hi = mid;
  }
  return lo;
}

function remove(id) {
  const old = state.byId.get(id);
  if (!old) return false;
  let i = position(state.list, old);
  while (i < state.list.length && state.list[i].id !== id) i += 1; // equal keys
  if (i < state.list.length) state.list.splice(i, 1);
  state.byId.delete(id);
  state.rows.invalidate(id);
  return true;
}

function upsert(alarm) {
  remove(alarm.id);
  state.list.splice(position(state.list, alarm), 0, alarm);
  state.byId.set(alarm.id, alarm);
}

// New critical alarms since the page's baseline: flagged and sounded.
function noticeNew(alarms) {
  if (!state.seen) { state.seen = new Set(alarms.map((a) => a.id)); return; }
  const fresh = alarms.filter((a) => !state.seen.has(a.id) && a.severity === "critical" && a.status.startsWith("active"));
  for (const a of alarms) state.seen.add(a.id);
  if (!fresh.length) return;
  for (const a of fresh) { state.fresh.add(a.id); state.rows.invalidate(a.id); }
  if (state.soundOn && state.ctx.settings.alarm_sound !== false) alarmTone();
}

async function readQueue() {
  const f = filters();
  const query = new URLSearchParams({ state: f.state });
  for (const key of ["type", "status", "assignee"]) if (f[key]) query.set(key, f[key]);
  const [first, trips] = await Promise.all([apiPage(`/alarms?${query}&limit=${FIRST}&offset=0`), api("/trips")]);
  state.tripRoutes = new Map(trips.map((trip) => [trip.trip_id, trip.route_id]));
  const total = first.total ?? first.data.length;
  if (!state.shown) { applySnapshot({ alarms: first.data, total, filters: f, partial: true }); state.shown = true; }
  const alarms = [...first.data];
  for (let offset = FIRST; offset < Math.min(total, MOST); offset += PAGE) {
    const page = await api(`/alarms?${query}&limit=${PAGE}&offset=${offset}`);
    alarms.push(...page);
    if (page.length < PAGE) break;
  }
  return { alarms, total, filters: f };
}

function applySnapshot({ alarms, total, filters: f, partial = false }) {
  const unique = new Map(alarms.map((a) => [a.id, a]));
  const shown = [...unique.values()].filter((a) => matches(a, f));
  if (!partial) noticeNew(shown); // the first page alone is no baseline
  state.list = sortAlarms(shown);
  state.byId = new Map(state.list.map((a) => [a.id, a]));
  state.total = f.route ? state.list.length : Math.max(total, state.list.length);
  render();
  if (!partial) mark("queue.loaded");
  if (state.selected !== null) scheduleDetail(state.selected);
}

function applyChanges(alarms) {
  const f = filters();
  const entering = [];
  for (const alarm of alarms) {
    if (f.route && !state.tripRoutes.has(alarm.trip_id)) askRoute(alarm);
    const had = state.byId.has(alarm.id);
    if (matches(alarm, f)) {
      upsert(alarm);
      if (!had) { entering.push(alarm); state.total += 1; }
    } else if (remove(alarm.id)) {
      state.total = Math.max(0, state.total - 1);
    }
    if (alarm.id === state.selected) scheduleDetail(alarm.id);
  }
  noticeNew(entering);
  render();
}

// An alarm of a trip the page does not know yet, under a route filter: look the trip up.
function askRoute(alarm) {
  if (state.askedTrips.has(alarm.trip_id)) return;
  state.askedTrips.add(alarm.trip_id);
  api(`/trips/${encodeURIComponent(alarm.trip_id)}`).then((trip) => {
    state.tripRoutes.set(trip.trip_id, trip.route_id);
    applyChanges([state.byId.get(alarm.id) ?? alarm]);
  }).catch(() => null);
}

function onUpdate(update) {
  if (update.kind === "snapshot") timed("queue.snapshot", () => applySnapshot(update.data));
  else if (update.kind === "batch" && update.alarms.size) timed("queue.update", () => applyChanges([...update.alarms.values()]));
}

// ---- drawing ---------------------------------------------------------------------------

function alarmRow(a) {
  const now = Date.now();
  const up = escalated(a);
  const isNew = state.fresh.has(a.id);
  const classes = ["sev-" + a.severity, a.status.startsWith("active") ? "is-active" : "is-cleared"];
  if (up) classes.push("escalated");
  if (isNew) classes.push("new");
  if (a.id === state.selected) classes.push("selected");
  const severity = el("td", { class: "sev" }, el("span", { class: "badge sev-" + a.severity, text: t("severity." + a.severity) }));
  if (up) severity.append(" ", el("span", { class: "badge escalated-badge", text: t("alarms.escalated"), title: formatTime(a.escalated_at) }));
  if (isNew) severity.append(" ", el("span", { class: "badge new-badge", text: t("alarms.new") }));
  return el("tr", {
    class: classes.join(" "), "data-id": a.id, "data-status": a.status, "data-severity": a.severity,
    "data-escalated": up ? "1" : "0", "data-new": isNew ? "1" : "0",
    onclick: () => pick(a.id),
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
}

function render() {
  document.getElementById("alarm-count").textContent = String(state.total);
  state.rows.setItems(state.list);
  document.getElementById("alarm-queue").dataset.loaded = "1";
  mark("queue.first_render");
}

function pick(id) {
  const before = state.selected;
  state.fresh.delete(id);
  state.selected = id;
  for (const x of [before, id]) if (x !== null) state.rows.invalidate(x);
  state.rows.render();
  loadDetail(id, true).catch(showError);
}

function scheduleDetail(id) {
  clearTimeout(state.detailTimer);
  state.detailTimer = setTimeout(() => { if (state.selected === id) loadDetail(id, false).catch(showError); }, 150);
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
  const up = escalated(a);
  const rows = [
    ["alarms.id", String(a.id)], ["alarms.type", t("alarm.type." + a.type)],
    ["alarms.severity", t("severity." + a.severity)], ["alarms.status", t("alarm.status." + a.status)],
    ["col.vehicle", a.vehicle_id], ["trip.id", a.trip_id], ["alarms.assignee", a.assignee ?? "—"],
    ["alarms.first_at", formatTime(a.first_at)], ["alarms.last_at", formatTime(a.last_at)],
    ["alarms.escalated_at", a.escalated_at ? formatTime(a.escalated_at) : "—"],
    ["alarms.count_col", String(a.count)], ["alarms.detail", a.detail || "—"],
    ["alarms.position", a.position ? a.position.coordinates.map((c) => c.toFixed(5)).join(", ") : "—"],
  ];
  const dl = el("dl", { id: "alarm-fields" });
  // The rules' own description of what happened is part of the record: as written.
  for (const [key, value] of rows) dl.append(el("dt", { text: t(key) }), el("dd", { text: value, class: "v-" + key.replace(".", "-"), "data-raw": key === "alarms.detail" ? "" : null }));
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
      el("td", { "data-raw": "", text: [h.comment, h.detail].filter(Boolean).join(" · ") || "—" })))));
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
  let changed = null;
  const done = await commentDialog({
    title: `${t("action." + (action === "comment" ? "comment_add" : action))} · #${a.id} ${t("alarm.type." + a.type)}`,
    fields,
    submit: async (comment, form) => {
      changed = await api(`/alarms/${a.id}/${action}`, {
        method: "POST",
        body: action === "assign" ? { comment, assignee: form.assignee.value || null } : { comment },
      });
    },
  });
  if (!done) return;
  // The stream brings the change too; the answer shows it without waiting for it.
  if (changed) {
    state.detail = changed;
    renderDetail();
    const { history: _, ...row } = changed;
    applyChanges([row]);
  }
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
  form.addEventListener("change", () => {
    state.selected = null; state.seen = null; state.fresh.clear(); state.shown = false;
    state.source.resync();
  });
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
  setStatus("status.connecting", null);
  state.soundOn = state.ctx.settings.alarm_sound !== false;
  const showDelay = () => { document.getElementById("escalate-min").textContent = t("age.min", { n: Number((state.ctx.settings.escalate_after_min ?? 5).toFixed(2)) }); };
  showDelay();
  document.addEventListener("languagechange", showDelay);
  state.rows = new VirtualRows({
    scroller: document.querySelector("main.split > section.list"),
    tbody: document.querySelector("#alarm-queue tbody"),
    key: (a) => a.id, render: alarmRow, columns: 9,
  });
  const [routes, people] = await Promise.all([api("/routes"), api("/console/assignees")]);
  fillFilters(routes, people);
  soundButton();
  translatePage();
  document.addEventListener("languagechange", () => { state.rows.refresh(); renderDetail(); });
  const wanted = Number(new URLSearchParams(location.search).get("id"));
  if (wanted) {
    state.selected = wanted;
    loadDetail(wanted, true).catch(showError);
  }
  document.body.addEventListener("pointerdown", () => { if (state.soundOn) unlockSound(); }, { once: true });
  state.source = new LiveSource({ settings: state.ctx.settings, kinds: ["alarm"], load: readQueue });
  state.source.subscribe(onUpdate);
  state.source.start();
  setInterval(() => state.rows.refresh(), AGE_EVERY_MS); // the age column
}

runPage(start);
