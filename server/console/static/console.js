// The live map page: the map, the truck list, one truck's trip. The trucks and their
// alarms come from the REST API once, then from the live stream (datasource.js).
import { api } from "./api.js";
import { formatTime, t } from "./i18n.js";
import { LiveSource, mark, newerFix, timed } from "./datasource.js";
import { truckStatus } from "./status.js";
import { openUsers } from "./users.js";
import { el, setStatus, showError, runPage, startPage } from "./shell.js";
import { VirtualRows } from "./vtable.js";

//: How often statuses are recomputed without news (a truck turns offline by the clock).
const STATUS_EVERY_MS = 5000;

const state = {
  settings: null, selected: null, map: null, rows: null,
  trucks: new Map(), // vehicle_id → { ...position, trip_id, route_id, status }
  alarmIds: new Map(), // vehicle_id → Set of its active alarm ids
  sorted: [], // trucks by vehicle id, as listed
};

const alarmVehicles = { has: (vehicle) => (state.alarmIds.get(vehicle)?.size ?? 0) > 0 };

function withStatus(truck, nowMs) {
  const status = truckStatus(truck, nowMs, state.settings, alarmVehicles);
  return status === truck.status ? truck : { ...truck, status };
}

function cell(text, className) {
  return el("td", { text: text ?? "—", class: className });
}

function truckRow(truck) {
  return el("tr", {
    "data-vehicle": truck.vehicle_id, class: truck.vehicle_id === state.selected ? "selected" : null,
    onclick: () => select(truck.vehicle_id, "list"),
  },
  cell(truck.vehicle_id),
  cell(t("truck." + truck.status), "st st-" + truck.status),
  cell(truck.speed_kmh == null ? "—" : truck.speed_kmh.toFixed(0)),
  cell(formatTime(truck.ts)));
}

function resort() {
  state.sorted = [...state.trucks.values()].sort((a, b) => (a.vehicle_id < b.vehicle_id ? -1 : a.vehicle_id > b.vehicle_id ? 1 : 0));
}

async function tripOf(truck) {
  if (truck.trip_id) return truck.trip_id;
  // A trip that started after the page read the positions: ask for it.
  const trips = await api("/trips");
  const open = trips.find((trip) => trip.vehicle_id === truck.vehicle_id && ["declared", "in_transit", "arrived", "held"].includes(trip.status));
  return open?.trip_id ?? null;
}

async function renderTrip() {
  const panel = document.getElementById("trip");
  const truck = state.trucks.get(state.selected);
  const followBtn = document.getElementById("follow");
  followBtn.hidden = !truck;
  followBtn.textContent = state.map?.following === state.selected && truck ? t("follow.stop") : t("follow.start");
  if (!truck) { panel.replaceChildren(el("p", { text: t("trip.none"), class: "muted" })); state.map?.showTrack(null); return; }
  const tripId = await tripOf(truck);
  if (state.selected !== truck.vehicle_id) return;
  if (!tripId) { panel.replaceChildren(el("p", { text: `${truck.vehicle_id}: ${t("trip.no_trip")}`, class: "muted" })); state.map.showTrack(null); return; }
  const trip = await api(`/trips/${encodeURIComponent(tripId)}?track=1`);
  if (state.selected !== truck.vehicle_id) return;
  const rows = [
    ["trip.id", trip.trip_id], ["col.vehicle", trip.vehicle_id], ["trip.route", trip.route_id],
    ["trip.status", t("trip.status." + trip.status)], ["trip.started", formatTime(trip.started_at)],
    ["trip.limit", String(trip.time_limit_min)], ["trip.points", String(trip.track?.length ?? 0)],
  ];
  const dl = el("dl", { id: "trip-details" });
  for (const [key, value] of rows) dl.append(el("dt", { text: t(key) }), el("dd", { text: value, class: "v-" + key.replace(".", "-") }));
  panel.replaceChildren(dl);
  state.map.showTrack(trip.track);
}

function select(vehicleId, how) {
  if (how === "unfollow") { renderTrip().catch(showError); return; }
  const before = state.selected;
  state.selected = vehicleId;
  for (const id of [before, vehicleId]) if (id) state.rows.invalidate(id);
  state.rows.render();
  state.map.markSelected([before, vehicleId].map((id) => state.trucks.get(id)).filter(Boolean), vehicleId);
  renderTrip().catch(showError);
}

// ---- updates ---------------------------------------------------------------------------

function onSnapshot({ positions, alarmVehicles: withAlarms }) {
  const now = Date.now();
  state.alarmIds = new Map(withAlarms.map((v) => [v.vehicle_id, new Set(v.alarm_ids)]));
  const trucks = new Map();
  for (const p of positions) {
    const known = state.trucks.get(p.vehicle_id);
    // A fix the stream brought may be newer than what the REST read saw.
    const newest = known && newerFix(p, known) === known ? { ...known, trip_id: p.trip_id, route_id: p.route_id } : p;
    trucks.set(p.vehicle_id, withStatus({ ...newest, status: null }, now));
  }
  state.trucks = trucks;
  resort();
  state.map.updateTrucks(state.sorted, state.selected);
  state.rows.setItems(state.sorted);
  document.getElementById("truck-count").textContent = String(state.sorted.length);
  if (state.selected) renderTrip().catch(showError);
}

function onBatch(batch) {
  const now = Date.now();
  const changed = new Map();
  let added = false;
  for (const alarm of batch.alarms.values()) {
    if (!alarm.vehicle_id) continue;
    const ids = state.alarmIds.get(alarm.vehicle_id) ?? new Set();
    if (alarm.status?.startsWith("active")) ids.add(alarm.id); else ids.delete(alarm.id);
    state.alarmIds.set(alarm.vehicle_id, ids);
    const truck = state.trucks.get(alarm.vehicle_id);
    if (truck) changed.set(truck.vehicle_id, truck);
  }
  for (const p of batch.positions.values()) {
    const known = state.trucks.get(p.vehicle_id);
    if (known && newerFix(known, p) === known) continue; // older than what we show
    if (!known) added = true;
    changed.set(p.vehicle_id, { ...known, ...p });
  }
  if (!changed.size) return;
  const updated = [];
  for (const [id, truck] of changed) {
    const next = withStatus(truck, now);
    state.trucks.set(id, next);
    state.rows.invalidate(id);
    updated.push(next);
  }
  if (added) { resort(); document.getElementById("truck-count").textContent = String(state.sorted.length); }
  else state.sorted = state.sorted.map((truck) => state.trucks.get(truck.vehicle_id));
  state.map.applyChanges(updated, state.selected);
  state.rows.setItems(state.sorted);
  if (state.selected && changed.has(state.selected) && state.map.following === state.selected) renderTrip().catch(showError);
}

function onUpdate(update) {
  if (update.kind === "snapshot") {
    timed("map.snapshot", () => onSnapshot(update.data));
    requestAnimationFrame(() => mark("map.first_render"));
  } else if (update.kind === "batch") {
    timed("map.update", () => onBatch(update));
  }
}

// The clock turns trucks offline; nothing else would tell the page.
function recheckStatuses() {
  const now = Date.now();
  const updated = [];
  for (const [id, truck] of state.trucks) {
    const next = withStatus(truck, now);
    if (next !== truck) { state.trucks.set(id, next); state.rows.invalidate(id); updated.push(next); }
  }
  if (!updated.length) return;
  state.sorted = state.sorted.map((truck) => state.trucks.get(truck.vehicle_id));
  state.map.applyChanges(updated, state.selected);
  state.rows.setItems(state.sorted);
}

// The truck list scrolls on its own, so that only the rows in view are in the page.
function truckList() {
  const table = document.getElementById("trucks");
  const scroller = el("div", { id: "trucks-scroll", class: "vscroll" });
  table.before(el("p", { class: "muted" }, el("span", { "data-i18n": "trucks.count", text: t("trucks.count") }), " ", el("span", { id: "truck-count", text: "0" })));
  table.replaceWith(scroller);
  scroller.append(table);
  return new VirtualRows({ scroller, tbody: table.querySelector("tbody"), key: (truck) => truck.vehicle_id, render: truckRow, columns: 4 });
}

async function start() {
  const ctx = await startPage();
  if (!ctx) return;
  state.settings = ctx.settings;
  state.rows = truckList();
  document.addEventListener("languagechange", () => {
    state.rows.refresh();
    if (state.map) { state.map.relabel(); state.map.applyChanges(state.sorted, state.selected); }
    renderTrip().catch(showError);
  });
  document.getElementById("users-open").addEventListener("click", () => openUsers().catch(showError));
  document.getElementById("follow").addEventListener("click", () => {
    state.map.follow(state.map.following === state.selected ? null : state.selected);
    renderTrip().catch(showError);
  });
  if (!window.L || !window.L.markerClusterGroup) { setStatus("status.no_assets", false); return; }
  const { LiveMap } = await import("./map.js");
  state.map = new LiveMap(document.getElementById("map"), ctx.settings, select);
  // The trucks are read while the geography loads (markers may come first).
  const source = new LiveSource({
    settings: ctx.settings,
    kinds: ["position", "alarm"],
    load: async () => {
      const [positions, withAlarms] = await Promise.all([api("/vehicles/positions"), api("/console/alarm-vehicles")]);
      return { positions, alarmVehicles: withAlarms };
    },
  });
  source.subscribe(onUpdate);
  source.start();
  const [routes, zones, gates] = await Promise.all([api("/routes"), api("/zones"), api("/gates")]);
  state.map.drawGeography({ routes, zones, gates });
  document.getElementById("map").dataset.ready = "1";
  mark("map.geography");
  setInterval(() => timed("map.recheck", recheckStatuses), STATUS_EVERY_MS);
  renderTrip().catch(showError);
}

runPage(start);
