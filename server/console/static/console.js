// The live map page: who is logged in, the map, the truck list, one truck's trip.
import { api, ApiError, setCsrfToken, toLogin } from "./api.js";
import { formatTime, languagePicker, setDefaults, t, translatePage } from "./i18n.js";
import { PollingSource } from "./datasource.js";
import { truckStatus } from "./status.js";
import { openUsers } from "./users.js";
import { renderPageNav } from "./shell.js";

const ROLE_INCLUDES = { supervisor: ["officer"] };
const state = { account: null, settings: null, selected: null, trips: new Map(), trucks: [] };

function holds(role, wanted) {
  return wanted.includes(role) || (ROLE_INCLUDES[role] ?? []).some((r) => wanted.includes(r));
}

// Elements with data-roles="admin supervisor" exist only for accounts holding those roles.
function applyRoles(role) {
  for (const el of document.querySelectorAll("[data-roles]")) {
    const allowed = holds(role, el.dataset.roles.split(" "));
    el.hidden = !allowed;
    if (!allowed) el.setAttribute("aria-hidden", "true");
  }
}

function setStatus(key, ok, detail = "") {
  const el = document.getElementById("status");
  el.textContent = t(key) + (detail ? ` — ${detail}` : "");
  el.className = "status " + (ok ? "ok" : "bad");
  el.dataset.state = ok ? "live" : "down";
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text ?? "—";
  if (className) td.className = className;
  return td;
}

function renderTruckList() {
  const body = document.querySelector("#trucks tbody");
  body.replaceChildren(...state.trucks.map((truck) => {
    const tr = document.createElement("tr");
    tr.dataset.vehicle = truck.vehicle_id;
    if (truck.vehicle_id === state.selected) tr.className = "selected";
    tr.append(
      cell(truck.vehicle_id),
      cell(t("truck." + truck.status), "st st-" + truck.status),
      cell(truck.speed_kmh == null ? "—" : truck.speed_kmh.toFixed(0)),
      cell(formatTime(truck.ts)),
    );
    tr.addEventListener("click", () => select(truck.vehicle_id, "list"));
    return tr;
  }));
}

async function renderTrip() {
  const panel = document.getElementById("trip");
  const truck = state.trucks.find((x) => x.vehicle_id === state.selected);
  const followBtn = document.getElementById("follow");
  followBtn.hidden = !truck;
  followBtn.textContent = state.map.following === state.selected && truck ? t("follow.stop") : t("follow.start");
  if (!truck) { panel.replaceChildren(Object.assign(document.createElement("p"), { textContent: t("trip.none"), className: "muted" })); state.map.showTrack(null); return; }
  if (!truck.trip_id) { panel.replaceChildren(Object.assign(document.createElement("p"), { textContent: `${truck.vehicle_id}: ${t("trip.no_trip")}`, className: "muted" })); state.map.showTrack(null); return; }
  const trip = await api(`/trips/${encodeURIComponent(truck.trip_id)}?track=1`);
  if (state.selected !== truck.vehicle_id) return;
  const rows = [
    ["trip.id", trip.trip_id], ["col.vehicle", trip.vehicle_id], ["trip.route", trip.route_id],
    ["trip.status", t("trip.status." + trip.status)], ["trip.started", formatTime(trip.started_at)],
    ["trip.limit", String(trip.time_limit_min)], ["trip.points", String(trip.track?.length ?? 0)],
  ];
  const dl = document.createElement("dl");
  dl.id = "trip-details";
  for (const [key, value] of rows) {
    dl.append(Object.assign(document.createElement("dt"), { textContent: t(key) }),
              Object.assign(document.createElement("dd"), { textContent: value, className: "v-" + key.replace(".", "-") }));
  }
  panel.replaceChildren(dl);
  state.map.showTrack(trip.track);
}

function select(vehicleId, how) {
  if (how === "unfollow") { renderTrip(); return; }
  state.selected = vehicleId;
  renderTruckList();
  renderTrip().catch(showError);
}

function showError(err) {
  console.error("console:", err?.stack || err);
  if (err instanceof ApiError && err.status === 403) setStatus("error.forbidden", false, err.message);
  else setStatus("status.disconnected", false, err.message);
}

function onUpdate(update) {
  if (update.kind === "error") { showError(update.error); return; }
  const alarmVehicles = new Set(update.alarms.filter((a) => a.vehicle_id).map((a) => a.vehicle_id));
  state.trucks = update.positions.map((p) => ({ ...p, status: truckStatus(p, update.at, state.settings, alarmVehicles) }));
  state.map.updateTrucks(state.trucks, state.selected);
  renderTruckList();
  if (state.selected && state.map.following === state.selected) renderTrip().catch(showError);
  setStatus("status.live", true);
}

async function start() {
  let me;
  try {
    me = await api("/auth/me");
  } catch (err) {
    if (err.status !== 401) setStatus("status.disconnected", false, err.message);
    return;
  }
  state.account = me.account;
  setCsrfToken(me.csrf_token);
  const settings = await api("/console/config");
  state.settings = settings;
  setDefaults({ defaultLanguage: settings.default_language, zone: settings.time_zone });
  languagePicker(document.getElementById("lang"));
  renderPageNav();
  document.getElementById("who").textContent = `${me.account.display_name} · ${t("role." + me.account.role)}`;
  document.getElementById("who").dataset.role = me.account.role;
  applyRoles(me.account.role);
  translatePage();
  document.addEventListener("languagechange", () => {
    document.getElementById("who").textContent = `${me.account.display_name} · ${t("role." + me.account.role)}`;
    renderTruckList(); renderTrip().catch(showError);
  });
  document.getElementById("logout").addEventListener("click", async () => {
    await api("/auth/logout", { method: "POST" }).catch(() => null);
    toLogin();
  });
  document.getElementById("users-open").addEventListener("click", () => openUsers().catch(showError));
  document.getElementById("follow").addEventListener("click", () => {
    state.map.follow(state.map.following === state.selected ? null : state.selected);
    renderTrip().catch(showError);
  });
  if (!window.L || !window.L.markerClusterGroup) { setStatus("status.no_assets", false); return; }
  const { LiveMap } = await import("./map.js");
  state.map = new LiveMap(document.getElementById("map"), settings, select);
  const [routes, zones, gates] = await Promise.all([api("/routes"), api("/zones"), api("/gates")]);
  state.map.drawGeography({ routes, zones, gates });
  document.getElementById("map").dataset.ready = "1";
  const source = new PollingSource(settings.poll_interval_ms);
  source.subscribe(onUpdate);
  source.start();
  renderTrip();
}

start().catch(showError);
